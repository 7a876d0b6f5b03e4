package source

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestAPICalls: apiCall paths are read from the API server with a GET, kept for the TTL (a 404
// too), and answers over the cap or not JSON are errors, never a partial value.
func TestAPICalls(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/namespaces/team-a":
			_, _ = w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"team-a","annotations":{"vouch.dev/key":"k1"}}}`))
		case "/api/v1/namespaces/huge":
			_, _ = w.Write([]byte(`{"x":"` + strings.Repeat("a", maxAPICallBytes) + `"}`))
		case "/api/v1/namespaces/text":
			_, _ = w.Write([]byte(`not json`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"namespaces \"missing\" not found","reason":"NotFound","code":404}`))
		}
	}))
	defer srv.Close()
	kube, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAPICalls(kube.CoreV1().RESTClient())
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		v, err := a.Get(ctx, "/api/v1/namespaces/team-a")
		if err != nil {
			t.Fatal(err)
		}
		if got := v.(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)["vouch.dev/key"]; got != "k1" {
			t.Fatalf("value %v", v)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := a.Get(ctx, "/api/v1/namespaces/missing"); !apierrors.IsNotFound(err) {
			t.Errorf("missing: %v, want NotFound", err)
		}
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (each path once within the TTL)", n)
	}
	if _, err := a.Get(ctx, "/api/v1/namespaces/huge"); err == nil || !strings.Contains(err.Error(), "larger than 2097152 bytes") {
		t.Errorf("huge: %v", err)
	}
	if _, err := a.Get(ctx, "/api/v1/namespaces/text"); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("text: %v", err)
	}
}

// TestFetchCacheBytes: the answers kept are bounded in bytes as well as in number.
func TestFetchCacheBytes(t *testing.T) {
	c := newFetchCache(ConfigMapTTL)
	big := func(context.Context) (fetched, error) { return fetched{value: "x", size: 2 << 20}, nil }
	for i := 0; i < 100; i++ {
		if _, err := c.get(context.Background(), strings.Repeat("k", i+1), big); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		n, b := len(c.entries), c.bytes
		c.mu.Unlock()
		if b > maxFetchedBytes || int64(n)*(2<<20) != b {
			t.Fatalf("after %d answers: %d kept, %d bytes (limit %d)", i+1, n, b, maxFetchedBytes)
		}
	}
}
