package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/policy"
)

// indent indents every line of text by n spaces.
func indent(text string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n"+pad)
}

// contextPolicy is a policy whose one rule has the given rule-level fields (context,
// preconditions) and verifyImages entry.
func contextPolicy(ruleFields, entry string) string {
	return "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: pol}\nspec:\n  validationFailureAction: Enforce\n" +
		"  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n" + ruleFields + "    verifyImages:\n" + entry
}

// keyFromVariable is an entry whose public key is the given expression.
const keyFromVariable = `    - imageReferences: ["*"]
      attestors:
      - entries:
        - keys:
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
            publicKeys: "{{ key }}"
`

// teamKeys is a context whose entry "key" is the public key of the object's namespace.
func teamKeys(w *world) string {
	return "    context:\n    - name: keys\n      variable:\n        value:\n" +
		"          team-a: |-\n" + indent(w.k1.PEM, 12) + "\n" +
		"          team-b: |-\n" + indent(w.k2.PEM, 12) + "\n" +
		"    - name: key\n      variable:\n        jmesPath: 'keys.\"{{ request.namespace }}\"'\n"
}

// TestContextKeyPerNamespace: a key chosen by the object's namespace through context
// entries (spec §2.3) verifies in the namespace whose key signed the image and fails in the
// other — also when the first verification is cached: the cache keeps the substitutions of
// an entry apart (Kyverno keys its cache by policy, rule and image only).
func TestContextKeyPerNamespace(t *testing.T) {
	w := newWorld(t)
	e := w.engineFor(t, contextPolicy(teamKeys(w), keyFromVariable))
	c := withCache(t, e)
	img := w.reg.Host + "/app:signed"
	a := evaluate(t, e, pod(t, "team-a", img), nil)
	if len(a) != 1 || a[0].Status != Pass || a[0].Message != "verified image signatures for "+img {
		t.Fatalf("team-a (k1 signed) = %+v", a)
	}
	b := evaluate(t, e, pod(t, "team-b", img), nil)
	if len(b) != 1 || b[0].Status != Fail || !strings.Contains(b[0].Message, "failed to verify image "+img) {
		t.Fatalf("team-b (k2 did not sign) = %+v, want fail", b)
	}
	again := evaluate(t, e, pod(t, "team-a", img), nil)
	if len(again) != 1 || again[0].Status != Pass {
		t.Fatalf("team-a again = %+v", again)
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 2 {
		t.Errorf("cache stats %+v, want 1 hit (team-a again) and 2 misses", st)
	}
	other := evaluate(t, e, pod(t, "team-c", img), nil)
	if len(other) != 1 || other[0].Status != Error || !strings.HasPrefix(other[0].Message, `failed to load context: context entry "key": failed to apply jmespath keys."team-c"`) {
		t.Fatalf("team-c (no key) = %+v, want a context error", other)
	}
}

// TestPreconditions: preconditions decide whether the rule applies (spec §2.3, §8.2): not met
// is skip "preconditions not met[; <message>]" and nothing is verified, pinned or recorded; a
// variable that does not resolve is "" (Kyverno's preconditions resolver), not an error.
func TestPreconditions(t *testing.T) {
	w := newWorld(t)
	pre := `    preconditions:
      all:
      - key: "{{ request.object.metadata.labels.verify }}"
        operator: NotEquals
        value: "false"
        message: "verification is switched off for {{ request.object.metadata.name }}"
      - key: "{{ serviceAccountName || 'none' }}"
        operator: NotEquals
        value: "{{ request.namespace }}-deployer"
`
	e := w.engineFor(t, contextPolicy(pre, keyEntry(w.k1.PEM)))
	img := w.reg.Host + "/app:unsigned"
	before := w.served.Load()
	off := pod(t, "default", img)
	off["metadata"].(map[string]any)["labels"] = map[string]any{"verify": "false"}
	resp, err := e.Evaluate(context.Background(), Request{Object: off})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Status != Skip || resp.Results[0].Message != "preconditions not met; verification is switched off for p" {
		t.Fatalf("label verify=false: %+v", resp.Results)
	}
	if len(resp.Patches) != 0 || w.served.Load() != before {
		t.Errorf("a skipped rule patched %v and asked the registry %d times", resp.Patches, w.served.Load()-before)
	}
	// No label: the variable is "", which is not "false": the rule applies and the unsigned
	// image fails.
	on := evaluate(t, e, pod(t, "default", img), nil)
	if len(on) != 1 || on[0].Status != Fail {
		t.Fatalf("no label = %+v, want fail", on)
	}
	// The namespace's deployer service account is exempt.
	resp, err = e.Evaluate(context.Background(), Request{Object: pod(t, "default", img), User: &User{Username: "system:serviceaccount:default:default-deployer"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Status != Skip || resp.Results[0].Message != "preconditions not met" {
		t.Fatalf("deployer = %+v, want skip", resp.Results)
	}
}

// TestRuleContextFailures: every way the rule's context can fail decides the rule as Kyverno
// does, never a silent pass: a variable that does not resolve is error "failed to substitute
// variables", a value that is not valid once substituted fails every image (the object must
// not be able to turn a denial into failurePolicy's call), a substituted value that brings
// its own {{ }} is never evaluated, and unsupported context entries fail closed.
func TestRuleContextFailures(t *testing.T) {
	w := newWorld(t)
	img := w.reg.Host + "/app:signed"
	annotated := func(key string) map[string]any {
		p := pod(t, "default", img)
		p["metadata"].(map[string]any)["annotations"] = map[string]any{"key": key}
		return p
	}
	fromAnnotation := strings.Replace(keyFromVariable, "{{ key }}", "{{ request.object.metadata.annotations.key }}", 1)
	for _, tc := range []struct {
		name         string
		rule, entry  string
		obj          map[string]any
		status       Status
		prefix       string
		imageVerdict Status
	}{
		{"unresolved", "", fromAnnotation, pod(t, "default", img), Error,
			"failed to substitute variables: spec.rules[0].verifyImages[0]: variable substitution failed: ", Error},
		{"not a key", "", fromAnnotation, annotated("not a key"), Fail,
			"failed to verify image " + img + ": after substitution: spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: ", Fail},
		{"injected variable", "", fromAnnotation, annotated("{{ request.namespace }}"), Fail,
			"failed to verify image " + img + ": spec.rules[0].verifyImages[0]: after substitution: a substituted value holds a {{ }} variable", Fail},
		{"the right key from the object", "", fromAnnotation, annotated(w.k1.PEM), Pass,
			"verified image signatures for " + img, Pass},
		{"apiCall service", "    context:\n    - name: keys\n      apiCall: {service: {url: \"https://keys.example/\"}}\n", keyFromVariable, pod(t, "default", img), Error,
			`failed to load context: context entry "keys": apiCall service entries are not supported yet`, Error},
		{"apiCall without a loader", "    context:\n    - name: keys\n      apiCall: {urlPath: /api/v1/namespaces/kyverno/configmaps/keys}\n", keyFromVariable, pod(t, "default", img), Error,
			`failed to load context: context entry "keys": apiCall entries need the Kubernetes API (vouch serve)`, Error},
		{"configMap without a loader", "    context:\n    - name: keys\n      configMap: {name: keys, namespace: kyverno}\n", keyFromVariable, pod(t, "default", img), Error,
			`failed to load context: context entry "keys": configMap entries need the Kubernetes API (vouch serve) or the ConfigMap among the resources (vouch apply)`, Error},
		{"nil variable", "    context:\n    - name: key\n      variable: {jmesPath: 'request.object.spec.nodeName || `null`'}\n", keyFromVariable, pod(t, "default", img), Error,
			"failed to load context: failed to add context entry for variable key since it evaluated to nil", Error},
		{"default", "    context:\n    - name: key\n      variable:\n        jmesPath: request.object.metadata.annotations.key\n        default: |-\n" + indent(w.k1.PEM, 10) + "\n", keyFromVariable, pod(t, "default", img), Pass,
			"verified image signatures for " + img, Pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := w.engineFor(t, contextPolicy(tc.rule, tc.entry))
			got := evaluate(t, e, tc.obj, nil)
			if len(got) != 1 || got[0].Status != tc.status || !strings.HasPrefix(got[0].Message, tc.prefix) || got[0].Images[img] != tc.imageVerdict {
				t.Fatalf("got %+v\nwant %s %q… (image %s)", got, tc.status, tc.prefix, tc.imageVerdict)
			}
		})
	}
}

// TestConditionsSeeTheRuleContext: attestation conditions and validate.deny see the rule's
// context entries and `images` (spec §3.12.2), not only the request.
func TestConditionsSeeTheRuleContext(t *testing.T) {
	w := newWorld(t)
	w.attestedImage(t, "prov", fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)})
	ctxEntries := "    context:\n    - name: trusted\n      variable:\n        value: {builder: \"" + builderID + "\"}\n"
	cond := `        conditions:
        - all:
          - key: "{{ builder.id }}"
            operator: Equals
            value: "{{ trusted.builder }}"
          - key: "{{ images.containers.c0.name }}"
            operator: Equals
            value: app
`
	e := w.engineFor(t, contextPolicy(ctxEntries, attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(w.k1.PEM) + cond}, "")))
	img := w.reg.Host + "/app:prov"
	got := evaluate(t, e, pod(t, "default", img), nil)
	if len(got) != 1 || got[0].Status != Pass {
		t.Fatalf("got %+v, want pass", got)
	}
	e = w.engineFor(t, contextPolicy(strings.Replace(ctxEntries, builderID, "https://other.example/builder", 1),
		attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(w.k1.PEM) + cond}, "")))
	got = evaluate(t, e, pod(t, "default", img), nil)
	if len(got) != 1 || got[0].Status != Fail || !strings.Contains(got[0].Message, "attestation checks failed") {
		t.Fatalf("another trusted builder: got %+v, want fail", got)
	}
}

// TestConfigMapContext: a key read from a ConfigMap (Kyverno's most common context entry) is
// read on every admission through the engine's loader, so rotating the key in the ConfigMap
// takes effect at once even with a cached pass for the old key (the cache is keyed by the
// substitution); a ConfigMap that cannot be read is an error for the rule.
func TestConfigMapContext(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	data := map[string]any{"pub": w.k1.PEM}
	var asked []string
	loader := func(_ context.Context, namespace, name string) (map[string]any, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, namespace+"/"+name)
		if name != "keys" {
			return nil, errors.New(`configmaps "` + name + `" not found`)
		}
		cp := map[string]any{}
		for k, v := range data {
			cp[k] = v
		}
		return map[string]any{"data": cp, "metadata": map[string]any{"name": name, "namespace": namespace}}, nil
	}
	ctxEntry := "    context:\n    - name: keys\n      configMap: {name: \"{{ request.object.metadata.labels.keys || 'keys' }}\", namespace: kyverno}\n"
	e := w.engineFor(t, contextPolicy(ctxEntry, strings.Replace(keyFromVariable, "{{ key }}", "{{ keys.data.pub }}", 1)))
	e.loaders = policy.Loaders{ConfigMap: loader}
	withCache(t, e)
	img := w.reg.Host + "/app:signed"
	if got := evaluate(t, e, pod(t, "default", img), nil); len(got) != 1 || got[0].Status != Pass {
		t.Fatalf("k1 in the ConfigMap: %+v, want pass", got)
	}
	mu.Lock()
	data["pub"] = w.k2.PEM
	mu.Unlock()
	if got := evaluate(t, e, pod(t, "default", img), nil); len(got) != 1 || got[0].Status != Fail {
		t.Fatalf("k2 in the ConfigMap after a cached pass with k1: %+v, want fail", got)
	}
	other := pod(t, "default", img)
	other["metadata"].(map[string]any)["labels"] = map[string]any{"keys": "missing"}
	got := evaluate(t, e, other, nil)
	if len(got) != 1 || got[0].Status != Error || got[0].Message != `failed to load context: context entry "keys": failed to get configmap kyverno/missing: configmaps "missing" not found` {
		t.Fatalf("missing ConfigMap: %+v", got)
	}
	if want := []string{"kyverno/keys", "kyverno/keys", "kyverno/missing"}; !slices.Equal(asked, want) {
		t.Errorf("ConfigMaps read %v, want %v", asked, want)
	}
}

// TestContextKeyPerNamespaceConcurrently: admissions of the same image in two namespaces whose
// keys differ, evaluated at once through one cache (and its sharing of verifications in
// flight), each get their own namespace's verdict.
func TestContextKeyPerNamespaceConcurrently(t *testing.T) {
	w := newWorld(t)
	e := w.engineFor(t, contextPolicy(teamKeys(w), keyFromVariable))
	withCache(t, e)
	img := w.reg.Host + "/app:signed"
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := 0; i < 64; i++ {
		ns, want := "team-a", Pass
		if i%2 == 1 {
			ns, want = "team-b", Fail
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, ns, img)})
			if err != nil {
				errs <- err.Error()
				return
			}
			if len(resp.Results) != 1 || resp.Results[0].Status != want {
				errs <- fmt.Sprintf("%s: %+v, want %s", ns, resp.Results, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// withCache gives the engine a verification cache with the default options and returns it.
func withCache(t *testing.T, e *Engine) *cache.Cache {
	t.Helper()
	c, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
	return c
}
