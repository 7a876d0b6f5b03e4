package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const testPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-digest}
spec:
  validationFailureAction: Enforce
  rules:
  - name: check-digest
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false, required: false}]
`

func testServer(t *testing.T, ready bool) *Server {
	t.Helper()
	docs, err := manifest.Split("p.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Policies: set})
	if err != nil {
		t.Fatal(err)
	}
	current := func() *engine.Engine {
		if !ready {
			return nil
		}
		return eng
	}
	cfg, _, err := SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{TLS: cfg, Engine: current, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func admissionReview(apiVersion, uid, op, object string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"AdmissionReview","request":{"uid":"` + uid + `",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
		`"namespace":"default","name":"p","operation":"` + op + `","userInfo":{"username":"alice"},"object":` + object + `}}`
}

const (
	podNoDigest = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"a","image":"nginx:1.27"}]}}`
	podDigest   = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"a","image":"nginx@sha256:859ab6768a6f26a79bc42b231664111317d095a4f04e4b6fe79ce37b3d199097"}]}}`
)

// TestAdmissionGolden checks the exact AdmissionReview answered for well-formed and malformed
// requests against golden files (go test -update rewrites them).
func TestAdmissionGolden(t *testing.T) {
	tests := []struct {
		name, path, contentType string
		body                    []byte
		ready                   bool
	}{
		{"empty-body", "/validate", "application/json", nil, true},
		{"wrong-content-type", "/validate", "text/plain", []byte(admissionReview("admission.k8s.io/v1", "u1", "CREATE", podNoDigest)), true},
		{"huge-body", "/validate", "application/json", bytes.Repeat([]byte(" "), 100<<20), true},
		{"invalid-json", "/validate", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`), true},
		{"no-request", "/validate", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), true},
		{"wrong-kind", "/validate", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}`), true},
		{"v1-denied", "/validate", "application/json", []byte(admissionReview("admission.k8s.io/v1", "u2", "CREATE", podNoDigest)), true},
		{"v1-allowed", "/validate", "application/json", []byte(admissionReview("admission.k8s.io/v1", "u3", "CREATE", podDigest)), true},
		{"v1beta1-denied", "/validate", "application/json", []byte(admissionReview("admission.k8s.io/v1beta1", "u4", "CREATE", podNoDigest)), true},
		{"delete-allowed", "/validate", "application/json", []byte(admissionReview("admission.k8s.io/v1", "u5", "DELETE", podNoDigest)), true},
		{"not-ready", "/mutate", "application/json", []byte(admissionReview("admission.k8s.io/v1", "u6", "CREATE", podNoDigest)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, tt.ready)
			req := httptest.NewRequest(http.MethodPost, tt.path+"?timeout=10s", bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("HTTP status %d, want 200 (errors travel inside the AdmissionReview)", rec.Code)
			}
			var got any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("response is not JSON: %v\n%s", err, rec.Body.String())
			}
			pretty, _ := json.MarshalIndent(got, "", "  ")
			golden := filepath.Join("testdata", tt.name+".json")
			if *update {
				if err := os.WriteFile(golden, append(pretty, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(strings.TrimSpace(string(want)), string(pretty)); diff != "" {
				t.Errorf("response differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestPanicBecomesErrorResponseWithUID(t *testing.T) {
	s := testServer(t, true)
	s.engine = func() *engine.Engine { panic("boom") }
	req := httptest.NewRequest(http.MethodPost, "/mutate", strings.NewReader(admissionReview("admission.k8s.io/v1", "uid-7", "CREATE", podNoDigest)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var out struct {
		Response struct {
			UID     string
			Allowed bool
			Status  struct {
				Code    int
				Message string
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Response.UID != "uid-7" || out.Response.Allowed || out.Response.Status.Code != 500 {
		t.Errorf("response = %+v", out.Response)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	for _, ready := range []bool{false, true} {
		s := testServer(t, ready)
		get := func(path string) (int, string) {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			return rec.Code, rec.Body.String()
		}
		if code, _ := get("/healthz"); code != 200 {
			t.Errorf("healthz = %d", code)
		}
		want := map[bool]int{false: 503, true: 200}[ready]
		if code, _ := get("/readyz"); code != want {
			t.Errorf("ready=%v: readyz = %d, want %d", ready, code, want)
		}
		if ready {
			req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(admissionReview("admission.k8s.io/v1", "u", "CREATE", podDigest)))
			req.Header.Set("Content-Type", "application/json")
			s.Handler().ServeHTTP(httptest.NewRecorder(), req)
			if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `vouch_admission_duration_seconds_count{outcome="allowed",webhook="validate"} 1`) {
				t.Errorf("metrics = %d\n%s", code, body)
			}
		}
	}
}

func TestBudget(t *testing.T) {
	for q, want := range map[string]string{"": "9s", "?timeout=10s": "9s", "?timeout=2s": "1.5s", "?timeout=30s": "27s", "?timeout=600s": "27s", "?timeout=x": "9s"} {
		if got := budget(httptest.NewRequest(http.MethodPost, "/mutate"+q, nil)).String(); got != want {
			t.Errorf("budget(%q) = %s, want %s", q, got, want)
		}
	}
}

func TestServeOverTLSAndDrain(t *testing.T) {
	s := testServer(t, true)
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	client := insecureClient()
	resp, err := client.Post("https://"+l.Addr().String()+"/validate", "application/json", strings.NewReader(admissionReview("admission.k8s.io/v1", "u", "CREATE", podDigest)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"allowed":true`) {
		t.Errorf("body = %s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after shutdown", err)
	}
}
