package webhook

import (
	"net/http"
	"strings"
	"testing"
)

// TestRequestVariables: the `request` variable of preconditions holds the AdmissionRequest's
// own fields (uid, dryRun, resource, requestKind, roles...) as in Kyverno, so a precondition
// on one of them decides as it would there — not as "" (the value of a variable that does not
// resolve in preconditions), which would skip the rule.
func TestRequestVariables(t *testing.T) {
	s := fakeServer(t, `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    preconditions:
      all:
      - {key: "{{ request.dryRun }}", operator: Equals, value: false}
      - {key: "{{ request.resource.resource }}", operator: Equals, value: pods}
      - {key: "{{ length(request.uid) }}", operator: GreaterThan, value: 0}
      - {key: "{{ request.roles }}", operator: Equals, value: []}
    verifyImages:
    - imageReferences: ["*"]
      mutateDigest: false
      verifyDigest: false
      attestors: [{entries: [{keys: {kms: "awskms:///k"}}]}]
`)
	review := func(uid, dryRun, image string) string {
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"a","image":"` + image + `"}]}}`
		return strings.Replace(admissionReview("admission.k8s.io/v1", uid, "CREATE", pod), `"operation"`, `"dryRun":`+dryRun+`,"operation"`, 1)
	}
	for _, tc := range []struct {
		name, body string
		allowed    bool
		message    string
	}{
		{"unsigned, the rule applies", review("u1", "false", "ghcr.io/a/bad:1"), false, "failed to verify image ghcr.io/a/bad:1"},
		{"signed", review("u2", "false", "ghcr.io/a/signed:1"), true, ""},
		{"dry run, preconditions not met", review("u3", "true", "ghcr.io/a/bad:1"), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := postReview(t, s, "/mutate", tc.body)
			if code != http.StatusOK || resp.Allowed != tc.allowed {
				t.Fatalf("HTTP %d, allowed %v, want %v: %+v", code, resp.Allowed, tc.allowed, resp)
			}
			if tc.message != "" && (resp.Status == nil || !strings.Contains(resp.Status.Message, tc.message)) {
				t.Errorf("denial %+v, want %q", resp.Status, tc.message)
			}
		})
	}
}
