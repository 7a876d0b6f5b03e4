// Package cosign verifies Sigstore Cosign signatures for vouch (spec §3), on the
// sigstore/cosign and sigstore/sigstore libraries. It implements verify.Verifier for keys
// attestors: one or several PEM public keys, the signature hash algorithm, required payload
// annotations, signature repository overrides, legacy sha256-<hex>.sig signature tags and the
// cosign OCI 1.1 referrers layout, with Rekor and SCT checks switched off by the policy's
// rekor.ignoreTlog and ctlog.ignoreSCT.
//
// Signatures are fetched once per subject and signature repository per evaluation (the
// Subject's memo) and then checked against each attestor, so an attestor set of N keys costs
// the registry requests of one. The signed payload must name the digest the image resolved
// to. All registry traffic goes through the remote options the caller supplies (vouch's
// registry client: deadlines, size caps, credentials), and never beyond the registry when
// both ignore flags are set.
//
// Sign writes signatures in the same layout; vouch uses it for its demo and tests.
package cosign
