// Package verify owns the verification model and flow shared by every signature format:
// the Subject (an image reference and the ONE digest it resolved to), compiled attestor sets
// and attestors, the Verifier interface that format adapters (verify/cosign, verify/notary)
// implement, Kyverno's attestor-set counting (spec §5), and the two channels of an outcome:
// a Result says whether the image passed or failed and why; a returned error says vouch could
// not decide (registry unavailable, authentication, timeout, unsupported configuration).
//
// Errors carry stable codes usable with errors.Is. The package imports no adapter and no
// k8s.io package (DESIGN §2).
package verify
