// Package policy compiles decoded Kyverno policies (api/kyverno/v1) once into immutable,
// evaluable rules and answers which rules apply to a request.
//
// Compilation does everything that does not depend on the admitted object: legacy-field
// conversion, Kyverno's CRD defaults, autogen rules for pod controllers (spec §2.10), parsing
// of PEM keys and certificates, regular expressions and label selectors, splitting of
// multi-key PEM attestors (spec §3.4), and an index of rules by resource kind so that matching
// cost grows with the rules that can apply, not with all policies. Errors carry the policy's
// location and Kubernetes-style field paths.
//
// Insecure lists the valid but weakening settings of a policy (transparency log or SCT
// checks off, insecure registries, unanchored identity regexps, image patterns that do not
// fix the registry host, failurePolicy: Ignore) with their field paths; Check is the policy
// admission webhook's validation, the same as `vouch apply`'s plus those warnings.
//
// Set.Match implements Kyverno's match/exclude semantics (kinds with group/version/subresource
// and wildcards, names, namespaces, annotations, label and namespace selectors with wildcard
// keys and values, operations, subjects, roles, cluster roles) and the rule that a namespaced
// Policy applies only in its own namespace.
package policy
