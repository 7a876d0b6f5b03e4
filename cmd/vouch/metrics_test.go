package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/webhook"
)

// TestMetricsAfterAScriptedSequence wires the webhook as `vouch serve` does (engine, cache,
// registry counter, observers) in front of an in-process registry that answers 429 for one
// repository's signatures and is slow for another's, runs a scripted sequence of admissions
// and checks every named series moved as expected:
//
//	signed      allowed, verified (pass)            cache miss
//	signed      allowed, from the cache             cache hit
//	unsigned    denied, failed verification (fail)  cache miss
//	limited     denied, could not verify (error)    cache miss, registry 429s
//	slow × 2    allowed, one verification (pass)    one miss, one coalesced wait
func TestMetricsAfterAScriptedSequence(t *testing.T) {
	ctx := context.Background()
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.Contains(r.URL.Path, "/limited/manifests/sha256-"):
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
				return
			case strings.Contains(r.URL.Path, "/slow/manifests/sha256-"):
				time.Sleep(700 * time.Millisecond)
			}
			h.ServeHTTP(w, r)
		})
	})
	defer reg.Close()
	key, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"signed", "unsigned", "limited", "slow"} {
		digest, err := reg.Push(ctx, repo+":1")
		if err != nil {
			t.Fatal(err)
		}
		if repo != "unsigned" && repo != "limited" {
			if err := reg.Sign(ctx, repo, digest, key.Private, nil, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	pol := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: signed-images}
spec:
  validationFailureAction: Enforce
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["` + reg.Host + `/*"]
      attestors:
      - entries:
        - keys:
            rekor: {ignoreTlog: true}
            publicKeys: |-
              ` + indentLines(key.PEM, "              ") + "\n"
	docs, err := manifest.Split("p.yaml", []byte(pol))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		t.Fatal(err)
	}

	// The wiring of vouch serve.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	promReg := prometheus.NewRegistry()
	results, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := newObservability(promReg, results, nil, nil, true, true, log)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := newEngine(set, registry.Options{Metrics: obs.requests}, engineExtras{cache: results, observer: obs.verifications})
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, _, err := webhook.SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := webhook.New(webhook.Options{TLS: tlsConfig, Engine: func() *engine.Engine { return eng }, Registry: promReg, Logger: log,
		OnAdmission: obs.onAdmission(), CheckPolicy: policy.Check, MaxAdmissionsInFlight: webhook.DefaultMaxAdmissionsInFlight})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	admit := func(uid, repo string) (allowed bool, message string) {
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p-` + uid + `","namespace":"default"},"spec":{"containers":[{"name":"a","image":"` + reg.Host + "/" + repo + `:1"}]}}`
		body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `","kind":{"group":"","version":"v1","kind":"Pod"},` +
			`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE","userInfo":{"username":"alice"},"object":` + pod + `}}`
		req := httptest.NewRequest(http.MethodPost, "/mutate?timeout=10s", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return strings.Contains(rec.Body.String(), `"allowed":true`), rec.Body.String()
	}
	if ok, msg := admit("1", "signed"); !ok {
		t.Fatalf("signed image denied: %s", msg)
	}
	if ok, msg := admit("2", "signed"); !ok {
		t.Fatalf("signed image denied the second time: %s", msg)
	}
	if ok, msg := admit("3", "unsigned"); ok || !strings.Contains(msg, "no signatures found") {
		t.Fatalf("unsigned image: %s", msg)
	}
	if ok, msg := admit("4", "limited"); ok || !strings.Contains(msg, "could not verify") {
		t.Fatalf("rate-limited registry: %s", msg)
	}
	var wg sync.WaitGroup
	for _, uid := range []string{"5", "6"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, msg := admit(uid, "slow"); !ok {
				t.Errorf("slow signed image denied: %s", msg)
			}
		}()
		time.Sleep(100 * time.Millisecond) // the second request joins the first one's verification
	}
	wg.Wait()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	scrape := rec.Body.String()
	value := func(series string) float64 {
		for _, line := range strings.Split(scrape, "\n") {
			if name, v, ok := strings.Cut(line, " "); ok && name == series {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return -1
	}
	host := reg.Host
	for series, want := range map[string]float64{
		`vouch_admission_duration_seconds_count{outcome="allowed",webhook="mutate"}`:                                4,
		`vouch_admission_duration_seconds_count{outcome="denied",webhook="mutate"}`:                                 2,
		`vouch_policy_results_total{policy="signed-images",result="pass",rule="check-signature",webhook="mutate"}`:  4,
		`vouch_policy_results_total{policy="signed-images",result="fail",rule="check-signature",webhook="mutate"}`:  1,
		`vouch_policy_results_total{policy="signed-images",result="error",rule="check-signature",webhook="mutate"}`: 1,
		`vouch_verifications_total{result="pass",route="legacy-tag",type="Cosign"}`:                                 2,
		`vouch_verifications_total{result="fail",route="legacy-tag",type="Cosign"}`:                                 1,
		`vouch_verifications_total{result="error",route="legacy-tag",type="Cosign"}`:                                1,
		`vouch_verification_cache_hits_total`:                                                                       1,
		`vouch_verification_cache_misses_total`:                                                                     5,
		`vouch_verification_cache_coalesced_total`:                                                                  1,
		`vouch_verification_cache_entries`:                                                                          3,
		`vouch_verification_cache_evictions_total`:                                                                  0,
		`vouch_registry_requests_total{code="429",kind="manifest",method="GET",registry="` + host + `"}`:            3,
		`vouch_admissions_in_flight`:                                                                                0, // all answered; none beyond the bound
		`vouch_admissions_overloaded_total{webhook="mutate"}`:                                                       0,
		`vouch_admissions_overloaded_total{webhook="validate"}`:                                                     0,
	} {
		if got := value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// Successful registry calls are counted by host too, and nothing but host:port names it.
	if value(`vouch_registry_requests_total{code="200",kind="manifest",method="GET",registry="`+host+`"}`) < 1 {
		t.Errorf("no 200 manifest GETs counted:\n%s", grep(scrape, "vouch_registry_requests_total"))
	}
	if regexp.MustCompile(`vouch_registry_requests_total\{[^}]*(/v2|sha256|@)`).MatchString(scrape) {
		t.Errorf("a registry label carries a path:\n%s", grep(scrape, "vouch_registry_requests_total"))
	}
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
