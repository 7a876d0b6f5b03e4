package v1

import (
	"encoding/json"
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxAttestorNesting bounds how deeply attestor sets may nest through entries[].attestor.
const MaxAttestorNesting = 4

// SignatureAlgorithms are the hash names accepted for keys and certificates ("" means sha256).
var SignatureAlgorithms = map[string]bool{"": true, "sha224": true, "sha256": true, "sha384": true, "sha512": true}

// CertificateExtensions maps the additionalExtensions keys Kyverno accepts (names and OIDs) to
// the Fulcio extension OID they denote (spec §3.5).
var CertificateExtensions = map[string]string{
	"oidcIssuer": "1.3.6.1.4.1.57264.1.1", "1.3.6.1.4.1.57264.1.1": "1.3.6.1.4.1.57264.1.1",
	"githubWorkflowTrigger": "1.3.6.1.4.1.57264.1.2", "1.3.6.1.4.1.57264.1.2": "1.3.6.1.4.1.57264.1.2",
	"githubWorkflowSha": "1.3.6.1.4.1.57264.1.3", "1.3.6.1.4.1.57264.1.3": "1.3.6.1.4.1.57264.1.3",
	"githubWorkflowName": "1.3.6.1.4.1.57264.1.4", "1.3.6.1.4.1.57264.1.4": "1.3.6.1.4.1.57264.1.4",
	"githubWorkflowRepository": "1.3.6.1.4.1.57264.1.5", "1.3.6.1.4.1.57264.1.5": "1.3.6.1.4.1.57264.1.5",
	"githubWorkflowRef": "1.3.6.1.4.1.57264.1.6", "1.3.6.1.4.1.57264.1.6": "1.3.6.1.4.1.57264.1.6",
}

// RuleFailureAction returns the failure action that governs a verifyImages rule (spec §2.12):
// Enforce if any entry says Enforce, else the first entry's explicit action, else the
// policy's validationFailureAction (default Audit).
func RuleFailureAction(spec *Spec, r *Rule) ValidationFailureAction {
	var first *ValidationFailureAction
	for i := range r.VerifyImages {
		a := r.VerifyImages[i].FailureAction
		if a == nil {
			continue
		}
		if a.Enforce() {
			return Enforce
		}
		if first == nil {
			first = a
		}
	}
	if first != nil {
		return *first
	}
	return spec.GetValidationFailureAction()
}

func (v *validator) verifyImages(p *Policy, r *Rule, path *field.Path) {
	audit := !RuleFailureAction(&p.Spec, r).Enforce()
	anyMutate := false
	for i := range r.VerifyImages {
		anyMutate = anyMutate || r.VerifyImages[i].GetMutateDigest()
	}
	for kind, configs := range r.ImageExtractors {
		for j, c := range configs {
			if anyMutate && c.JMESPath != "" {
				v.add(field.Invalid(path.Child("imageExtractors").Key(kind).Index(j).Child("jmesPath"), c.JMESPath,
					"jmespath may not be used in an image extractor when mutating digests with verify images"))
			}
		}
	}
	for i := range r.VerifyImages {
		v.imageVerification(r.Name, &r.VerifyImages[i], path.Child("verifyImages").Index(i), audit)
	}
}

func (v *validator) imageVerification(rule string, iv *ImageVerification, path *field.Path, audit bool) {
	if iv.FailureAction != nil && *iv.FailureAction != Audit && *iv.FailureAction != Enforce {
		v.add(field.NotSupported(path.Child("failureAction"), *iv.FailureAction, []string{"Audit", "Enforce"}))
	}
	switch iv.Type {
	case "", Cosign, SigstoreBundle, Notary:
	default:
		v.add(field.NotSupported(path.Child("type"), iv.Type, []string{"Cosign", "SigstoreBundle", "Notary"}))
	}
	if audit && iv.GetMutateDigest() {
		v.add(field.Invalid(path.Child("mutateDigest"), true, "mutateDigest must be set to false for ‘Audit’ failure action"))
	}
	for _, f := range []struct{ name, value string }{{"image", iv.Image}, {"key", iv.Key}, {"roots", iv.Roots}, {"subject", iv.Subject}, {"issuer", iv.Issuer}} {
		if f.value != "" {
			v.warnings = append(v.warnings, path.Child(f.name).String()+": deprecated, use imageReferences and attestors instead")
		}
	}
	if len(iv.AdditionalExtensions) > 0 {
		v.warnings = append(v.warnings, path.Child("additionalExtensions").String()+": deprecated and ignored (as in Kyverno); use keyless.additionalExtensions")
	}
	cp := iv.Convert()
	if len(cp.ImageReferences) == 0 {
		v.add(field.Required(path.Child("imageReferences"), "An image reference is required"))
	}
	for i, ref := range cp.ImageReferences {
		if HasVariables(ref) {
			v.add(field.Invalid(path.Child("imageReferences").Index(i), ref, fmt.Sprintf("rule %q should not have variables in image reference section", rule)))
		}
	}
	for i := range cp.Attestors {
		v.attestorSet(&cp.Attestors[i], path.Child("attestors").Index(i), 0)
	}
	if iv.GetType() == Notary {
		for i := range iv.Attestors {
			for j, e := range iv.Attestors[i].Entries {
				ep := path.Child("attestors").Index(i).Child("entries").Index(j)
				if e.Keyless != nil {
					v.add(field.Invalid(ep.Child("keyless"), field.OmitValueType{}, "Keyless field is not allowed for type notary"))
				}
				if e.Keys != nil {
					v.add(field.Invalid(ep.Child("keys"), field.OmitValueType{}, "Keys field is not allowed for type notary"))
				}
			}
		}
	}
	for i := range cp.Attestations {
		v.attestation(&cp.Attestations[i], path.Child("attestations").Index(i))
	}
	if iv.Validation != nil && iv.Validation.Deny != nil && iv.Validation.Deny.Conditions != nil {
		v.conditions(iv.Validation.Deny.Conditions, path.Child("validate", "deny", "conditions"))
	}
	v.credentials(iv.ImageRegistryCredentials, path.Child("imageRegistryCredentials"))
}

func (v *validator) attestation(a *Attestation, path *field.Path) {
	if a.GetType() == "" {
		v.add(field.Required(path.Child("type"), "missing type"))
	}
	if a.PredicateType != "" {
		v.warnings = append(v.warnings, fmt.Sprintf("%s: predicateType has been deprecated use 'type: %s' instead of 'predicateType: %s'", path.Child("predicateType"), a.PredicateType, a.PredicateType))
	}
	for i := range a.Attestors {
		v.attestorSet(&a.Attestors[i], path.Child("attestors").Index(i), 0)
	}
	for i := range a.Conditions {
		v.conditions(&a.Conditions[i], path.Child("conditions").Index(i))
	}
}

func (v *validator) attestorSet(as *AttestorSet, path *field.Path, depth int) {
	if depth > MaxAttestorNesting {
		v.add(field.Invalid(path, field.OmitValueType{}, fmt.Sprintf("attestor sets nest deeper than %d levels", MaxAttestorNesting)))
		return
	}
	if as.Count != nil {
		if *as.Count < 1 {
			v.add(field.Invalid(path.Child("count"), *as.Count, "must be greater than or equal to 1"))
		} else if *as.Count > len(as.Entries) {
			v.add(field.Invalid(path.Child("count"), *as.Count, "Count cannot exceed length of entries"))
		}
	}
	if len(as.Entries) == 0 {
		v.add(field.Required(path.Child("entries"), "An entry is required"))
	}
	for i := range as.Entries {
		v.attestor(&as.Entries[i], path.Child("entries").Index(i), depth)
	}
}

func (v *validator) attestor(a *Attestor, path *field.Path, depth int) {
	n := 0
	for _, set := range []bool{a.Keys != nil, a.Certificates != nil, a.Keyless != nil, a.Attestor != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.add(field.Invalid(path, field.OmitValueType{}, "keys, certificates, keyless, or a nested attestor is required"))
	}
	if !SignatureAlgorithms[a.SignatureAlgorithm] {
		v.add(field.NotSupported(path.Child("signatureAlgorithm"), a.SignatureAlgorithm, []string{"sha224", "sha256", "sha384", "sha512"}))
	}
	if k := a.Keys; k != nil {
		kp := path.Child("keys")
		if k.PublicKeys == "" && k.KMS == "" && k.Secret == nil {
			v.add(field.Invalid(kp, field.OmitValueType{}, "A public key, kms key or secret is required"))
		}
		if !SignatureAlgorithms[k.SignatureAlgorithm] {
			v.add(field.Invalid(kp.Child("signatureAlgorithm"), k.SignatureAlgorithm, "Invalid signature algorithm provided"))
		}
		if k.Secret != nil {
			if k.Secret.Name == "" {
				v.add(field.Required(kp.Child("secret", "name"), ""))
			}
			if k.Secret.Namespace == "" {
				v.add(field.Required(kp.Child("secret", "namespace"), ""))
			}
		}
	}
	if c := a.Certificates; c != nil && c.Certificate == "" && c.CertificateChain == "" {
		v.add(field.Invalid(path.Child("certificates"), field.OmitValueType{}, "cert or certChain required"))
	}
	if k := a.Keyless; k != nil {
		v.keyless(k, path.Child("keyless"))
	}
	if a.Attestor != nil {
		v.attestorSet(a.Attestor, path.Child("attestor"), depth+1)
	}
}

func (v *validator) keyless(k *KeylessAttestor, path *field.Path) {
	if k.Rekor == nil && k.Roots == "" {
		v.add(field.Invalid(path, field.OmitValueType{}, "Either Rekor URL or roots are required"))
	}
	if k.Rekor != nil && k.Rekor.URL == "" {
		v.add(field.Invalid(path.Child("rekor", "url"), "", "An URL is required"))
	}
	for _, re := range []struct{ name, expr string }{{"issuerRegExp", k.IssuerRegExp}, {"subjectRegExp", k.SubjectRegExp}} {
		if re.expr == "" || HasVariables(re.expr) {
			continue
		}
		if _, err := regexp.Compile(re.expr); err != nil {
			v.add(field.Invalid(path.Child(re.name), re.expr, "invalid regular expression: "+err.Error()))
		}
	}
	for key := range k.AdditionalExtensions {
		if _, ok := CertificateExtensions[key]; !ok {
			v.add(field.Invalid(path.Child("additionalExtensions").Key(key), key, "invalid certificate extension "+key))
		}
	}
}

func (v *validator) credentials(c *ImageRegistryCredentials, path *field.Path) {
	if c == nil {
		return
	}
	for i, p := range c.Providers {
		switch p {
		case ProviderDefault, ProviderAmazon, ProviderAzure, ProviderGoogle, ProviderGitHub:
		default:
			v.add(field.NotSupported(path.Child("providers").Index(i), p, []string{"default", "amazon", "azure", "google", "github"}))
		}
	}
}

// jsonHasVariables reports whether the JSON encoding of v contains a {{ variable }}.
func jsonHasVariables(v any) bool {
	b, err := json.Marshal(v)
	return err == nil && HasVariables(string(b))
}
