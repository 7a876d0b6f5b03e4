package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vouchproject/vouch/internal/engine"
)

// metrics are the webhook's own Prometheus metrics.
type metrics struct {
	latency    *prometheus.HistogramVec
	rules      *prometheus.CounterVec
	overloaded *prometheus.CounterVec
}

// newMetrics registers the webhook's metrics with reg; inFlight reads the number of
// admissions being evaluated.
func newMetrics(reg prometheus.Registerer, inFlight func() int64) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vouch_admission_duration_seconds",
			Help:    "Time to answer an admission request, by webhook (mutate, validate, validate-policy) and outcome (allowed, denied, error, not-ready).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"webhook", "outcome"}),
		rules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vouch_policy_results_total",
			Help: "Rule results of evaluated admission requests, by webhook (mutate, validate), policy (<name> or <namespace>/<name>), rule and result (pass, fail, warn, error, skip). error is could-not-verify.",
		}, []string{"webhook", "policy", "rule", "result"}),
		overloaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vouch_admissions_overloaded_total",
			Help: "Admission requests that arrived with --max-admissions-in-flight requests already being evaluated, by webhook (mutate, validate): answered at once, every image that needed the registry reported as could-not-verify (each policy's failurePolicy decided).",
		}, []string{"webhook"}),
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vouch_admissions_in_flight",
		Help: "Admission requests (mutate, validate) being evaluated now, at most --max-admissions-in-flight.",
	}, func() float64 { return float64(inFlight()) })
	for _, w := range []phase{mutating, validating} {
		m.overloaded.WithLabelValues(string(w)) // present at 0 from the start
	}
	for _, c := range []prometheus.Collector{m.latency, m.rules, m.overloaded, gauge} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(webhook, outcome string, d time.Duration) {
	m.latency.WithLabelValues(webhook, outcome).Observe(d.Seconds())
}

// results counts the rule results of one evaluation. Policies and rules come from the loaded
// policy set, so the label values are bounded by it.
func (m *metrics) results(webhook string, resp *engine.Response) {
	for _, r := range resp.Results {
		m.rules.WithLabelValues(webhook, r.Policy.ReportName(), r.Rule.Name, string(r.Status)).Inc()
	}
}
