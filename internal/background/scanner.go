package background

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/report"
)

// Defaults of Options.
const (
	DefaultPageSize    = 500
	DefaultConcurrency = 4
	DefaultWorkers     = 2
	DefaultPodTimeout  = 30 * time.Second
)

// Options configures a Scanner.
type Options struct {
	// Client lists the Pods.
	Client kubernetes.Interface
	// Engine returns the engine of the policies in force (they change while vouch runs), nil
	// until they are loaded.
	Engine func() *engine.Engine
	// NamespaceLabels returns a namespace's labels (namespaceSelector); nil means none.
	NamespaceLabels func(namespace string) map[string]string
	// Record receives the results of each Pod a policy applies to (the recorder's Scanned).
	Record func(context.Context, report.Subject, []engine.RuleResult)
	// Interval between the starts of two scans; it must be positive.
	Interval time.Duration
	// PageSize is how many Pods one list call returns; 0 means DefaultPageSize.
	PageSize int64
	// Concurrency is how many Pods are evaluated at once; 0 means DefaultConcurrency.
	Concurrency int
	// Workers is how many image verifications a scan runs at once, in a pool of its own (an
	// admission never waits for a worker a scan holds); 0 means DefaultWorkers.
	Workers int
	// PodTimeout bounds the evaluation of one Pod; 0 means DefaultPodTimeout.
	PodTimeout time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Scanner scans the cluster's Pods; Run does the work.
type Scanner struct {
	opts    Options
	log     *slog.Logger
	changed chan struct{} // PoliciesChanged: a scan is due

	scans    *prometheus.CounterVec
	results  *prometheus.CounterVec
	duration prometheus.Gauge
}

// New validates the options and returns a Scanner.
func New(opts Options) (*Scanner, error) {
	switch {
	case opts.Client == nil || opts.Engine == nil || opts.Record == nil:
		return nil, errors.New("background: a client, an engine and a recorder are needed")
	case opts.Interval <= 0:
		return nil, errors.New("background: the scan interval must be positive")
	case opts.PageSize < 0 || opts.Concurrency < 0 || opts.Workers < 0 || opts.PodTimeout < 0:
		return nil, errors.New("background: negative option")
	}
	opts.PageSize = cmp.Or(opts.PageSize, DefaultPageSize)
	opts.Concurrency = cmp.Or(opts.Concurrency, DefaultConcurrency)
	opts.Workers = cmp.Or(opts.Workers, DefaultWorkers)
	opts.PodTimeout = cmp.Or(opts.PodTimeout, DefaultPodTimeout)
	s := &Scanner{opts: opts, log: opts.Logger, changed: make(chan struct{}, 1),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vouch_background_scans_total",
			Help: "Background scans by result: completed, or failed (the Pods could not be listed).",
		}, []string{"result"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vouch_background_results_total",
			Help: "Rule results of background scans by status (pass, fail, warn, error, skip).",
		}, []string{"status"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vouch_background_scan_duration_seconds",
			Help: "How long the last completed background scan took.",
		}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.scans, s.results, s.duration} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// PolicyChangeDelay is how long a scan due to a policy change waits for more changes (a
// policy set applied at once is scanned once).
const PolicyChangeDelay = 2 * time.Second

// PoliciesChanged asks for a scan soon (after PolicyChangeDelay), as Kyverno rescans when a
// policy changes: a new or changed policy reports on the stored Pods without waiting for the
// interval. It never blocks.
func (s *Scanner) PoliciesChanged() {
	select {
	case s.changed <- struct{}{}:
	default: // a scan is due already
	}
}

// Run scans once the policies are loaded (Engine returns an engine), then every Interval and
// after policy changes (PoliciesChanged), until ctx ends.
func (s *Scanner) Run(ctx context.Context) {
	for s.opts.Engine() == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select { // the first scan covers the changes made before it
		case <-s.changed:
		default:
		}
		if _, err := s.Scan(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("background scan failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.changed:
			select {
			case <-ctx.Done():
				return
			case <-time.After(PolicyChangeDelay):
			}
			t.Reset(s.opts.Interval)
		}
	}
}

// Scan evaluates every Pod once with the policies in force, in background mode, through a
// verification cache of its own (a verification cached at admission is never reused: the scan
// sees what the registries hold now), and records the results. It returns how many Pods a
// policy applied to.
func (s *Scanner) Scan(ctx context.Context) (int, error) {
	start := time.Now()
	c, err := cache.New(cache.Options{Enabled: true, MaxSize: 10000, TTL: s.opts.Interval, FailTTL: s.opts.Interval})
	if err != nil {
		return 0, err
	}
	eng := s.opts.Engine()
	if eng == nil {
		return 0, errors.New("no engine")
	}
	eng = eng.WithCache(c).WithWorkers(s.opts.Workers)
	pods := make(chan *corev1.Pod)
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for range s.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range pods {
				if s.scanPod(ctx, eng, p) {
					mu.Lock()
					applied++
					mu.Unlock()
				}
			}
		}()
	}
	listErr := s.list(ctx, pods)
	close(pods)
	wg.Wait()
	if listErr != nil {
		s.scans.WithLabelValues("failed").Inc()
		return applied, listErr
	}
	s.scans.WithLabelValues("completed").Inc()
	s.duration.Set(time.Since(start).Seconds())
	s.log.Info("background scan", "pods", applied, "durationMs", time.Since(start).Milliseconds())
	return applied, nil
}

// list sends every Pod of the cluster, page by page.
func (s *Scanner) list(ctx context.Context, out chan<- *corev1.Pod) error {
	opts := metav1.ListOptions{Limit: s.opts.PageSize}
	for {
		page, err := s.opts.Client.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range page.Items {
			select {
			case out <- &page.Items[i]:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if page.Continue == "" {
			return nil
		}
		opts.Continue = page.Continue
	}
}

// scanPod evaluates one Pod and records its results; it reports whether a policy applied.
func (s *Scanner) scanPod(ctx context.Context, eng *engine.Engine, p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		s.log.Warn("background scan: converting a Pod", "namespace", p.Namespace, "name", p.Name, "error", err)
		return false
	}
	obj["apiVersion"], obj["kind"] = "v1", "Pod"
	req := engine.Request{Object: obj, Background: true}
	if s.opts.NamespaceLabels != nil {
		req.NamespaceLabels = s.opts.NamespaceLabels(p.Namespace)
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.PodTimeout)
	defer cancel()
	resp, err := eng.Evaluate(pctx, req)
	if err != nil {
		s.log.Warn("background scan: evaluating a Pod", "namespace", p.Namespace, "name", p.Name, "error", err)
		return false
	}
	if len(resp.Results) == 0 {
		return false
	}
	for _, r := range resp.Results {
		s.results.WithLabelValues(string(r.Status)).Inc()
	}
	s.opts.Record(ctx, report.Subject{APIVersion: "v1", Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)}, resp.Results)
	return true
}
