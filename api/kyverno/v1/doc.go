// Package v1 holds vouch's copy of the Kyverno kyverno.io/v1 policy API as far as
// verifyImages needs it: ClusterPolicy, Policy, Spec, Rule, match/exclude filters and the
// complete ImageVerification surface (attestor sets, attestors, attestations, conditions,
// registry credentials, legacy fields).
//
// The package owns three things:
//   - decoding one YAML/JSON document strictly (unknown and duplicate fields are errors that
//     carry the field path, e.g. spec.rules[0].verifyImages[1].attestors[0].entries[2].foo),
//     including Kyverno's legacy forms (verifyImages written as one mapping, condition lists
//     written without any/all);
//   - Kyverno's defaults, exposed through accessors (GetMutateDigest, GetRequired, ...) so that a
//     field left out and a field set to false stay distinguishable;
//   - validation with Kubernetes-style field paths (Validate), identical in substance to
//     Kyverno's programmatic validation (spec §1.6) plus the CRD schema rules it relies on.
//
// It imports no vouch package. Compilation into evaluable rules lives in internal/policy.
package v1
