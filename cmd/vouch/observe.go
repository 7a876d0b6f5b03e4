package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/metrics"
	"github.com/vouchproject/vouch/internal/recorder"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/source"
	"github.com/vouchproject/vouch/internal/webhook"
)

// observability is what `vouch serve` wires for metrics, Events and PolicyReports.
type observability struct {
	requests      *registry.Counter      // registry.Options.Metrics
	verifications *metrics.Verifications // engine.Options.Observer
	recorder      *recorder.Recorder     // nil without a cluster, or with --events=false --policy-reports=false
}

// newObservability registers vouch's metrics with reg and, when a cluster is configured and
// the flags allow, builds the recorder of Events (kube) and PolicyReports (dyn).
func newObservability(reg prometheus.Registerer, results *cache.Cache, kube kubernetes.Interface, dyn dynamic.Interface,
	events, reports bool, log *slog.Logger) (*observability, error) {
	o := &observability{requests: &registry.Counter{}}
	var err error
	if o.verifications, err = metrics.NewVerifications(reg); err != nil {
		return nil, err
	}
	if err := metrics.RegisterCache(reg, results); err != nil {
		return nil, err
	}
	if err := metrics.RegisterRegistry(reg, o.requests, 0); err != nil {
		return nil, err
	}
	opts := recorder.Options{Registerer: reg, Logger: log}
	if events && kube != nil {
		opts.Events = kube.EventsV1()
	}
	if reports && dyn != nil {
		opts.Dynamic = dyn
	}
	if opts.Events != nil || opts.Dynamic != nil {
		if o.recorder, err = recorder.New(opts); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// run runs the recorder until ctx ends.
func (o *observability) run(ctx context.Context) {
	if o.recorder != nil {
		o.recorder.Run(ctx)
	}
}

// policyEvents is the source's Event sink, nil when Events are off.
func (o *observability) policyEvents() source.PolicyEvents {
	if o.recorder == nil {
		return nil
	}
	return o.recorder
}

// onAdmission is the webhook's hook to the recorder, nil when there is none.
func (o *observability) onAdmission() func(webhook.Admission) {
	if o.recorder == nil {
		return nil
	}
	return func(a webhook.Admission) { o.recorder.Admission(a.Webhook, a.Request, a.Response, a.Decision) }
}

var _ engine.Observer = (*metrics.Verifications)(nil)
