// Package source keeps vouch's compiled policy set in step with where policies live: files
// and directories (re-read and swapped when their content changes) and Kyverno's ClusterPolicy
// and Policy resources in the cluster (client-go informers). A policy that cannot be decoded or
// compiled cannot be enforced, so it is replaced by a stand-in whose rules fail closed for the
// resources they match (unless the policy says failurePolicy: Ignore), logged, counted in the
// vouch_policies metric and reported with a Kubernetes Event (PolicyError). A policy that
// loads is reported with a Normal Event (PolicyLoaded), and one that uses insecure settings
// (policy.Insecure) with a Warning Event naming their field paths (InsecurePolicy), logged and
// counted in vouch_policy_insecure_settings. It also serves namespace labels for
// namespaceSelector from an informer.
package source
