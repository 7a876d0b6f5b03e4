package engine

import (
	"context"
	"testing"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/source"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// BenchmarkRuleContext measures what a rule context costs an admission answered from the
// verification cache (the common case in a cluster): the same signed image and key, written
// in the policy ("static"), chosen per namespace through two context entries, a precondition
// and a substituted publicKeys ("context"), or the cosign.pub of a Secret read through
// source.SecretKeys from an API server client ("secret"). The difference is the context
// document, the precondition, rendering and hashing the entry, and the memoised compile; for
// "secret", the kept Secret, hashing the key and the memoised entry holding it.
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
		{"secret", contextPolicy("", secretKeyEntry("secret: {name: cosign, namespace: keys}"))},
	} {
		e := w.engineFor(t, c.policy)
		e.loaders.SecretKey = source.NewSecretKeys(fake.NewClientset(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "cosign", Namespace: "keys"},
			Data:       map[string][]byte{policy.SecretKeyName: []byte(w.k1.PEM)},
		}), policy.SecretKeyName).Get
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
