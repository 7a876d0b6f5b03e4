package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/registry"
)

// TestRegistryHostsAreCapped sends requests to three registries with a limit of two hosts:
// the third is counted under "other", and the first two keep their label for good.
func TestRegistryHostsAreCapped(t *testing.T) {
	var hosts []string
	for i := 0; i < 3; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS"}]}`, http.StatusTooManyRequests)
		}))
		defer srv.Close()
		hosts = append(hosts, strings.TrimPrefix(srv.URL, "http://"))
	}
	sort.Strings(hosts)
	counter := &registry.Counter{}
	client, err := registry.New(registry.Options{Metrics: counter})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := RegisterRegistry(reg, counter, 2); err != nil {
		t.Fatal(err)
	}
	resolve := func(host string) {
		ref, err := name.ParseReference(host + "/app:1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = client.Resolve(context.Background(), ref)
	}
	resolve(hosts[0])
	resolve(hosts[1])
	if n, err := testutil.GatherAndCount(reg, "vouch_registry_requests_total"); err != nil || n == 0 {
		t.Fatalf("%d series, %v", n, err)
	}
	resolve(hosts[2])
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "registry" {
					seen[l.GetValue()] = true
				}
				// 429 from the registries; none for ggcr's HTTPS ping of a loopback registry
				// that only speaks HTTP (no response).
				if l.GetName() == "code" && l.GetValue() != "429" && l.GetValue() != "none" {
					t.Errorf("code %q, want 429 or none", l.GetValue())
				}
			}
		}
	}
	want := map[string]bool{hosts[0]: true, hosts[1]: true, OtherHost: true}
	if len(seen) != 3 || !seen[hosts[0]] || !seen[hosts[1]] || !seen[OtherHost] {
		t.Errorf("registry labels %v, want %v", seen, want)
	}
}

func TestCacheAndVerificationMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterCache(reg, c); err != nil {
		t.Fatal(err)
	}
	if err := RegisterCache(prometheus.NewRegistry(), nil); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifications(reg)
	if err != nil {
		t.Fatal(err)
	}
	v.Verified("Cosign", engine.RouteOCI11Referrer, engine.Error)
	expected := `
# HELP vouch_verifications_total Signature verifications run (cache hits excluded; callers sharing one in flight count once), by type (Cosign, SigstoreBundle, Notary), route (where the verified signature was found: legacy-tag, oci11-referrer, referrers-tag-schema, sigstore-bundle; for failures the route the entry reads first) and result (pass, fail, error = could not decide).
# TYPE vouch_verifications_total counter
vouch_verifications_total{result="error",route="oci11-referrer",type="Cosign"} 1
# HELP vouch_verification_cache_entries Verification results held in the cache now (expired ones not yet reclaimed included).
# TYPE vouch_verification_cache_entries gauge
vouch_verification_cache_entries 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "vouch_verifications_total", "vouch_verification_cache_entries"); err != nil {
		t.Error(err)
	}
}
