package cosign

import (
	"context"
	"fmt"
	"time"

	"github.com/sigstore/cosign/v3/pkg/oci"

	"github.com/vouchproject/vouch/internal/verify"
)

// AttestationEnvelope is one DSSE attestation envelope found for a subject, with the route
// that found it and the material to verify it with. Exactly one of Signature and Bundle is
// set.
type AttestationEnvelope struct {
	Route  string // verify.RouteLegacyTag (.att tag), RouteOCI11Referrer / RouteReferrersTagSchema (cosign attestation referrer), RouteSigstoreBundle
	Detail string
	// Signature is a cosign attestation layer (the .att tag, or a referrer whose layers are DSSE
	// envelopes): its payload is the envelope JSON; its annotations carry the certificate,
	// chain, Rekor bundle and RFC 3161 timestamp. Verify it with cosign.VerifyImageAttestation
	// and the attestor's plan (CheckOpts with cosign.IntotoSubjectClaimVerifier).
	Signature oci.Signature
	// Bundle is a Sigstore bundle holding a DSSE envelope of an in-toto statement, with its
	// verification material (key hint or certificate, tlog entries, timestamps). Verify it
	// with VerifyAttestationBundle.
	Bundle *Bundle
	// Envelope is the DSSE envelope as JSON ({"payloadType","payload","signatures"}), for
	// reading before verification — nothing in it is trusted until verified.
	Envelope []byte
}

// DiscoveredAttestations is every attestation envelope found for a subject, and why some
// artifacts could not be read (to explain a failure, never to pass one).
type DiscoveredAttestations struct {
	Envelopes []AttestationEnvelope
	Problems  []string
}

// DiscoverAttestations returns the subject's DSSE attestation envelopes from every route users'
// tools write them to, each read once per evaluation (the subject's memo, shared with the
// signature discovery and with Attestations): for type Cosign, cosign's sha256-<hex>.att tag
// and its attestation referrers in the signature repository, and Sigstore bundles whose
// statement is not cosign's signature statement; for type SigstoreBundle, the bundles in the
// image's own repository (spec §3.11). A route that could not be listed is an undecided
// error; a cap exceeded is a failure.
func (v *Verifier) DiscoverAttestations(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor) (*DiscoveredAttestations, error) {
	src, err := v.locate(ctx, s, e, a)
	if err != nil {
		return nil, err
	}
	out := &DiscoveredAttestations{}
	repo := src.sigRepo
	if e.Type == "SigstoreBundle" {
		repo = src.digest.Context()
	} else {
		read, err := v.attestationLayers(ctx, s, src.digest, src.ropts)
		if err != nil {
			return nil, err
		}
		out.Problems = append(out.Problems, read.problems...)
		for _, l := range read.sigs {
			env, _ := l.Payload()
			out.Envelopes = append(out.Envelopes, AttestationEnvelope{Route: verify.RouteLegacyTag, Detail: "cosign attestation tag", Signature: l, Envelope: env})
		}
	}
	list, err := v.listReferrers(ctx, s, src, repo)
	if err != nil {
		return nil, err
	}
	out.Problems = append(out.Problems, list.problems...)
	if e.Type != "SigstoreBundle" {
		cands, problems, err := v.referrerAttestations(ctx, s, src, repo, list)
		if err != nil {
			return nil, err
		}
		out.Problems = append(out.Problems, problems...)
		for _, c := range cands {
			env, _ := c.sig.Payload()
			out.Envelopes = append(out.Envelopes, AttestationEnvelope{Route: c.route, Detail: c.detail, Signature: c.sig, Envelope: env})
		}
	}
	bundles, problems, err := v.bundles(ctx, s, src, repo, list)
	if err != nil {
		return nil, err
	}
	out.Problems = append(out.Problems, problems...)
	for _, b := range bundles {
		if b.Statement == nil || b.IsSignature() {
			continue
		}
		out.Envelopes = append(out.Envelopes, AttestationEnvelope{Route: verify.RouteSigstoreBundle, Detail: b.detail(), Bundle: b, Envelope: b.envelopeJSON()})
	}
	return out, nil
}

// VerifyAttestationBundle verifies an attestation bundle found by DiscoverAttestations for the
// attestor, offline with sigstore-go and the same trust material as signatures (the attestor's
// key or KMS key, certificates, roots, Rekor, CT and TSA keys, then the policy's trusted
// root): the envelope's signature, its statement naming the subject's digest (bundle binding,
// landscape §4.4 group 6), the transparency-log entry and SCT when required, then the keyless
// identity and pinned certificate. It returns the verified statement. A bundle that does not
// verify is a failure (CodeNoMatch, or CodeIdentity); missing trust material is undecided.
func (v *Verifier) VerifyAttestationBundle(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, b *Bundle) (*Statement, error) {
	return v.verifyAttestationBundle(ctx, s, e, a, b, nil)
}

// verifyAttestationBundle is VerifyAttestationBundle, setting *until (when until is not nil)
// to how long the bundle keeps verifying (bundleTrust.validUntil).
func (v *Verifier) verifyAttestationBundle(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, b *Bundle, until *time.Time) (*Statement, error) {
	tr, err := v.roots.get(e.TrustedRoot)
	if err != nil {
		return nil, err
	}
	if a, err = v.resolveKey(ctx, s, a); err != nil {
		return nil, err
	}
	p, err := newPlan(a, tr)
	if err != nil {
		return nil, err
	}
	src, err := v.locate(ctx, s, e, a)
	if err != nil {
		return nil, err
	}
	bt, err := newBundleTrust(a, tr, p.co.SigVerifier)
	if err != nil {
		return nil, err
	}
	res, err := bt.verifyBundle(b, src.hash)
	if err != nil {
		return nil, verify.Errorf(verify.CodeNoMatch, fmt.Sprintf("no matching attestations: %s: %v", b.detail(), err), nil)
	}
	if err := bt.accept(leafOf(b), res); err != nil {
		code := verify.CodeNoMatch
		if p.keyless != nil {
			code = verify.CodeIdentity
		}
		return nil, verify.Errorf(code, err.Error(), nil)
	}
	if b.Statement == nil {
		return nil, verify.Errorf(verify.CodeInvalid, "the bundle holds no in-toto statement", nil)
	}
	if until != nil {
		*until = bt.validUntil(b, res)
	}
	return b.Statement, nil
}
