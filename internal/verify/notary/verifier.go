package notary

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
)

// Limits applied by New to zero fields of Options.
const (
	// DefaultMaxSignatures is Kyverno's (and notation's) maxSignatureAttempts.
	DefaultMaxSignatures = 10
	// DefaultMaxEnvelopeBytes caps one signature envelope; real ones are a few KiB.
	DefaultMaxEnvelopeBytes = 1 << 20
	// DefaultMaxPayloadBytes caps one attestation payload (Kyverno: 10,000,000 bytes).
	DefaultMaxPayloadBytes = 10_000_000
	// DefaultRevocationTimeout bounds one OCSP or CRL request (the context may end it sooner).
	DefaultRevocationTimeout = 5 * time.Second
	// DefaultRevocationRecheck is how long a pass that rests on a revocation check (a
	// certificate with OCSP or CRL endpoints, found good) holds: a cached pass is verified —
	// and the certificate's revocation checked — again after it.
	DefaultRevocationRecheck = 5 * time.Minute
)

// Media and artifact types of notation's storage layout.
const (
	ArtifactTypeSignature = "application/vnd.cncf.notary.signature"
	MediaTypeJWS          = "application/jose+json"
	MediaTypeCOSE         = "application/cose"
	mediaTypePayload      = "application/vnd.cncf.notary.payload.v1+json"
)

// Options configures a Verifier.
type Options struct {
	// Registry returns vouch's registry client for an entry's allowInsecureRegistry setting
	// (registry.Pair.Client): every registry request goes through it. Required.
	Registry func(insecure bool) *registry.Client
	// MaxSignatures is the most signatures tried per image; 0 means DefaultMaxSignatures.
	MaxSignatures int
	// MaxEnvelopeBytes caps a signature envelope; 0 means DefaultMaxEnvelopeBytes.
	MaxEnvelopeBytes int64
	// MaxPayloadBytes caps an attestation payload; 0 means DefaultMaxPayloadBytes.
	MaxPayloadBytes int64
	// RevocationTransport carries OCSP and CRL requests; nil means a clone of
	// http.DefaultTransport. Responses are capped whatever the transport.
	RevocationTransport http.RoundTripper
	// RevocationTimeout bounds one OCSP or CRL request; 0 means DefaultRevocationTimeout.
	RevocationTimeout time.Duration
	// RevocationRecheck bounds how long a pass that rests on a revocation check holds (its
	// ValidUntil); 0 means DefaultRevocationRecheck.
	RevocationRecheck time.Duration
}

// Verifier verifies Notary signatures and attestations. It is safe for concurrent use.
type Verifier struct {
	registry         func(insecure bool) *registry.Client
	maxSignatures    int
	maxEnvelopeBytes int64
	maxPayloadBytes  int64
	revocationHTTP   *http.Client
	// revocationRecheck bounds a pass that rests on a revocation check.
	revocationRecheck time.Duration
}

var (
	_ verify.Verifier            = (*Verifier)(nil)
	_ verify.AttestationVerifier = (*Verifier)(nil)
)

// New returns a Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Registry == nil {
		return nil, errors.New("notary: Options.Registry is required")
	}
	if opts.MaxSignatures < 0 || opts.MaxEnvelopeBytes < 0 || opts.MaxPayloadBytes < 0 || opts.RevocationTimeout < 0 || opts.RevocationRecheck < 0 {
		return nil, errors.New("notary: limits must not be negative")
	}
	v := &Verifier{
		registry:         opts.Registry,
		maxSignatures:    orDefault(opts.MaxSignatures, DefaultMaxSignatures),
		maxEnvelopeBytes: orDefault(opts.MaxEnvelopeBytes, DefaultMaxEnvelopeBytes),
		maxPayloadBytes:  orDefault(opts.MaxPayloadBytes, DefaultMaxPayloadBytes),

		revocationRecheck: orDefault(opts.RevocationRecheck, DefaultRevocationRecheck),
	}
	base := opts.RevocationTransport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	v.revocationHTTP = &http.Client{
		Timeout:   orDefault(opts.RevocationTimeout, DefaultRevocationTimeout),
		Transport: &cappedTransport{base: base, limit: maxRevocationResponse},
	}
	return v, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Verify checks that the subject carries a Notary signature whose certificate chain reaches
// the attestor's certificates, verified under a strict trust policy scoped to the image's
// repository (spec §4, package doc).
func (v *Verifier) Verify(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor) (*verify.Evidence, error) {
	if err := checkEntry(e, a); err != nil {
		return nil, err
	}
	target, err := v.target(ctx, s, e.Insecure, s.Digest)
	if err != nil {
		return nil, err
	}
	until, err := v.verifySignatures(ctx, s, e, a, target)
	if err != nil {
		return nil, err
	}
	return &verify.Evidence{Digest: target.desc.Digest.String(), ValidUntil: until}, nil
}

// checkEntry rejects what a Notary entry cannot verify (spec §1.6, §4).
func checkEntry(e *verify.Entry, a *verify.Attestor) error {
	if e.Type != "Notary" {
		return unsupported(fmt.Sprintf("the notary verifier does not verify type %q", e.Type))
	}
	if a.Kind != "certificates" {
		return unsupported(fmt.Sprintf("%s are not supported for type Notary: use certificates", a.Kind))
	}
	if a.Certificate == nil && len(a.CertificateChain) == 0 {
		return unsupported("cert or certChain required")
	}
	return nil
}

// artifact is a subject of Notary signatures: the image, or a referrer artifact of it.
type artifact struct {
	ref  string // "<registry>/<path>@<digest>", notation's artifact reference
	repo string // "<registry>/<path>", the trust policy's registry scope
	desc ocispec.Descriptor
}

// target resolves digest in the subject's repository to the descriptor a signature must name.
func (v *Verifier) target(ctx context.Context, s verify.Subject, insecure bool, digest string) (*artifact, error) {
	repo := s.Ref.Repository()
	ref := repo + "@" + digest
	got, err := s.Memo.Do(fmt.Sprintf("notary-target:%t:%s", insecure, ref), func() (any, error) {
		c := v.registry(insecure)
		d, perr := parseDigest(ref, c)
		if perr != nil {
			return nil, perr
		}
		desc, err := c.Resolve(ctx, d)
		if err != nil {
			return nil, registryError("resolving "+ref, err)
		}
		if desc.Digest.String() != digest {
			return nil, verify.Errorf(verify.CodeDigestMismatch, fmt.Sprintf("%s resolved to %s", ref, desc.Digest), nil)
		}
		return &artifact{ref: ref, repo: repo, desc: toOCI(desc)}, nil
	})
	if err != nil {
		return nil, err
	}
	return got.(*artifact), nil
}

// verifySignatures verifies the signatures of target with the attestor's trust material: nil
// once one verifies, with how long that signature keeps verifying (validUntil). Otherwise a
// failure listing why each failed, or — when one of them could not be decided (its registry
// fetch failed, its revocation status is unknown) — an undecided error: that signature might
// have verified.
func (v *Verifier) verifySignatures(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, target *artifact) (time.Time, error) {
	sigs, err := v.signatures(ctx, s, e.Insecure, target)
	if err != nil {
		return time.Time{}, err
	}
	prefix := "failed to verify " + target.ref + ": "
	if len(sigs) == 0 {
		return time.Time{}, verify.Errorf(verify.CodeNoSignatures, fmt.Sprintf("%sno signature is associated with %q, make sure the artifact was signed successfully", prefix, target.ref), nil)
	}
	tv, err := v.newTrustVerifier(a, target.repo)
	if err != nil {
		return time.Time{}, err
	}
	var problems []*verify.Error
	for _, sig := range sigs {
		if sig.err != nil {
			problems = append(problems, sig.err)
			continue
		}
		until, perr := tv.verify(ctx, target, sig)
		if perr == nil {
			return until, nil
		}
		problems = append(problems, perr)
	}
	return time.Time{}, combine(prefix, problems)
}

// combine joins the reasons signatures failed into one error, on the undecided channel if
// any of them is undecided. A single shared code is kept; mixed failures are no-match.
func combine(prefix string, problems []*verify.Error) error {
	msgs := make([]string, len(problems))
	code := problems[0].Code
	var undecided *verify.Error
	for i, p := range problems {
		msgs[i] = p.Error()
		if p.Code.Undecided() && undecided == nil {
			undecided = p
		}
		if p.Code != code {
			code = verify.CodeNoMatch
		}
	}
	msg := prefix + "signature verification failed: " + strings.Join(msgs, "; ")
	if undecided != nil {
		return verify.Errorf(undecided.Code, msg, nil)
	}
	return verify.Errorf(code, msg, nil)
}

// verify runs notation's verifier on one envelope and classifies its outcome; a signature
// that verified comes with how long it keeps verifying (validUntil).
func (tv *trustVerifier) verify(ctx context.Context, target *artifact, sig *sigEntry) (time.Time, *verify.Error) {
	tv.revocation.reset()
	what := "signature " + sig.manifest.String()
	start := time.Now()
	outcome, err := tv.nv.Verify(ctx, target.desc, sig.envelope, notation.VerifierVerifyOptions{
		ArtifactReference:  target.ref,
		SignatureMediaType: sig.mediaType,
	})
	if err == nil {
		until := validUntil(outcome, start)
		if tv.revocation.revocable() {
			// The certificate was good when asked; a revocation later must be seen: the
			// pass holds no longer than the recheck interval.
			until = verify.Earliest(until, start.Add(tv.recheck))
		}
		return until, nil
	}
	if ctx.Err() != nil {
		return time.Time{}, verify.Errorf(verify.CodeTimeout, what+": verification deadline exceeded", context.Cause(ctx))
	}
	return time.Time{}, classify(what, target, outcome, err, tv.revocation.unknown())
}

// validUntil returns how long a signature notation verified keeps verifying, start being a
// time before the verification began. Under the strict level notation checks at its time of
// verification the signature's own expiry and, under the notary.x509 signing scheme, the
// validity of the whole signing chain — unless the chain had expired by then and a trusted
// timestamp countersignature inside its validity was verified instead (verifyTimestamp
// "afterCertExpiry"). So the signature holds until its expiry and, when the chain was checked
// at the time of verification, until the chain's earliest NotAfter. notation does not say
// which check it made; the chain's end is after start exactly when notation could have found
// it valid at its own time of verification (it reads the clock after start), and is then the
// bound — conservatively so when the chain expired while notation ran, and a re-verification
// would pass on the timestamp. Under notary.x509.signingAuthority the chain is checked at the
// authentic signing time only.
func validUntil(outcome *notation.VerificationOutcome, start time.Time) time.Time {
	if outcome == nil || outcome.EnvelopeContent == nil {
		return start // cannot happen after a pass; never kept
	}
	si := outcome.EnvelopeContent.SignerInfo
	until := si.SignedAttributes.Expiry
	if si.SignedAttributes.SigningScheme == signature.SigningSchemeX509 {
		var chainEnd time.Time
		for _, c := range si.CertificateChain {
			chainEnd = verify.Earliest(chainEnd, c.NotAfter)
		}
		if chainEnd.After(start) {
			until = verify.Earliest(until, chainEnd)
		}
	}
	return until
}

func unsupported(msg string) error { return verify.Errorf(verify.CodeUnsupported, msg, nil) }

// registryError classifies a registry failure into vouch's codes.
func registryError(op string, err error) *verify.Error {
	return verify.FromRegistry(string(registry.Classify(err)), op, err)
}
