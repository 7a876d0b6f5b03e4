package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
)

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestAdmissionLogsCarryTheUIDAndHookSeesDecisions checks the JSON log line of every answered
// request names its UID, and that OnAdmission receives each evaluated request with its decision.
func TestAdmissionLogsCarryTheUIDAndHookSeesDecisions(t *testing.T) {
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
	cfg, _, err := SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	var mu sync.Mutex
	hooked := map[string]bool{}
	s, err := New(Options{TLS: cfg, Engine: func() *engine.Engine { return eng }, CheckPolicy: policy.Check,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnAdmission: func(a Admission) {
			mu.Lock()
			defer mu.Unlock()
			hooked[string(a.Request.UID)] = a.Decision.Allowed
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, body string }{
		{"/mutate", admissionReview("admission.k8s.io/v1", "uid-denied", "CREATE", podNoDigest)},
		{"/validate", admissionReview("admission.k8s.io/v1", "uid-allowed", "CREATE", podDigest)},
		{"/validate", admissionReview("admission.k8s.io/v1", "uid-bad-object", "CREATE", `"not an object"`)},
		{"/validate-policy", policyReview(t, "uid-policy", "CREATE", "ClusterPolicy", insecurePolicyYAML)},
	} {
		req := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}
	seen := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(logs.b.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		uid, ok := line["uid"].(string)
		if !ok || uid == "" {
			t.Errorf("log line without the request UID: %s", sc.Text())
			continue
		}
		if _, dup := seen[uid]; dup {
			t.Errorf("request %s logged twice: %s", uid, sc.Text())
		}
		seen[uid], _ = line["outcome"].(string)
	}
	want := map[string]string{"uid-denied": "denied", "uid-allowed": "allowed", "uid-bad-object": "error", "uid-policy": "allowed"}
	for uid, outcome := range want {
		if seen[uid] != outcome {
			t.Errorf("log of %s: outcome %q, want %q\n%s", uid, seen[uid], outcome, logs.b.String())
		}
	}
	if len(hooked) != 2 || hooked["uid-denied"] || !hooked["uid-allowed"] {
		t.Errorf("OnAdmission saw %v, want the two evaluated requests with their decisions", hooked)
	}
}
