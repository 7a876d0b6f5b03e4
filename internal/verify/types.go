package verify

import (
	"context"
	"crypto"
	"crypto/x509"
	"regexp"
	"time"

	"github.com/vouchproject/vouch/internal/imageref"
)

// Subject is the image being verified: its reference as written and the digest it resolved to.
// The digest is the identity: signatures must name it, caches key on it, patches pin it.
type Subject struct {
	Ref    imageref.Ref
	Digest string // "sha256:<hex>"
	Memo   *Memo  // shared by the verifications of this subject in one evaluation; may be nil
}

// DigestRef returns "<registry>/<path>@<digest>".
func (s Subject) DigestRef() string { return s.Ref.Repository() + "@" + s.Digest }

// Verifier checks one attestor (never a nested set) for one subject. It returns the evidence
// on success, an *Error with a "failed" code when the subject does not satisfy the attestor,
// and an *Error with an "undecided" code (or any other error) when it could not decide.
type Verifier interface {
	Verify(ctx context.Context, s Subject, e *Entry, a *Attestor) (*Evidence, error)
}

// Evidence is what a successful attestor verification established.
type Evidence struct {
	Digest string // the digest the verified signature payload names
	// Route is where and in which format the verified signature was found (a Route*
	// constant), "" when the verifier does not say; Detail says more (bundle version,
	// listing), for messages and logs.
	Route  string
	Detail string
	// ValidUntil, when not zero, is when the evidence stops holding: the earliest NotAfter
	// among the certificates the verifier checked at the time of verification ("now") rather
	// than at a trusted signing time (Rekor integrated time, RFC 3161 timestamp), and the
	// signature's own expiry where it has one. Verifying again after it would fail, so a
	// cached pass must not outlive it. Zero: unbounded (keys, trusted signing times).
	ValidUntil time.Time
}

// Earliest returns the earlier of two ValidUntil bounds, zero meaning unbounded: the bound of
// evidence that needs both.
func Earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// Signature discovery routes: where a verified signature was found (Evidence.Route, the
// route label of vouch_verifications_total). Sigstore bundles are one route whichever listing
// found them (Evidence.Detail names it).
const (
	RouteLegacyTag          = "legacy-tag"           // cosign's sha256-<hex>.sig tag (simple signing)
	RouteOCI11Referrer      = "oci11-referrer"       // cosign's OCI 1.1 referrer, by the referrers API
	RouteReferrersTagSchema = "referrers-tag-schema" // cosign's OCI 1.1 referrer, in the sha256-<hex> index
	RouteSigstoreBundle     = "sigstore-bundle"      // a Sigstore bundle referrer (cosign v3), either listing
)

// TrustedRootAnnotation is the policy annotation that holds a Sigstore trusted_root.json (a
// vouch extension, see docs/COMPATIBILITY.md): Entry.TrustedRoot.
const TrustedRootAnnotation = "vouch.dev/trusted-root"

// Entry holds what a verifyImages entry tells a verifier beyond its attestors.
type Entry struct {
	Type        string            // Cosign, SigstoreBundle or Notary
	Repository  string            // entry-level signature repository override ("" = the image's)
	Annotations map[string]string // entry-level annotations, the default for attestors without their own
	CosignOCI11 bool
	Insecure    bool // imageRegistryCredentials.allowInsecureRegistry
	// TrustedRoot is a Sigstore trusted_root.json (the policy's vouch.dev/trusted-root
	// annotation, validated at load): the Fulcio CAs, Rekor and CT log keys and timestamp
	// authorities an attestor falls back to for the trust material it does not name itself.
	// Nil: none, and vouch never fetches the public-good one.
	TrustedRoot []byte
}

// AttestorSet is a compiled attestor set: Required of Entries must verify (spec §5).
type AttestorSet struct {
	Path     string // Kyverno's message path, e.g. ".attestors[0]"
	Required int
	Entries  []*Attestor
}

// Attestor is one compiled attestor entry. Exactly one of the key material (Keys, KeyRef,
// Secret), Certificate/CertificateChain, Keyless or Nested is the authority.
type Attestor struct {
	Path               string // e.g. ".attestors[0].entries[1].keys"
	Kind               string // "keys", "certificates", "keyless" or "attestor"
	Keys               []PublicKey
	KeyRef             string // k8s://, KMS URI or an unresolved variable
	Secret             *SecretRef
	Certificate        *x509.Certificate
	CertificateChain   []*x509.Certificate
	Keyless            *Keyless
	Nested             *AttestorSet
	Rekor              *Rekor // nil: Kyverno's default (public Rekor, tlog required)
	CTLog              *CTLog // nil: SCTs required
	Annotations        map[string]string
	Repository         string
	SignatureAlgorithm string // sha224, sha256, sha384 or sha512
}

// SecretRef names a Secret holding a cosign.pub key.
type SecretRef struct{ Namespace, Name string }

func (r SecretRef) String() string { return r.Namespace + "/" + r.Name }

// PublicKey is one parsed public key together with its PEM text.
type PublicKey struct {
	Key crypto.PublicKey
	PEM string
}

// Keyless is a compiled keyless identity constraint.
type Keyless struct {
	Issuer               string
	IssuerRegExp         *regexp.Regexp
	Subject              string
	SubjectRegExp        *regexp.Regexp
	Roots                []*x509.Certificate
	AdditionalExtensions map[string]string // keyed by OID
}

// Rekor is compiled transparency-log configuration.
type Rekor struct {
	URL        string
	PubKey     *PublicKey
	IgnoreTlog bool
}

// CTLog is compiled SCT and timestamp-authority configuration.
type CTLog struct {
	IgnoreSCT    bool
	PubKey       *PublicKey
	TSACertChain []*x509.Certificate
}

// IgnoreTlog reports whether transparency-log verification is switched off for the attestor.
func (a *Attestor) IgnoreTlog() bool { return a.Rekor != nil && a.Rekor.IgnoreTlog }

// IgnoreSCT reports whether SCT verification is switched off for the attestor.
func (a *Attestor) IgnoreSCT() bool { return a.CTLog != nil && a.CTLog.IgnoreSCT }

// EffectiveAnnotations returns the attestor's annotations, else the entry's (spec §3.8).
func (a *Attestor) EffectiveAnnotations(e *Entry) map[string]string {
	if a.Annotations != nil {
		return a.Annotations
	}
	return e.Annotations
}

// EffectiveRepository returns the attestor's repository, else the entry's (spec §3.9).
func (a *Attestor) EffectiveRepository(e *Entry) string {
	if a.Repository != "" {
		return a.Repository
	}
	return e.Repository
}
