package engine

import (
	"context"
	"testing"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
)

// BenchmarkRuleContext measures what a rule context costs an admission answered from the
// verification cache (the common case in a cluster): the same signed image and key, written
// in the policy ("static") or chosen per namespace through two context entries, a
// precondition and a substituted publicKeys ("context"). The difference is the context
// document, the precondition, rendering and hashing the entry, and the memoised compile.
func BenchmarkRuleContext(b *testing.B) {
	t := &testing.T{}
	w := &world{counter: &registry.Counter{}}
	w.reg = fixture.StartRegistry(false, nil)
	defer w.reg.Close()
	ctx := context.Background()
	var err error
	if w.k1, err = fixture.NewKey(); err != nil {
		b.Fatal(err)
	}
	if w.k2, err = fixture.NewKey(); err != nil {
		b.Fatal(err)
	}
	if w.signed, err = w.reg.Push(ctx, "app:signed"); err != nil {
		b.Fatal(err)
	}
	if err := w.reg.Sign(ctx, "app", w.signed, w.k1.Private, nil, ""); err != nil {
		b.Fatal(err)
	}
	pre := "    preconditions:\n      all:\n      - {key: \"{{ request.operation }}\", operator: NotEquals, value: DELETE}\n"
	img := w.reg.Host + "/app@" + w.signed // by digest: no tag resolution, only the engine
	for _, c := range []struct{ name, policy string }{
		{"static", contextPolicy("", keyEntry(w.k1.PEM))},
		{"context", contextPolicy(teamKeys(w)+pre, keyFromVariable)},
	} {
		e := w.engineFor(t, c.policy)
		if e.cache, err = cache.New(cache.Options{Enabled: true}); err != nil {
			b.Fatal(err)
		}
		obj := pod(t, "team-a", img)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				resp, err := e.Evaluate(ctx, Request{Object: obj})
				if err != nil || len(resp.Results) != 1 || resp.Results[0].Status != Pass {
					b.Fatalf("%v %+v", err, resp)
				}
			}
		})
	}
}
