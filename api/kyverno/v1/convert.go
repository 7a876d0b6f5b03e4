package v1

// Convert returns the entry with Kyverno's legacy fields (image, key, roots, subject, issuer)
// turned into imageReferences and an attestor set (spec §1.5). The receiver is not modified.
//
// One deliberate difference from Kyverno: when the entry also has attestations, Kyverno drops
// the legacy attestor (the attestations then run against the public-good Sigstore keyless
// defaults). vouch gives the legacy attestor to every attestation that declares no attestors of
// its own, which is what the policy author wrote (docs/COMPATIBILITY.md).
func (iv *ImageVerification) Convert() *ImageVerification {
	if iv.Image == "" && iv.Key == "" && iv.Issuer == "" {
		return iv
	}
	cp := *iv
	cp.Image, cp.Issuer, cp.Subject, cp.Roots = "", "", "", ""
	cp.ImageReferences = append([]string(nil), iv.ImageReferences...)
	if iv.Image != "" {
		cp.ImageReferences = append(cp.ImageReferences, iv.Image)
	}
	if len(iv.Annotations) == 0 && iv.Key == "" && iv.Issuer == "" {
		return &cp
	}
	legacy := Attestor{Annotations: iv.Annotations}
	switch {
	case iv.Key != "":
		legacy.Keys = &StaticKeyAttestor{PublicKeys: iv.Key}
	case iv.Issuer != "":
		legacy.Keyless = &KeylessAttestor{Issuer: iv.Issuer, Subject: iv.Subject, Roots: iv.Roots}
	default:
		// Only annotations were given: Kyverno builds an attestor without key material, which
		// can never verify. Keep it so that validation reports it instead of dropping it.
	}
	set := AttestorSet{Entries: []Attestor{legacy}}
	if len(iv.Attestations) == 0 {
		cp.Attestors = append(append([]AttestorSet(nil), iv.Attestors...), set)
		return &cp
	}
	cp.Attestations = append([]Attestation(nil), iv.Attestations...)
	for i := range cp.Attestations {
		if len(cp.Attestations[i].Attestors) == 0 {
			cp.Attestations[i].Attestors = []AttestorSet{set}
		}
	}
	return &cp
}
