package background

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/report"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

func scanPolicies(host, pem string) string {
	entry := "    verifyImages:\n    - imageReferences: [\"" + host + "/*\"]\n      attestors:\n      - entries:\n        - keys:\n" +
		"            rekor: {ignoreTlog: true}\n            ctlog: {ignoreSCT: true}\n            publicKeys: |-\n" + indent(pem, 14) + "\n"
	return "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: scanned}\nspec:\n  validationFailureAction: Enforce\n" +
		"  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n" + entry +
		"---\napiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: admission-only}\nspec:\n  validationFailureAction: Enforce\n  background: false\n" +
		"  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n" + entry
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+pad)
}

type recorded struct {
	mu      sync.Mutex
	results map[string][]engine.RuleResult // by namespace/name
}

func (r *recorded) record(_ context.Context, s report.Subject, res []engine.RuleResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[s.Namespace+"/"+s.Name+"/"+s.UID] = res
}

func (r *recorded) take() map[string][]engine.RuleResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.results
	r.results = map[string][]engine.RuleResult{}
	return out
}

func podOf(ns, name, uid, image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: k8stypes.UID("uid-" + uid)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}}
}

// scanEngine is an engine of scanPolicies verifying cosign signatures, without a cache, with
// workers verification workers (0: the engine's default).
func scanEngine(tb testing.TB, host, pem string, workers ...int) *engine.Engine {
	tb.Helper()
	docs, err := manifest.Split("policies.yaml", []byte(scanPolicies(host, pem)))
	if err != nil {
		tb.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		tb.Fatal(err)
	}
	regs, err := registry.NewPair(registry.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		tb.Fatal(err)
	}
	opts := engine.Options{Policies: set, Registry: regs, Verifiers: map[string]verify.Verifier{"Cosign": cv}}
	if len(workers) > 0 {
		opts.Workers = workers[0]
	}
	eng, err := engine.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return eng
}

// TestScan: every stored Pod is evaluated with the policies whose background is true (not
// those with background: false), and its results recorded; a terminating Pod is left out. A
// signature removed from the registry after a pass shows at the next scan, although the
// admission cache still holds the pass: a scan verifies afresh.
func TestScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := fixture.StartRegistry(false, nil)
	t.Cleanup(reg.Close)
	k1, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := reg.Push(ctx, "app:signed")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Sign(ctx, "app", signed, k1.Private, nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push(ctx, "app:unsigned"); err != nil {
		t.Fatal(err)
	}
	admissionCache, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	eng := scanEngine(t, reg.Host, k1.PEM).WithCache(admissionCache)
	gone := podOf("team", "terminating", "3", reg.Host+"/app:unsigned")
	now := metav1.Now()
	gone.DeletionTimestamp, gone.Finalizers = &now, []string{"example.com/hold"}
	kube := fake.NewClientset(
		podOf("team", "signed", "1", reg.Host+"/app:signed@"+signed),
		podOf("team", "unsigned", "2", reg.Host+"/app:unsigned"),
		gone,
		podOf("other", "unrelated", "4", "docker.io/library/busybox:1"),
	)
	rec := &recorded{results: map[string][]engine.RuleResult{}}
	s, err := New(Options{Client: kube, Engine: func() *engine.Engine { return eng }, Record: rec.record, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	statusOf := func(got map[string][]engine.RuleResult, key string) string {
		var out []string
		for _, r := range got[key] {
			out = append(out, r.Policy.Name+"="+string(r.Status))
		}
		return strings.Join(out, ",")
	}
	n, err := s.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := rec.take()
	if n != 2 || len(got) != 2 {
		t.Errorf("scan applied to %d Pods, recorded %d; want the signed and the unsigned Pod", n, len(got))
	}
	if st := statusOf(got, "team/signed/uid-1"); st != "scanned=pass" {
		t.Errorf("signed Pod: %s, want scanned=pass (admission-only has background: false)", st)
	}
	if st := statusOf(got, "team/unsigned/uid-2"); st != "scanned=fail" {
		t.Errorf("unsigned Pod: %s, want scanned=fail", st)
	}

	// The admission path caches a pass for the signed image; then its signature is removed.
	pin := reg.Host + "/app:signed@" + signed
	admit := func() engine.Status {
		resp, err := eng.Evaluate(ctx, engine.Request{Object: map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "p", "namespace": "team"},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": pin}}}}})
		if err != nil || len(resp.Results) == 0 {
			t.Fatalf("admission: %v %+v", err, resp)
		}
		return resp.Results[0].Status
	}
	if st := admit(); st != engine.Pass {
		t.Fatalf("admission of the signed image: %s", st)
	}
	sigTag, err := name.ParseReference(reg.Host + "/app:" + strings.Replace(signed, ":", "-", 1) + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(sigTag); err != nil {
		t.Fatalf("removing the signature: %v", err)
	}
	if st := admit(); st != engine.Pass {
		t.Fatalf("admission after the removal: %s, want the cached pass (this test relies on it)", st)
	}
	if _, err := s.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	got = rec.take()
	if st := statusOf(got, "team/signed/uid-1"); st != "scanned=fail" {
		t.Errorf("signed Pod after its signature was removed: %s, want scanned=fail", st)
	} else if msg := got["team/signed/uid-1"][0].Message; !strings.Contains(msg, "no signatures found") {
		t.Errorf("message %q, want no signatures found", msg)
	}
}

// TestNewRefusesBadOptions: the scanner needs its collaborators and a positive interval.
func TestNewRefusesBadOptions(t *testing.T) {
	kube := fake.NewClientset()
	eng := func() *engine.Engine { return nil }
	rec := func(context.Context, report.Subject, []engine.RuleResult) {}
	for _, o := range []Options{
		{Engine: eng, Record: rec, Interval: time.Minute},
		{Client: kube, Record: rec, Interval: time.Minute},
		{Client: kube, Engine: eng, Interval: time.Minute},
		{Client: kube, Engine: eng, Record: rec},
		{Client: kube, Engine: eng, Record: rec, Interval: time.Minute, Concurrency: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// TestScanAfterPolicyChange: with an interval of an hour, Run scans once the policies are
// loaded, and again soon after policy changes — a burst of changes once.
func TestScanAfterPolicyChange(t *testing.T) {
	t.Parallel()
	reg := fixture.StartRegistry(false, nil)
	t.Cleanup(reg.Close)
	k1, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	eng := scanEngine(t, reg.Host, k1.PEM)
	var loaded atomic.Bool
	kube := fake.NewClientset(podOf("team", "p", "1", reg.Host+"/app:missing"))
	s, err := New(Options{Client: kube, Interval: time.Hour, Record: func(context.Context, report.Subject, []engine.RuleResult) {},
		Engine: func() *engine.Engine {
			if !loaded.Load() {
				return nil
			}
			return eng
		}})
	if err != nil {
		t.Fatal(err)
	}
	scans := func() int { return int(testutil.ToFloat64(s.scans.WithLabelValues("completed"))) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d scans", what, scans())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(700 * time.Millisecond)
	if n := scans(); n != 0 {
		t.Fatalf("%d scans before the policies were loaded", n)
	}
	loaded.Store(true)
	s.PoliciesChanged() // the first load: covered by the first scan
	waitUntil("the first scan", func() bool { return scans() == 1 })
	time.Sleep(PolicyChangeDelay + 500*time.Millisecond)
	if n := scans(); n != 1 {
		t.Errorf("%d scans after the first, with no change since", n)
	}
	for range 5 {
		s.PoliciesChanged()
	}
	waitUntil("a scan after the policy changes", func() bool { return scans() == 2 })
	time.Sleep(PolicyChangeDelay + 500*time.Millisecond)
	if n := scans(); n != 2 {
		t.Errorf("a burst of 5 changes made %d scans, want 1", n-1)
	}
}

// TestScanLeavesAdmissionWorkers: a scan verifies with workers of its own: while a scan's
// verification hangs on a slow registry, an admission through an engine with a single
// verification worker is still verified at once.
func TestScanLeavesAdmissionWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hit, release := make(chan struct{}, 1), make(chan struct{})
	var armed atomic.Bool // set once the images are signed
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if armed.Load() && strings.HasPrefix(r.URL.Path, "/v2/slow/manifests/sha256-") {
				select {
				case hit <- struct{}{}:
				default:
				}
				<-release
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(reg.Close)
	defer close(release)
	k1, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, repo := range []string{"slow", "app"} {
		d, err := reg.Push(ctx, repo+":v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Sign(ctx, repo, d, k1.Private, nil, ""); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	armed.Store(true)
	eng := scanEngine(t, reg.Host, k1.PEM, 1)
	kube := fake.NewClientset(podOf("team", "slow", "1", reg.Host+"/slow:v1@"+digests[0]))
	s, err := New(Options{Client: kube, Engine: func() *engine.Engine { return eng }, Interval: time.Hour, Workers: 1,
		Record: func(context.Context, report.Subject, []engine.RuleResult) {}})
	if err != nil {
		t.Fatal(err)
	}
	scanned := make(chan error, 1)
	go func() { _, err := s.Scan(ctx); scanned <- err }()
	select {
	case <-hit:
	case <-time.After(10 * time.Second):
		t.Fatal("the scan never reached the slow registry")
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := eng.Evaluate(actx, engine.Request{Object: map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "p", "namespace": "team"},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": reg.Host + "/app:v1@" + digests[1]}}}}})
	if err != nil || len(resp.Results) == 0 || resp.Results[0].Status != engine.Pass {
		t.Fatalf("admission while a scan holds its worker: %v %+v, want pass", err, resp)
	}
	armed.Store(false)
	release <- struct{}{}
	if err := <-scanned; err != nil {
		t.Fatal(err)
	}
}
