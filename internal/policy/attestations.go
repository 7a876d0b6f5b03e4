package policy

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/conditions"
	"github.com/vouchproject/vouch/internal/verify"
)

// conditionsError turns an error of the conditions compiler, which starts with the path of
// the offending field ("spec...conditions[0].all[1].key: unknown function ..."), into a field
// error at that path; fallback is the path used when the error names none.
func conditionsError(err error, fallback *field.Path) *field.Error {
	msg := err.Error()
	if at, detail, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(at, fallback.String()) {
		return field.Invalid(field.NewPath(at), field.OmitValueType{}, detail)
	}
	return field.Invalid(fallback, field.OmitValueType{}, msg)
}

// compileValidate compiles an entry's validate block (spec §3.13) once, at load: the deny
// conditions and the message template. The engine evaluates them on every admission, after
// the entry's attestations, against each attestation's verified payload under its name.
func compileValidate(val *v1.ValidateImageVerification, path *field.Path, v *Verification) field.ErrorList {
	if val == nil {
		return nil
	}
	var errs field.ErrorList
	if val.Deny != nil {
		dp := path.Child("deny", "conditions")
		deny, err := conditions.CompileDeny(val.Deny.Conditions, dp.String())
		if err != nil {
			errs = append(errs, conditionsError(err, dp))
		}
		v.Deny = deny
	}
	mp := path.Child("message")
	msg, err := conditions.CompileTemplate(val.Message, mp.String())
	if err != nil {
		errs = append(errs, conditionsError(err, mp))
	}
	v.DenyMessage = msg
	return errs
}

// defaultAttestors is the attestor set of an attestation that declares none (spec §3.12 step
// 2): Kyverno checks it with one empty attestor, which for Cosign means keyless with no
// identity constraint, tlog required and SCTs ignored, trusting the public-good Fulcio roots.
// vouch compiles the same attestor; its Fulcio roots and Rekor key can only come from the
// policy's vouch.dev/trusted-root (never TUF), so without one the attestation cannot be
// verified — an error, never a pass. For Notary the empty attestor has no certificates, which
// the Notary verifier refuses (Kyverno dereferences nil there).
func defaultAttestors(typ v1.ImageVerificationType, attestationPath string) []*verify.AttestorSet {
	setPath := attestationPath + ".attestors[0]"
	a := &verify.Attestor{Path: setPath + ".entries[0]", SignatureAlgorithm: "sha256"}
	if typ != v1.Notary {
		a.Kind, a.Keyless, a.CTLog = "keyless", &verify.Keyless{}, &verify.CTLog{IgnoreSCT: true}
	}
	return []*verify.AttestorSet{{Path: setPath, Required: 1, Entries: []*verify.Attestor{a}}}
}
