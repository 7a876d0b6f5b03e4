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
// Set.Match implements Kyverno's match/exclude semantics (kinds with group/version/subresource
// and wildcards, names, namespaces, annotations, label and namespace selectors with wildcard
// keys and values, operations, subjects, roles, cluster roles) and the rule that a namespaced
// Policy applies only in its own namespace.
package policy
