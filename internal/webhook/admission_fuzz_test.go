package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/verify"
)

// fuzzPolicy verifies and pins every image (those the fake verifier passes are admitted with
// patches: pins and annotations), checks ghcr.io images' digests, and covers CronJobs too.
const fuzzPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: fuzz}
spec:
  validationFailureAction: Enforce
  rules:
  - name: pods
    match: {any: [{resources: {kinds: [Pod, CronJob]}}]}
    verifyImages:
    - imageReferences: ["*"]
      skipImageReferences: ["*/skip/*"]
      attestors: [{entries: [{keys: {kms: "awskms:///k"}}]}]
    - imageReferences: ["ghcr.io/*"]
      mutateDigest: false
      required: false
`

// fakeRegistry resolves every tag to a digest derived from its name, without a network.
type fakeRegistry struct{}

func (fakeRegistry) Resolve(_ context.Context, ref imageref.Ref, _ bool) (string, error) {
	if strings.Contains(ref.String(), "missing") {
		return "", verify.Errorf(verify.CodeNotFound, "image tag not found", nil)
	}
	sum := sha256.Sum256([]byte(ref.String()))
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// fakeVerifier passes images whose name contains "signed", fails the others.
type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, s verify.Subject, _ *verify.Entry, _ *verify.Attestor) (*verify.Evidence, error) {
	if strings.Contains(s.Ref.String(), "signed") {
		return &verify.Evidence{Digest: s.Digest}, nil
	}
	return nil, verify.Errorf(verify.CodeNoSignatures, "no signatures found", nil)
}

func fuzzServer(tb testing.TB) *Server {
	tb.Helper()
	return fakeServer(tb, fuzzPolicy)
}

// fakeServer serves the policies with the fake registry and verifier.
func fakeServer(tb testing.TB, policies string) *Server {
	tb.Helper()
	docs, err := manifest.Split("p.yaml", []byte(policies))
	if err != nil {
		tb.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Policies: set, Registry: fakeRegistry{}, Verifiers: map[string]verify.Verifier{"Cosign": fakeVerifier{}}})
	if err != nil {
		tb.Fatal(err)
	}
	cfg, _, err := SelfSigned([]string{"localhost"})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(Options{TLS: cfg, Engine: func() *engine.Engine { return eng }, CheckPolicy: policy.Check,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzAdmissionReview: whatever body reaches /mutate, /validate or /validate-policy, the
// webhook answers HTTP 200 with a well-formed AdmissionReview in the request's version (v1
// when it cannot be told) whose response echoes the request's UID; a denial says why; and a
// patch is a JSON Patch, only on an admitted mutating request, that applies to the object the
// request carried. Never a panic (the handler's own recover would hide it: it is checked
// here by the answer's shape, "internal error" being a failure of this test).
func FuzzAdmissionReview(f *testing.F) {
	pod := func(images ...string) string {
		var cs []string
		for i, img := range images {
			cs = append(cs, `{"name":"c`+string(rune('0'+i))+`","image":"`+img+`"}`)
		}
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[` + strings.Join(cs, ",") + `]}}`
	}
	for _, seed := range []struct {
		route uint8
		body  string
	}{
		{0, admissionReview("admission.k8s.io/v1", "u1", "CREATE", pod("ghcr.io/a/signed:1", "nginx:1.27"))},
		{0, admissionReview("admission.k8s.io/v1", "u2", "CREATE", pod("ghcr.io/a/signed:1", "ghcr.io/a/signed:1", "r.example/skip/x:1"))},
		{1, admissionReview("admission.k8s.io/v1beta1", "u3", "UPDATE", pod("ghcr.io/a/missing:1"))},
		{0, admissionReview("admission.k8s.io/v1", "u4", "CREATE", podDigest)},
		{1, admissionReview("admission.k8s.io/v1", "u5", "DELETE", podNoDigest)},
		{0, admissionReview("admission.k8s.io/v1", "u6", "CREATE", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"kyverno.io/verify-images":"{\"x\":\"pass\"}"}},"spec":{"containers":[{"name":"a","image":"signed"}],"initContainers":[{"name":"b","image":"ghcr.io/x/signed@sha256:859ab6768a6f26a79bc42b231664111317d095a4f04e4b6fe79ce37b3d199097"}]}}`)},
		{0, admissionReview("admission.k8s.io/v1", "u7", "CREATE", `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"signed:1"}]}}}}}}`)},
		{2, admissionReview("admission.k8s.io/v1", "u8", "CREATE", `{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":"x"},"spec":{"rules":[]}}`)},
		{0, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u9","operation":"CREATE","object":null}}`},
		{0, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u10","operation":"CREATE","object":[1,2]}}`},
		{1, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`},
		{1, `[]`},
	} {
		f.Add(seed.route, []byte(seed.body))
	}
	s := fuzzServer(f)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := []string{"/mutate", "/validate", "/validate-policy"}[route%3]
		req := httptest.NewRequest(http.MethodPost, path+"?timeout=5s", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("HTTP %d %q, want 200 application/json: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		var out struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Response   *struct {
				UID       string `json:"uid"`
				Allowed   bool   `json:"allowed"`
				Patch     []byte `json:"patch"`
				PatchType string `json:"patchType"`
				Status    *struct {
					Message string `json:"message"`
				} `json:"status"`
			} `json:"response"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer is not JSON: %v\n%s", err, rec.Body)
		}
		resp := out.Response
		if out.Kind != "AdmissionReview" || resp == nil {
			t.Fatalf("answer is not an AdmissionReview with a response: %s", rec.Body)
		}
		var in struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Request    *struct {
				UID    string          `json:"uid"`
				Object json.RawMessage `json:"object"`
			} `json:"request"`
		}
		// The request as far as it can be read: its version, its UID.
		readable := json.Unmarshal(body, &in) == nil
		decoded := readable && in.Request != nil && in.Kind == "AdmissionReview" &&
			(in.APIVersion == "admission.k8s.io/v1" || in.APIVersion == "admission.k8s.io/v1beta1")
		// The version to answer in is read from the head alone: a request whose body
		// does not decode further is still answered in the version it asked for.
		var head struct {
			APIVersion string `json:"apiVersion"`
		}
		wantVersion := "admission.k8s.io/v1"
		if json.Unmarshal(body, &head) == nil && head.APIVersion == "admission.k8s.io/v1beta1" {
			wantVersion = head.APIVersion
		}
		if out.APIVersion != wantVersion {
			t.Fatalf("answered in %q, want %q: %s", out.APIVersion, wantVersion, rec.Body)
		}
		if readable && in.Request != nil && (in.APIVersion == "admission.k8s.io/v1" || in.APIVersion == "admission.k8s.io/v1beta1") && resp.UID != in.Request.UID {
			t.Fatalf("response UID %q, request UID %q: %s", resp.UID, in.Request.UID, rec.Body)
		}
		if !resp.Allowed && (resp.Status == nil || resp.Status.Message == "") {
			t.Fatalf("a denial without a message: %s", rec.Body)
		}
		if resp.Status != nil && strings.Contains(resp.Status.Message, "internal error") {
			t.Fatalf("the handler recovered from a panic: %s", rec.Body)
		}
		if len(resp.Patch) == 0 {
			return
		}
		if path != "/mutate" || !resp.Allowed || resp.PatchType != "JSONPatch" || !decoded {
			t.Fatalf("patch on %s (allowed %v, type %q, request decoded %v)", path, resp.Allowed, resp.PatchType, decoded)
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("patch %s does not decode: %v", resp.Patch, err)
		}
		patched, err := p.Apply(in.Request.Object)
		if err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", resp.Patch, in.Request.Object, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(patched, &obj); err != nil {
			t.Fatalf("patched object is not a JSON object: %v", err)
		}
	})
}

// TestFuzzAdmissionSeedPatches: a seed of FuzzAdmissionReview is admitted with a patch (pins
// and annotations), so that the target's patch property is exercised.
func TestFuzzAdmissionSeedPatches(t *testing.T) {
	h := fuzzServer(t).Handler()
	body := admissionReview("admission.k8s.io/v1", "u1", "CREATE",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"a","image":"ghcr.io/a/signed:1"}]}}`)
	req := httptest.NewRequest(http.MethodPost, "/mutate?timeout=5s", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out struct {
		Response struct {
			Allowed bool   `json:"allowed"`
			Patch   []byte `json:"patch"`
		} `json:"response"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || !out.Response.Allowed || !bytes.Contains(out.Response.Patch, []byte(`"/spec/containers/0/image"`)) {
		t.Fatalf("answer %s (%v), want an admission with a pin", rec.Body, err)
	}
}
