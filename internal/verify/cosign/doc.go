// Package cosign verifies Sigstore Cosign signatures for vouch (spec §3), on the
// sigstore/cosign and sigstore/sigstore libraries. It implements verify.Verifier for keys,
// certificates and keyless attestors: PEM public keys with the signature hash algorithm; an
// X.509 certificate (certificates.cert, validated against certChain) or a chain the signature's
// own certificate must chain to; Fulcio-style certificates chained to keyless.roots with
// Kyverno's identity matching (identity.go); required payload annotations, signature
// repository overrides; KMS keys (kms.go: sigstore's AWS, GCP, Azure and Vault providers, and
// sigstore-kms-<name> CLI plugins on PATH), whose public key is read once per TTL and used
// locally.
//
// Discovery (discover*.go) finds signatures wherever users' tools put them: cosign v2's
// sha256-<hex>.sig tag (simple signing), its experimental OCI 1.1 signature referrers, and
// Sigstore bundles v0.1–v0.3 (bundle.go; cosign v3's default: a DSSE in-toto statement of
// predicate type https://sigstore.dev/cosign/sign/v1, or a message signature), listed by the
// OCI 1.1 referrers API or, on registries without it, the sha256-<hex> referrers tag schema.
// type Cosign reads every layout (a vouch extension: Kyverno's reads the .sig tag, and the
// referrers only with cosignOCI11); type SigstoreBundle reads the bundles in the image's
// repository only, as Kyverno does. Each verified signature reports its route
// (verify.Evidence.Route). Bundles are verified offline by sigstore-go with trusted material
// built from the same policy material as the cosign checks, bound to the resolved digest.
// Referrers per image (MaxReferrers), bytes per payload (MaxPayloadBytes) and certificates per
// signature chain (MaxChainCertificates: the chain annotation, a bundle's certificate chain;
// counted before any is parsed) are capped. A signature or attestation layer whose annotations
// do not parse (signature, certificate, chain, Rekor bundle, timestamp) is a failure of that
// layer, kept to explain the outcome; it never hides the other layers and is never "could not
// verify" (layer.go).
// DiscoverAttestations exposes the DSSE attestation envelopes of every route with their
// verification material.
//
// Verification is offline: cosign's CheckOpts are built with Offline set, Rekor inclusion is
// the signature's bundle (SET) checked with rekor.pubkey, SCTs embedded in certificates are
// checked with ctlog.pubkey, RFC 3161 timestamps with ctlog.tsaCertChain. What an attestor does
// not name comes from the policy's vouch.dev/trusted-root annotation (a Sigstore
// trusted_root.json); what neither provides is "could not verify" (undecided), naming what is
// missing — TUF and the public-good Sigstore instance are never contacted. A certificate is
// checked at the signature's trusted time (the verified timestamp and Rekor integrated time),
// else now, as cosign does; certificates.cert and its chain are checked the same way. A
// signature checked at now reports the earliest NotAfter of what was checked as its evidence's
// ValidUntil (until.go), so that a cached pass ends with the certificate; one checked at a
// trusted time (keyless with the transparency log) and a key signature are unbounded.
//
// Signatures are fetched once per subject, route and signature repository per evaluation (the
// Subject's memo) and then checked against each attestor, so an attestor set of N entries
// costs the registry requests of one. The signed payload must name the digest the image
// resolved to. All registry traffic goes through the remote options the caller supplies
// (vouch's registry client: deadlines, size caps, credentials).
//
// Attestations (attest.go) implements verify.AttestationVerifier: the in-toto statements of one
// predicate type whose DSSE envelope — in the sha256-<hex>.att tag, an attestation referrer or
// a Sigstore bundle (DiscoverAttestations) — verifies with the attestor under the same checks
// as signatures and whose statement names the subject's digest. The predicate type is the
// signed statement's, matched exactly; the layer's predicateType annotation is not trusted.
//
// Sign writes signatures in the same layout — with a certificate and chain, a Rekor bundle and
// an RFC 3161 timestamp when asked; Attest writes attestations as `cosign attest` does (a DSSE
// envelope in the .att tag, annotation predicateType); vouch uses them for its demo and tests.
package cosign
