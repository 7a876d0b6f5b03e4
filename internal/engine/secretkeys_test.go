package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vouchproject/vouch/internal/policy"
)

// secretKeyEntry is an entry whose key is given by keysYAML (keys.secret or a k8s:// reference).
func secretKeyEntry(keysYAML string) string {
	return `    - imageReferences: ["*"]
      attestors:
      - entries:
        - keys:
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
            ` + keysYAML + "\n"
}

// secretStore is a Secret reader over cosign.pub values by "<namespace>/<name>", recording reads.
type secretStore struct {
	mu    sync.Mutex
	keys  map[string]string
	asked []string
}

func (s *secretStore) set(ref, pub string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[ref] = pub
}

func (s *secretStore) read(_ context.Context, namespace, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, namespace+"/"+name)
	pub, ok := s.keys[namespace+"/"+name]
	if !ok {
		return "", fmt.Errorf("secrets %q not found", name)
	}
	return pub, nil
}

// TestSecretKeys: public keys from Secrets — keys.secret, k8s://<namespace>/<name> in
// publicKeys or kms, nested — verify as PEM keys do; a key rotated in its Secret is used at
// once, past a verification cached with the old key; a Secret that cannot be read is an error
// naming it; a cosign.pub that is not a public key fails; a namespaced Policy reads Secrets of
// its own namespace only.
func TestSecretKeys(t *testing.T) {
	w := newWorld(t)
	img := w.reg.Host + "/app:signed" // signed with k1
	store := &secretStore{keys: map[string]string{"keys/cosign": w.k1.PEM, "team-a/cosign": w.k1.PEM}}
	engineWith := func(t *testing.T, doc string) *Engine {
		e := w.engineFor(t, doc)
		e.loaders = policy.Loaders{SecretKey: store.read}
		withCache(t, e)
		return e
	}
	for _, form := range []string{
		"secret: {name: cosign, namespace: keys}",
		`publicKeys: "k8s://keys/cosign"`,
		`kms: "k8s://keys/cosign"`,
	} {
		t.Run(form, func(t *testing.T) {
			store.set("keys/cosign", w.k1.PEM)
			e := engineWith(t, contextPolicy("", secretKeyEntry(form)))
			if got := evaluate(t, e, pod(t, "default", img), nil); len(got) != 1 || got[0].Status != Pass {
				t.Fatalf("k1 in the Secret: %+v, want pass", got)
			}
			store.set("keys/cosign", w.k2.PEM)
			if got := evaluate(t, e, pod(t, "default", img), nil); len(got) != 1 || got[0].Status != Fail ||
				!strings.Contains(got[0].Message, "no matching signatures") {
				t.Fatalf("k2 rotated into the Secret after a cached pass with k1: %+v, want fail", got)
			}
			store.set("keys/cosign", w.k1.PEM)
			if got := evaluate(t, e, pod(t, "default", img), nil); len(got) != 1 || got[0].Status != Pass {
				t.Fatalf("k1 back in the Secret: %+v, want pass", got)
			}
		})
	}

	t.Run("nested attestor", func(t *testing.T) {
		store.set("keys/cosign", w.k1.PEM)
		entry := `    - imageReferences: ["*"]
      attestors:
      - entries:
        - attestor:
            entries:
            - keys: {secret: {name: cosign, namespace: keys}, rekor: {ignoreTlog: true}, ctlog: {ignoreSCT: true}}
`
		e := engineWith(t, contextPolicy("", entry))
		if got := evaluate(t, e, pod(t, "default", img), nil); len(got) != 1 || got[0].Status != Pass {
			t.Fatalf("k1 in the nested attestor's Secret: %+v, want pass", got)
		}
	})

	t.Run("missing Secret", func(t *testing.T) {
		e := engineWith(t, contextPolicy("", secretKeyEntry("secret: {name: missing, namespace: keys}")))
		got := evaluate(t, e, pod(t, "default", img), nil)
		want := `.attestors[0].entries[0].keys: Secret keys/missing (cosign.pub): secrets "missing" not found`
		if len(got) != 1 || got[0].Status != Error || !strings.HasPrefix(got[0].Message, "could not verify image ") || !strings.Contains(got[0].Message, want) {
			t.Fatalf("missing Secret: %+v, want error containing %q", got, want)
		}
	})

	t.Run("cosign.pub is not a public key", func(t *testing.T) {
		store.set("keys/bad", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		e := engineWith(t, contextPolicy("", secretKeyEntry("secret: {name: bad, namespace: keys}")))
		got := evaluate(t, e, pod(t, "default", img), nil)
		want := `.attestors[0].entries[0].keys: Secret keys/bad (cosign.pub): not a public key: PEM block is "CERTIFICATE", want "PUBLIC KEY"`
		if len(got) != 1 || got[0].Status != Fail || !strings.Contains(got[0].Message, want) {
			t.Fatalf("bad cosign.pub: %+v, want fail containing %q", got, want)
		}
		// Under failurePolicy Ignore too: a bad key is a failed verification, never "could not verify".
		e = engineWith(t, strings.Replace(contextPolicy("", secretKeyEntry("secret: {name: bad, namespace: keys}")), "spec:\n", "spec:\n  failurePolicy: Ignore\n", 1))
		if got := evaluate(t, e, pod(t, "default", img), nil); len(got) != 1 || got[0].Status != Fail {
			t.Fatalf("bad cosign.pub under failurePolicy Ignore: %+v, want fail", got)
		}
	})

	t.Run("namespaced Policy", func(t *testing.T) {
		// A Secret of another namespace named in the Policy is refused at load
		// (internal/policy TestResolveSecretKeys); one named through a variable is refused
		// when it would be read.
		nsPolicy := func(secretNS string) string {
			return strings.Replace(contextPolicy("", secretKeyEntry("secret: {name: cosign, namespace: \""+secretNS+"\"}")),
				"kind: ClusterPolicy\nmetadata: {name: pol}", "kind: Policy\nmetadata: {name: pol, namespace: team-a}", 1)
		}
		store.mu.Lock()
		store.asked = nil
		store.mu.Unlock()
		e := engineWith(t, nsPolicy("{{ request.object.metadata.labels.keys }}"))
		labelled := func(ns string) map[string]any {
			p := pod(t, "team-a", img)
			p["metadata"].(map[string]any)["labels"] = map[string]any{"keys": ns}
			return p
		}
		got := evaluate(t, e, labelled("keys"), nil)
		want := "Secret keys/cosign (cosign.pub): a namespaced Policy reads Secrets in its own namespace (team-a) only"
		if len(got) != 1 || got[0].Status != Error || !strings.Contains(got[0].Message, want) {
			t.Fatalf("Policy in team-a naming a Secret in keys: %+v, want error containing %q", got, want)
		}
		store.mu.Lock()
		asked := slices.Clone(store.asked)
		store.mu.Unlock()
		if len(asked) != 0 {
			t.Errorf("Secrets read for a Policy of another namespace: %v", asked)
		}
		if got := evaluate(t, e, labelled("team-a"), nil); len(got) != 1 || got[0].Status != Pass {
			t.Fatalf("Policy in team-a naming its own Secret through a variable: %+v, want pass", got)
		}
		e = engineWith(t, nsPolicy("team-a"))
		if got := evaluate(t, e, pod(t, "team-a", img), nil); len(got) != 1 || got[0].Status != Pass {
			t.Fatalf("Policy in team-a naming its own Secret: %+v, want pass", got)
		}
	})

	t.Run("no Secret reader", func(t *testing.T) {
		e := w.engineFor(t, contextPolicy("", secretKeyEntry("secret: {name: cosign, namespace: keys}")))
		got := evaluate(t, e, pod(t, "default", img), nil)
		if len(got) != 1 || got[0].Status != Error || !strings.Contains(got[0].Message, "no Secrets can be read here") {
			t.Fatalf("no Secret reader: %+v, want error", got)
		}
	})
}
