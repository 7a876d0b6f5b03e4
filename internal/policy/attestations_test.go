package policy

import (
	"strings"
	"testing"
)

const attestationPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      attestations:
      - name: prov
        type: https://slsa.dev/provenance/v0.2
        conditions:
        - all:
          - {key: "CONDITION", operator: Equals, value: x}
      validate:
        message: "MESSAGE"
        deny:
          conditions:
            any:
            - {key: "DENY", operator: Equals, value: true}
`

func attestationYAML(condition, message, deny string) string {
	r := strings.NewReplacer("CONDITION", condition, "MESSAGE", message, "DENY", deny)
	return r.Replace(attestationPolicy)
}

// TestCompileAttestations: conditions, validate.deny and validate.message are compiled once,
// at load, into the rules of the original and the autogen rules.
func TestCompileAttestations(t *testing.T) {
	set := load(t, attestationYAML("{{ builder.id }}", "{{ prov.builder.id }} denied", "{{ prov.x }}"))
	rules := set.Policies()[0].Rules
	if len(rules) != 3 {
		t.Fatalf("%d rules, want the rule and its two autogen rules", len(rules))
	}
	for _, r := range rules {
		v := r.Verifications[0]
		a := v.Attestations[0]
		if a.Check == nil || v.Deny == nil || v.DenyMessage == nil {
			t.Errorf("%s: conditions not compiled: check %v deny %v message %v", r.Name, a.Check, v.Deny, v.DenyMessage)
		}
		// An attestation without attestors gets Kyverno's empty attestor: keyless, no identity.
		if len(a.Attestors) != 1 || len(a.Attestors[0].Entries) != 1 {
			t.Fatalf("%s: attestors %+v, want the default set", r.Name, a.Attestors)
		}
		def := a.Attestors[0].Entries[0]
		if def.Kind != "keyless" || def.Keyless == nil || def.Path != ".attestations[0].attestors[0].entries[0]" || !def.IgnoreSCT() || def.IgnoreTlog() {
			t.Errorf("%s: default attestor %+v", r.Name, def)
		}
	}
}

// TestCompileAttestationErrors: a condition, deny condition or message that does not compile
// rejects the policy with the field path of the offending field, named once.
func TestCompileAttestationErrors(t *testing.T) {
	tests := []struct {
		name                     string
		condition, message, deny string
		want                     string
	}{
		{"condition", "{{ builder.id[ }}", "m", "{{ prov.x }}", "spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].key: Invalid value: "},
		{"deny", "{{ builder.id }}", "m", "{{ nope(prov) }}", "spec.rules[0].verifyImages[0].validate.deny.conditions.any[0].key: Invalid value: "},
		{"message", "{{ builder.id }}", "{{ prov.[ }}", "{{ prov.x }}", "spec.rules[0].verifyImages[0].validate.message: Invalid value: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadErr(t, attestationYAML(tt.condition, tt.message, tt.deny)).Error()
			if !strings.Contains(err, tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
			if strings.Count(err, "spec.rules[0].verifyImages[0]") != 1 {
				t.Errorf("the field path is repeated: %s", err)
			}
		})
	}
}
