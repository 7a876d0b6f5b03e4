// Package notary verifies Notary Project (notation) signatures and referrer attestations for
// vouch's `type: Notary` entries (spec §4), on notation-go. It implements verify.Verifier for
// certificates attestors and verify.AttestationVerifier for Notary attestations.
//
// Trust: the attestor's certificates.cert and certChain form an in-memory trust store, under
// both the "ca" and the "signingAuthority" types (notary.x509 and notary.x509.signingAuthority
// signing schemes), as Kyverno's one "ca" store does; ctlog.tsaCertChain, when given, is a
// "tsa" store. The trust policy is built per verification: one statement scoped to the
// image's repository (never "*"), level strict (integrity, authenticity, expiry, authentic
// timestamp and revocation all enforced, landscape §4.1 GHSA-57wx-m636-g3g8), trusted
// identities "*" (any signer whose chain reaches the trusted certificates, as in Kyverno),
// and, with a TSA store, verifyTimestamp "afterCertExpiry": a signature whose certificate
// chain has expired verifies only with a countersigned RFC 3161 timestamp from a trusted TSA
// that falls inside the chain's validity; while the chain is valid no timestamp is needed.
// A signature whose chain was checked at the time of verification (notary.x509 without a
// timestamp used) reports the chain's earliest NotAfter, and a signature with an expiry that
// expiry, as its evidence's ValidUntil (validUntil), so that a cached pass ends with them.
//
// Discovery: signatures are the referrers of the image digest with artifact type
// application/vnd.cncf.notary.signature, listed through the OCI 1.1 referrers API or, on
// registries without it, the "sha256-<hex>" referrers tag schema — all through vouch's
// registry client (internal/registry: capped bodies, verified digests, deadlines, the
// entry's credentials). At most MaxReferrers referrers are listed (more is a failure), at most
// MaxSignatures signatures are tried (Kyverno's and notation's maxSignatureAttempts), each
// signature manifest must hold exactly one envelope layer, JWS or COSE, of at most
// MaxEnvelopeBytes, whose certificate chain (JWS x5c, COSE x5chain) holds at most
// MaxChainCertificates — counted before notation parses any (envelope.go); an envelope that
// does not decode is a failure. Signatures are fetched once per subject and evaluation (the Subject's
// memo), so N attestors cost the requests of one.
//
// The envelope's signed target descriptor must equal the descriptor the image resolved to
// (digest, media type and size; CVE-2023-33959): a signature made for another artifact is a
// digest-mismatch failure.
//
// Revocation: the signing chain (and, when a timestamp is verified, the TSA chain) is checked
// with notation-core-go's OCSP and CRL client, over an HTTP client with a timeout and a
// response cap, within the verification's deadline. Certificates without OCSP or CRL
// endpoints are not revocable and pass. A revoked certificate is a failure. A responder that
// cannot be reached or gives no usable answer leaves the status unknown: vouch then could not
// verify (undecided, so the policy's failurePolicy decides — fail closed by default), never a
// pass.
//
// Errors: no signature, untrusted or wrong certificate, expired chain or signature, revoked
// certificate and subject mismatch are failures; registry problems (unreachable, 5xx, 429,
// authentication, timeouts) and unknown revocation status are undecided.
//
// Sign and Attach write signatures and attestations in notation's layout (the demo and tests
// use them).
package notary
