package notary

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vouchproject/vouch/internal/verify"
)

// Attestations returns the subject's referrer artifacts of type typ that carry a Notary
// signature verifying with the attestor (spec §4 FetchAttestations), as statements: the
// referrer's manifest with "type" (its artifact type) and "predicate" (its one layer, JSON).
//
// Unlike Kyverno, which reads only the first referrer of the type, every referrer of the
// type is considered, and only signed ones become statements: an unsigned referrer pushed in
// front of a signed one neither hides it nor is read.
//
// The time returned is how long the statements keep verifying: the earliest bound of the
// signatures of the statements returned (validUntil; zero: unbounded).
func (v *Verifier) Attestations(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, typ string) ([]verify.Statement, time.Time, error) {
	var until time.Time
	sts, err := v.attestations(ctx, s, e, a, typ, &until)
	if err != nil {
		return nil, time.Time{}, err
	}
	return sts, until, nil
}

// attestations is Attestations, bounding *until by the signature of each statement returned.
func (v *Verifier) attestations(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, typ string, until *time.Time) ([]verify.Statement, error) {
	if err := checkEntry(e, a); err != nil {
		return nil, err
	}
	image, err := v.target(ctx, s, e.Insecure, s.Digest)
	if err != nil {
		return nil, err
	}
	refs, err := v.typedReferrers(ctx, s, e.Insecure, image, typ)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, verify.Errorf(verify.CodeNoSignatures, fmt.Sprintf("no matching attestations found for image %s with type %s", s.Ref.String(), typ), nil)
	}
	var out []verify.Statement
	var problems []*verify.Error
	for _, r := range refs {
		var stUntil time.Time
		st, perr := v.attestation(ctx, s, e, a, image, r, typ, &stUntil)
		if perr != nil {
			problems = append(problems, perr)
			continue
		}
		out = append(out, st)
		*until = verify.Earliest(*until, stUntil)
	}
	if len(out) == 0 {
		return nil, combine(fmt.Sprintf("no verified attestations found for image %s with type %s: ", s.Ref.String(), typ), problems)
	}
	return out, nil
}

// typedReferrers lists the referrers of the image of one artifact type, once per evaluation.
func (v *Verifier) typedReferrers(ctx context.Context, s verify.Subject, insecure bool, image *artifact, typ string) ([]v1.Descriptor, error) {
	got, err := s.Memo.Do(fmt.Sprintf("notary-referrers:%t:%s:%s", insecure, typ, image.ref), func() (any, error) {
		return v.referrers(ctx, v.registry(insecure), image, typ)
	})
	if err != nil {
		return nil, err
	}
	return got.([]v1.Descriptor), nil
}

// attestation verifies one referrer's signature and reads its payload; *until is set to how
// long the signature keeps verifying.
func (v *Verifier) attestation(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, image *artifact, r v1.Descriptor, typ string, until *time.Time) (verify.Statement, *verify.Error) {
	ref, err := v.target(ctx, s, e.Insecure, r.Digest.String())
	if err != nil {
		return nil, asError(err)
	}
	if *until, err = v.verifySignatures(ctx, s, e, a, ref); err != nil {
		return nil, asError(err)
	}
	c := v.registry(e.Insecure)
	m, merr := v.readManifest(ctx, c, image, r)
	if merr != nil {
		return nil, merr
	}
	what := "attestation " + r.Digest.String()
	if m.ArtifactType != typ {
		return nil, verify.Errorf(verify.CodeInvalid, fmt.Sprintf("%s: artifact type %q, listed as %q", what, m.ArtifactType, typ), nil)
	}
	switch len(m.Layers) {
	case 0:
		return nil, verify.Errorf(verify.CodeInvalid, what+": no predicate found", nil)
	case 1:
	default:
		return nil, verify.Errorf(verify.CodeInvalid, what+": multiple layers in predicate not supported", nil)
	}
	raw, berr := v.readBlob(ctx, c, image, m.Layers[0], v.maxPayloadBytes, what+" payload")
	if berr != nil {
		return nil, berr
	}
	var predicate any
	if err := json.Unmarshal(raw, &predicate); err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, what+": decoding the payload as JSON", err)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, what, err)
	}
	st := verify.Statement{}
	if err := json.Unmarshal(mb, &st); err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, what, err)
	}
	st["type"] = typ
	st["predicate"] = predicate
	return st, nil
}

// asError returns err as a *verify.Error (an unexpected error counts as undecided).
func asError(err error) *verify.Error {
	if e, ok := err.(*verify.Error); ok {
		return e
	}
	return verify.Errorf(verify.CodeUnavailable, "", err)
}
