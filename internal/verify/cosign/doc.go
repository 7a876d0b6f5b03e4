// Package cosign verifies Sigstore Cosign signatures for vouch (spec §3), on the
// sigstore/cosign and sigstore/sigstore libraries. It implements verify.Verifier for keys,
// certificates and keyless attestors: PEM public keys with the signature hash algorithm; an
// X.509 certificate (certificates.cert, validated against certChain) or a chain the signature's
// own certificate must chain to; Fulcio-style certificates chained to keyless.roots with
// Kyverno's identity matching (identity.go); required payload annotations, signature
// repository overrides, legacy sha256-<hex>.sig signature tags and the cosign OCI 1.1
// referrers layout.
//
// Verification is offline: cosign's CheckOpts are built with Offline set, Rekor inclusion is
// the signature's bundle (SET) checked with rekor.pubkey, SCTs embedded in certificates are
// checked with ctlog.pubkey, RFC 3161 timestamps with ctlog.tsaCertChain. What an attestor does
// not name comes from the policy's vouch.dev/trusted-root annotation (a Sigstore
// trusted_root.json); what neither provides is "could not verify" (undecided), naming what is
// missing — TUF and the public-good Sigstore instance are never contacted. A certificate is
// checked at the signature's trusted time (the verified timestamp and Rekor integrated time),
// else now, as cosign does; certificates.cert and its chain are checked the same way.
//
// Signatures are fetched once per subject and signature repository per evaluation (the
// Subject's memo) and then checked against each attestor, so an attestor set of N entries
// costs the registry requests of one. The signed payload must name the digest the image
// resolved to. All registry traffic goes through the remote options the caller supplies
// (vouch's registry client: deadlines, size caps, credentials).
//
// Sign writes signatures in the same layout — with a certificate and chain, a Rekor bundle and
// an RFC 3161 timestamp when asked; vouch uses it for its demo and tests.
package cosign
