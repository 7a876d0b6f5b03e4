package cosign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/types"

	"github.com/vouchproject/vouch/internal/verify"
)

var _ verify.AttestationVerifier = (*Verifier)(nil)

// Attestations returns the in-toto statements of predicate type typ that the subject carries,
// whose DSSE envelope verifies with the attestor's authority — with the same offline
// transparency-log, SCT, timestamp, certificate and keyless identity checks as signatures
// (plan.go) — and whose statement names the subject's digest (cosign's
// IntotoSubjectClaimVerifier). Envelopes are found by DiscoverAttestations: for type Cosign,
// the layers of the sha256-<hex>.att tag in the attestor's or entry's repository (cosign v2
// `cosign attest`, spec §3.12.1), cosign's attestation referrers and the Sigstore bundles of
// attestations (cosign v3 `cosign attest`); for type SigstoreBundle, the bundles (spec §3.11).
// Each statement is the signed in-toto statement with "type" set to its predicateType, as
// Kyverno presents it to conditions.
//
// The predicate type is read from the signed statement and compared exactly: the layer's
// predicateType annotation is not signed and decides nothing, and a type that merely starts
// with, contains or resembles typ is another type (landscape §4.4 group 5). Envelopes that are
// not in-toto statements are ignored; so are statements of the type by another keyless
// identity, unless no statement of the type has the identity (an identity failure). No
// statement of typ among the verified ones is an empty list (the caller reports Kyverno's
// "attestions not found for predicate type"); no envelope that verifies is cosign's
// "no matching attestations" failure.
//
// The time returned is how long the statements keep verifying: the earliest bound of the
// signatures of the statements returned (verify.Evidence.ValidUntil; zero: unbounded), since
// verifying again after it would drop one of them.
func (v *Verifier) Attestations(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, typ string) ([]verify.Statement, time.Time, error) {
	var until time.Time
	sts, err := v.attestations(ctx, s, e, a, typ, &until)
	if err != nil || len(sts) == 0 {
		return sts, time.Time{}, err
	}
	return sts, until, nil
}

// attestations is Attestations, bounding *until by each statement it returns.
func (v *Verifier) attestations(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, typ string, until *time.Time) ([]verify.Statement, error) {
	switch e.Type {
	case "", "Cosign", "SigstoreBundle":
	default:
		return nil, unsupported(fmt.Sprintf("attestations of type %s are not supported yet", e.Type))
	}
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
	co := p.co
	co.ClaimVerifier = cosign.IntotoSubjectClaimVerifier
	want := a.EffectiveAnnotations(e)
	if len(want) > 0 {
		// Checked on the in-toto subject that names the digest, as cosign verify-attestation
		// does (Kyverno checks the envelope as if it were a simple-signing payload).
		co.Annotations = make(map[string]any, len(want))
		for k, val := range want {
			co.Annotations[k] = val
		}
	}
	src, err := v.locate(ctx, s, e, a)
	if err != nil {
		return nil, err
	}
	co.RegistryClientOpts = src.ropts
	found, err := v.DiscoverAttestations(ctx, s, e, a)
	if err != nil {
		return nil, err
	}
	var layers []oci.Signature
	var bundles []AttestationEnvelope
	for _, env := range found.Envelopes {
		if env.Bundle != nil {
			bundles = append(bundles, env)
		} else if env.Signature != nil {
			layers = append(layers, env.Signature)
		}
	}
	if len(layers)+len(bundles) == 0 {
		msg := "no matching attestations: no attestations found"
		if len(found.Problems) > 0 {
			msg += ": " + strings.Join(found.Problems, "\n ")
		}
		return nil, verify.Errorf(verify.CodeNoSignatures, msg, nil)
	}
	verified, problems := verifyAttestationsEach(ctx, layers, src.hash, co)
	var statements []verify.Statement
	var ofType []oci.Signature
	byLayer := map[oci.Signature]verify.Statement{}
	for _, att := range verified {
		if st, ok := decodeStatement(att); ok && st["type"] == typ {
			ofType = append(ofType, att)
			byLayer[att] = st
		}
	}
	var identity []string // why statements of the type were not by the attestor's identity
	if len(ofType) > 0 {
		// The identity (keyless) and the pinned certificate's validity are checked on the
		// attestations of the type, as Kyverno checks identities (spec §3.12.1): one by
		// another identity is ignored, none by the identity is an identity failure.
		accepted, err := p.accept(ofType)
		if err != nil {
			identity = append(identity, err.Error())
		}
		for _, att := range accepted {
			statements = append(statements, byLayer[att])
			*until = verify.Earliest(*until, p.validUntil(att))
		}
	}
	verifiedBundles := 0
	for _, env := range bundles {
		var bundleUntil time.Time
		if _, err := v.verifyAttestationBundle(ctx, s, e, a, env.Bundle, &bundleUntil); err != nil {
			if verify.Undecided(err) {
				return nil, err
			}
			if errors.Is(err, verify.ErrIdentity) && env.Bundle.PredicateType == typ {
				identity = append(identity, err.Error())
			} else {
				problems = append(problems, strings.TrimPrefix(err.Error(), "no matching attestations: "))
			}
			continue
		}
		verifiedBundles++
		st, ok := decodeEnvelope(env.Envelope)
		if !ok || st["type"] != typ {
			continue
		}
		if len(want) > 0 && !annotationsMatch(env.Bundle.annotations(src.hash), want) {
			problems = append(problems, env.Detail+": missing or incorrect annotation")
			continue
		}
		statements = append(statements, st)
		*until = verify.Earliest(*until, bundleUntil)
	}
	switch {
	case len(statements) > 0:
		return statements, nil
	case len(identity) > 0:
		return nil, verify.Errorf(verify.CodeIdentity, strings.Join(identity, "; "), nil)
	case len(verified)+verifiedBundles == 0:
		return nil, verify.Errorf(verify.CodeNoMatch, "no matching attestations: "+strings.Join(append(problems, found.Problems...), "\n "), nil)
	}
	return nil, nil
}

// attestationLayers fetches the layers of the subject's attestation tag once per repository
// and evaluation (the Subject's memo), each read completely, at most maxSignatures of them;
// layers that are malformed are problems.
func (v *Verifier) attestationLayers(ctx context.Context, s verify.Subject, digest name.Digest, ropts []ociremote.Option) (*layers, error) {
	tag, err := ociremote.AttestationTag(digest, ropts...)
	if err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "computing the attestation tag", err)
	}
	got, err := s.Memo.Do("cosign-attestations:"+tag.String(), func() (any, error) {
		atts, err := ociremote.Signatures(tag, ropts...)
		if err != nil {
			return nil, registryError("fetching attestations "+tag.String(), err)
		}
		list, err := atts.Get()
		if err != nil {
			return nil, registryError("reading attestations "+tag.String(), err)
		}
		if len(list) > v.maxSignatures {
			return nil, verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("%s holds %d attestations, more than the limit of %d", tag, len(list), v.maxSignatures), nil)
		}
		return copyLayers(list, "attestation "+tag.String())
	})
	if err != nil {
		return nil, err
	}
	return got.(*layers), nil
}

// verifyAttestationsEach returns the attestation layers whose envelope verifies and whose
// statement names the digest, and why each other one did not.
func verifyAttestationsEach(ctx context.Context, atts []oci.Signature, h v1.Hash, co *cosign.CheckOpts) ([]oci.Signature, []string) {
	var verified []oci.Signature
	var problems []string
	for _, att := range atts {
		if mt, err := att.MediaType(); err != nil || mt != types.DssePayloadType {
			problems = append(problems, fmt.Sprintf("layer media type %s is not a DSSE envelope", mt))
			continue
		}
		if !co.IgnoreTlog {
			if b, err := att.Bundle(); err == nil && b == nil {
				problems = append(problems, "no Rekor bundle on the attestation: transparency-log inclusion is verified offline, from the bundle")
				continue
			}
		}
		// VerifyBlobAttestation is cosign's check of one attestation layer (the loop body of
		// VerifyImageAttestation): envelope signature, certificate, bundle, timestamp, claim.
		if _, err := cosign.VerifyBlobAttestation(ctx, att, h, co); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		verified = append(verified, att)
	}
	return verified, problems
}

// decodeStatement returns the in-toto statement a verified attestation layer carries (see
// decodeEnvelope).
func decodeStatement(att oci.Signature) (verify.Statement, bool) {
	raw, err := att.Payload()
	if err != nil {
		return nil, false
	}
	return decodeEnvelope(raw)
}

// decodeEnvelope returns the in-toto statement of a verified DSSE envelope (JSON) as a JSON
// object with "type" set to its predicateType; ok is false for an envelope that is not an
// in-toto statement with a predicate type.
func decodeEnvelope(raw []byte) (verify.Statement, bool) {
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.PayloadType != types.IntotoPayloadType {
		return nil, false
	}
	body, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, false
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, false
	}
	pt, _ := st["predicateType"].(string)
	if pt == "" {
		return nil, false
	}
	st["type"] = pt
	return st, true
}
