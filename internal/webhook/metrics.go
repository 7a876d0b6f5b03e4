package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the webhook's own Prometheus metrics.
type metrics struct {
	latency *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vouch_admission_duration_seconds",
			Help:    "Time to answer an admission request, by webhook (mutate, validate) and outcome (allowed, denied, error, not-ready).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"webhook", "outcome"}),
	}
	if err := reg.Register(m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observe(webhook, outcome string, d time.Duration) {
	m.latency.WithLabelValues(webhook, outcome).Observe(d.Seconds())
}
