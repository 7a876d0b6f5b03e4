package webhook

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
)

func policyServer(t *testing.T) *Server {
	t.Helper()
	cfg, _, err := SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{TLS: cfg, Engine: func() *engine.Engine { return nil }, CheckPolicy: policy.Check,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// policyReview is an AdmissionReview of a kyverno.io policy given as YAML.
func policyReview(t *testing.T, uid, op, kind, policyYAML string) string {
	t.Helper()
	obj, err := yaml.YAMLToJSON([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	resource := map[string]string{"ClusterPolicy": "clusterpolicies", "Policy": "policies", "ConfigMap": "configmaps"}[kind]
	group := "kyverno.io"
	if kind == "ConfigMap" {
		group = ""
	}
	return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `",` +
		`"kind":{"group":"` + group + `","version":"v1","kind":"` + kind + `"},"resource":{"group":"` + group + `","version":"v1","resource":"` + resource + `"},` +
		`"name":"p","operation":"` + op + `","userInfo":{"username":"alice"},"object":` + string(obj) + `}}`
}

type reviewResponse struct {
	UID      string   `json:"uid"`
	Allowed  bool     `json:"allowed"`
	Warnings []string `json:"warnings"`
	Status   *struct {
		Code    int    `json:"code"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"status"`
}

func postReview(t *testing.T, s *Server, path, body string) (int, reviewResponse) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path+"?timeout=10s", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var out struct {
		Response reviewResponse `json:"response"`
	}
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("response is not JSON: %v\n%s", err, rec.Body.String())
		}
	}
	return rec.Code, out.Response
}

const insecurePolicyYAML = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*.example.com/*"]
      skipImageReferences: ["*/base/*"]
      imageRegistryCredentials: {allowInsecureRegistry: true}
      mutateDigest: false
`

// invalidPolicyYAML has three problems: two found when decoding would stop compilation, so
// these are all validation problems, reported together.
const invalidPolicyYAML = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["ghcr.io/*"]
      attestors: [{count: 3, entries: [{keys: {kms: "gcpkms://k"}}]}]
    - mutateDigest: false
`

func TestValidatePolicy(t *testing.T) {
	// The message `vouch apply` prints for the invalid policy, without its location.
	docs, err := manifest.Split("p.yaml", []byte(invalidPolicyYAML))
	if err != nil {
		t.Fatal(err)
	}
	_, _, applyErr := policy.LoadDocuments(docs)
	if applyErr == nil {
		t.Fatal("vouch apply accepts the invalid policy")
	}
	applyMessage := policy.Problems(applyErr)
	if strings.Count(applyMessage, "\n") < 1 || !strings.Contains(applyMessage, "spec.rules[0].verifyImages[0].attestors[0].count") {
		t.Fatalf("the invalid policy should have several field-path problems: %q", applyMessage)
	}
	valid := strings.ReplaceAll(testPolicy, "require-digest", "p")
	tests := []struct {
		name, op, kind, yaml string
		allowed              bool
		code                 int
		message              string
		warnings             []string
	}{
		{name: "valid", op: "CREATE", kind: "ClusterPolicy", yaml: valid, allowed: true},
		{name: "invalid-field", op: "UPDATE", kind: "ClusterPolicy", yaml: invalidPolicyYAML, code: 422, message: applyMessage},
		{name: "unknown-field", op: "CREATE", kind: "Policy", yaml: strings.Replace(strings.ReplaceAll(valid, "ClusterPolicy", "Policy"), "mutateDigest", "mutateDigests", 1),
			code: 422, message: "spec.rules[0].verifyImages[0].mutateDigests: unknown field"},
		{name: "insecure", op: "CREATE", kind: "ClusterPolicy", yaml: insecurePolicyYAML, allowed: true, warnings: []string{
			`spec.rules[0].verifyImages[0].imageReferences[0]: "*.example.com/*" does not fix the registry host (Kyverno's * also matches /): it also selects images from other registries, e.g. evil.example/x.example.com/x`,
			`spec.rules[0].verifyImages[0].skipImageReferences[0]: "*/base/*" does not fix the registry host (Kyverno's * also matches /): images from other registries skip verification, e.g. evil.example/x/base/x`,
			"spec.rules[0].verifyImages[0].imageRegistryCredentials.allowInsecureRegistry: true lets vouch reach this entry's registries over plain HTTP and without verifying their TLS certificates",
		}},
		{name: "delete", op: "DELETE", kind: "ClusterPolicy", yaml: invalidPolicyYAML, allowed: true},
		{name: "other-kind", op: "CREATE", kind: "ConfigMap", yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\n", allowed: true},
		{name: "being-deleted", op: "UPDATE", kind: "ClusterPolicy", yaml: strings.Replace(invalidPolicyYAML, "metadata: {name: p}", "metadata: {name: p, deletionTimestamp: '2026-01-01T00:00:00Z'}", 1), allowed: true},
	}
	s := policyServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := postReview(t, s, "/validate-policy", policyReview(t, "uid-"+tt.name, tt.op, tt.kind, tt.yaml))
			if code != http.StatusOK || resp.UID != "uid-"+tt.name || resp.Allowed != tt.allowed {
				t.Fatalf("HTTP %d, response %+v; want allowed=%v with the request's UID", code, resp, tt.allowed)
			}
			if !tt.allowed {
				if resp.Status == nil || resp.Status.Code != tt.code || resp.Status.Reason != "Invalid" || resp.Status.Message != tt.message {
					t.Errorf("status = %+v\nwant code %d, message %q", resp.Status, tt.code, tt.message)
				}
			}
			if diff := cmp.Diff(tt.warnings, resp.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`vouch_admission_duration_seconds_count{outcome="allowed",webhook="validate-policy"} 5`,
		`vouch_admission_duration_seconds_count{outcome="denied",webhook="validate-policy"} 2`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestValidatePolicyIsServedOnlyWithAChecker(t *testing.T) {
	s := testServer(t, true)
	if code, _ := postReview(t, s, "/validate-policy", policyReview(t, "u", "CREATE", "ClusterPolicy", testPolicy)); code != http.StatusNotFound {
		t.Errorf("/validate-policy without Options.CheckPolicy: HTTP %d, want 404", code)
	}
}
