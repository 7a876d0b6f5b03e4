package recorder

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/report"
)

// Defaults applied by New to zero fields of Options.
const (
	DefaultQueueSize         = 1024
	DefaultEventsPerSecond   = 5
	DefaultEventBurst        = 25
	DefaultReportInterval    = 2 * time.Second
	DefaultMaxPendingReports = 10000
	DefaultSeriesWindow      = 6 * time.Minute // client-go's finishTime for event series
)

// ReportingController is the reportingController of vouch's Events.
const ReportingController = "vouch"

// Options configures a Recorder. Events are recorded when Events is set, PolicyReports written
// when Dynamic is set.
type Options struct {
	Events  eventsv1client.EventsGetter
	Dynamic dynamic.Interface
	// Registerer receives vouch_events_total and vouch_policy_reports_total; nil means none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// QueueSize bounds the admissions and Events waiting to be handled; 0 means 1024.
	QueueSize int
	// EventsPerSecond and EventBurst bound the creation of Events; 0 means 5/s, burst 25.
	EventsPerSecond float32
	EventBurst      int
	// ReportInterval is how often pending reports are written; 0 means 2 s. It also gives
	// the API server time to store a newly created resource before its report names it as
	// owner.
	ReportInterval time.Duration
	// MaxPendingReports bounds the resources whose report waits to be written; 0 means 10000.
	MaxPendingReports int
	// Instance is the Events' reportingInstance; "" means "vouch-<hostname>".
	Instance string
	// Now reads the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Recorder turns admissions into Events and PolicyReports in the background: Admission and
// PolicyEvent never block; Run does the work.
type Recorder struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	queue   chan func()
	limiter flowcontrol.PassiveRateLimiter
	events  *prometheus.CounterVec
	reports *prometheus.CounterVec

	// work serialises Run and Flush; it guards series and pending.
	work         sync.Mutex
	series       *seriesCache
	pending      map[string]*pendingReport
	reportWarned time.Time // when failed report writes were last logged
}

// New validates the options and returns a Recorder; call Run to start it.
func New(opts Options) (*Recorder, error) {
	if opts.Events == nil && opts.Dynamic == nil {
		return nil, errors.New("recorder: neither an Events client nor a dynamic client: nothing to record")
	}
	if opts.QueueSize < 0 || opts.EventsPerSecond < 0 || opts.EventBurst < 0 || opts.ReportInterval < 0 || opts.MaxPendingReports < 0 {
		return nil, errors.New("recorder: negative option")
	}
	opts.QueueSize = orDefault(opts.QueueSize, DefaultQueueSize)
	opts.EventsPerSecond = orDefault(opts.EventsPerSecond, DefaultEventsPerSecond)
	opts.EventBurst = orDefault(opts.EventBurst, DefaultEventBurst)
	opts.ReportInterval = orDefault(opts.ReportInterval, DefaultReportInterval)
	opts.MaxPendingReports = orDefault(opts.MaxPendingReports, DefaultMaxPendingReports)
	if opts.Instance == "" {
		host, _ := os.Hostname()
		opts.Instance = ReportingController + "-" + host
	}
	r := &Recorder{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		queue:   make(chan func(), opts.QueueSize),
		limiter: flowcontrol.NewTokenBucketPassiveRateLimiter(opts.EventsPerSecond, opts.EventBurst),
		series:  newSeriesCache(),
		pending: map[string]*pendingReport{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vouch_events_total",
			Help: "Kubernetes Events by result: created, aggregated (counted in an existing Event's series), failed (the API server refused), queue-full or rate-limited (dropped).",
		}, []string{"result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vouch_policy_reports_total",
			Help: "PolicyReport writes by result: written, failed (the API server refused), queue-full (dropped).",
		}, []string{"result"}),
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.events, r.reports} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run handles queued work until ctx ends: Events as they come, reports every
// ReportInterval, event series every 30 s, and a last flush of pending reports when ctx ends
// (bounded by a short timeout).
func (r *Recorder) Run(ctx context.Context) {
	ticker := time.NewTicker(r.opts.ReportInterval)
	defer ticker.Stop()
	lastSeries := r.now()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			r.Flush(fctx)
			cancel()
			return
		case work := <-r.queue:
			r.work.Lock()
			work()
			r.work.Unlock()
		case <-ticker.C:
			r.work.Lock()
			r.flushReports(ctx)
			if r.now().Sub(lastSeries) >= seriesFlushInterval {
				r.flushSeries(ctx)
				lastSeries = r.now()
			}
			r.work.Unlock()
		}
	}
}

// Flush handles the queued work, then writes pending reports and event series, now.
func (r *Recorder) Flush(ctx context.Context) {
	r.work.Lock()
	defer r.work.Unlock()
	for drained := false; !drained; {
		select {
		case work := <-r.queue:
			work()
		default:
			drained = true
		}
	}
	r.flushReports(ctx)
	r.flushSeries(ctx)
}

// Admission records one evaluated admission request: an Event on each policy whose rule
// denied it; for the validating webhook, which sees the resource as it will be stored (with
// its UID), an Event on each policy an Audit rule of which it violates, and its PolicyReport.
// Dry-run requests leave no trace (the webhooks declare sideEffects: NoneOnDryRun), nor do
// subresource requests. It does not block: the work is queued.
func (r *Recorder) Admission(webhook string, req *admissionv1.AdmissionRequest, resp *engine.Response, d engine.Decision) {
	if req == nil || resp == nil || (req.DryRun != nil && *req.DryRun) || req.SubResource != "" || len(resp.Results) == 0 {
		return
	}
	wantEvents := r.opts.Events != nil && (!d.Allowed || webhook == "validate" && hasStatus(resp, engine.Warn))
	wantReport := r.opts.Dynamic != nil && webhook == "validate" && d.Allowed
	if !wantEvents && !wantReport {
		return // most admissions: allowed by the mutating webhook
	}
	select {
	case r.queue <- func() { r.handle(webhook, req, resp, d) }:
	default:
		if wantEvents {
			r.events.WithLabelValues("queue-full").Inc()
		}
		if wantReport {
			r.reports.WithLabelValues("queue-full").Inc()
		}
	}
}

func hasStatus(resp *engine.Response, s engine.Status) bool {
	for _, res := range resp.Results {
		if res.Status == s {
			return true
		}
	}
	return false
}

// Scanned records the results of a background scan of a stored resource as its PolicyReport
// (replacing the results of its admission, or of an earlier scan). Without results nothing is
// written. Unlike an admission's, the work waits for room in the queue (until ctx ends): a
// scan slows down rather than losing results.
func (r *Recorder) Scanned(ctx context.Context, s report.Subject, results []engine.RuleResult) {
	if r.opts.Dynamic == nil || len(results) == 0 || s.UID == "" || s.Name == "" {
		return
	}
	select {
	case r.queue <- func() { r.keepReport(s, results, report.ProcessBackground) }:
	case <-ctx.Done():
		r.reports.WithLabelValues("queue-full").Inc()
	}
}

// PolicyEvent records an Event about a policy object (loaded, broken, insecure). It does not
// block: the work is queued.
func (r *Recorder) PolicyEvent(regarding corev1.ObjectReference, eventType, reason, action, note string) {
	if r.opts.Events == nil {
		return
	}
	ev := event{regarding: regarding, eventType: eventType, reason: reason, action: action, note: note}
	select {
	case r.queue <- func() { r.emit(context.Background(), ev) }:
	default:
		r.events.WithLabelValues("queue-full").Inc()
	}
}

// handle turns one admission into Events and a pending report. It runs in Run.
func (r *Recorder) handle(webhook string, req *admissionv1.AdmissionRequest, resp *engine.Response, d engine.Decision) {
	ctx := context.Background()
	if r.opts.Events != nil {
		for _, ev := range admissionEvents(webhook, req, resp, d) {
			r.emit(ctx, ev)
		}
	}
	if r.opts.Dynamic != nil && webhook == "validate" && d.Allowed {
		r.queueReport(req, resp)
	}
}
