package policy

import (
	"strings"
	"testing"

	"github.com/vouchproject/vouch/internal/verify"
)

// trustedRootPolicy is a policy with two verifyImages entries (one autogen'd rule each) and,
// unless annotation is "", the vouch.dev/trusted-root annotation.
func trustedRootPolicy(annotation string) string {
	meta := "metadata: {name: p}\n"
	if annotation != "" {
		meta = "metadata:\n  name: p\n  annotations:\n    " + verify.TrustedRootAnnotation + ": '" + annotation + "'\n"
	}
	return "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\n" + meta + `spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["ghcr.io/*"]
      attestors:
      - entries:
        - keyless: {subject: signer@example.com, rekor: {url: https://rekor.sigstore.dev}}
    - imageReferences: ["quay.io/*"]
      attestors:
      - entries:
        - keyless: {subject: signer@example.com, rekor: {url: https://rekor.sigstore.dev}}
`
}

// TestTrustedRootAnnotation: the policy's vouch.dev/trusted-root reaches every entry of every
// rule (autogen rules included), and a change of it is a new version of a file policy, so that
// cached verdicts made with the old trust material are not reused.
func TestTrustedRootAnnotation(t *testing.T) {
	const (
		empty  = `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`
		empty2 = `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[]}`
	)
	with := load(t, trustedRootPolicy(empty)).Policies()[0]
	entries := 0
	for _, r := range with.Rules {
		for _, v := range r.Verifications {
			entries++
			if string(v.Entry.TrustedRoot) != empty {
				t.Errorf("rule %s entry %d: TrustedRoot = %q", r.Name, v.Index, v.Entry.TrustedRoot)
			}
		}
	}
	if entries < 4 {
		t.Errorf("%d entries, want the two of the rule and of its autogen rules", entries)
	}
	without := load(t, trustedRootPolicy("")).Policies()[0]
	for _, r := range without.Rules {
		for _, v := range r.Verifications {
			if v.Entry.TrustedRoot != nil {
				t.Errorf("a policy without the annotation has TrustedRoot %q", v.Entry.TrustedRoot)
			}
		}
	}
	other := load(t, trustedRootPolicy(empty2)).Policies()[0]
	if with.ResourceVersion == without.ResourceVersion || with.ResourceVersion == other.ResourceVersion {
		t.Errorf("versions %s (with), %s (without), %s (other root): a trust-root change must change the version",
			with.ResourceVersion, without.ResourceVersion, other.ResourceVersion)
	}
	err := loadErr(t, trustedRootPolicy(`{"mediaType": 7}`))
	if err == nil || !strings.Contains(err.Error(), "metadata.annotations["+verify.TrustedRootAnnotation+"]") {
		t.Errorf("invalid trusted root: err = %v", err)
	}
}
