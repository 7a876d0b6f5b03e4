package background

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/report"
)

// BenchmarkScan: one background scan of 1,000 Pods running 10 distinct signed images (by
// digest) on an in-process registry: each image is verified once per scan (the scan's own
// cache), every Pod is evaluated and recorded. Reported per Pod.
func BenchmarkScan(b *testing.B) {
	ctx := context.Background()
	reg := fixture.StartRegistry(false, nil)
	defer reg.Close()
	k1, err := fixture.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	var digests []string
	for i := range 10 {
		d, err := reg.Push(ctx, fmt.Sprintf("app%d:v1", i))
		if err != nil {
			b.Fatal(err)
		}
		if err := reg.Sign(ctx, fmt.Sprintf("app%d", i), d, k1.Private, nil, ""); err != nil {
			b.Fatal(err)
		}
		digests = append(digests, d)
	}
	eng := scanEngine(b, reg.Host, k1.PEM)
	const pods = 1000
	var objs []runtime.Object
	for i := range pods {
		objs = append(objs, podOf("team", fmt.Sprintf("p%d", i), fmt.Sprint(i), fmt.Sprintf("%s/app%d:v1@%s", reg.Host, i%10, digests[i%10])))
	}
	kube := fake.NewClientset(objs...)
	var recorded atomic.Int64
	s, err := New(Options{Client: kube, Engine: func() *engine.Engine { return eng }, Interval: time.Hour,
		Record: func(context.Context, report.Subject, []engine.RuleResult) { recorded.Add(1) }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scan", func(b *testing.B) {
		recorded.Store(0)
		for i := 0; i < b.N; i++ {
			n, err := s.Scan(ctx)
			if err != nil || n != pods {
				b.Fatalf("scan: %d Pods, %v", n, err)
			}
		}
		if got := recorded.Load(); got != int64(b.N*pods) {
			b.Fatalf("%d Pods recorded, want %d", got, b.N*pods)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pods), "ns/pod")
	})
	// The baseline: the same Pods evaluated one after another (as the scan does, with the same
	// policies) from a warm cache: no listing, no conversion, no verification.
	warm, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	admit := eng.WithCache(warm)
	podObjs := make([]map[string]any, len(objs))
	for i, o := range objs {
		if podObjs[i], err = runtime.DefaultUnstructuredConverter.ToUnstructured(o); err != nil {
			b.Fatal(err)
		}
		podObjs[i]["apiVersion"], podObjs[i]["kind"] = "v1", "Pod"
	}
	b.Run("evaluate-cached", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, o := range podObjs {
				resp, err := admit.Evaluate(ctx, engine.Request{Object: o, Background: true})
				if err != nil || len(resp.Results) != 1 || resp.Results[0].Status != engine.Pass {
					b.Fatalf("%v %+v", err, resp)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pods), "ns/pod")
	})
}
