package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/fixture"
)

// TestContextEntryLoad: variable entries load as Kyverno's variable loader does (spec §2.3).
func TestContextEntryLoad(t *testing.T) {
	doc := func() map[string]any {
		return map[string]any{"request": map[string]any{
			"namespace": "team-a",
			"object":    map[string]any{"metadata": map[string]any{"labels": map[string]any{"tier": "web"}}},
		}}
	}
	for _, tc := range []struct {
		name    string
		v       v1.Variable
		want    any
		wantErr string
	}{
		{"value", v1.Variable{Value: map[string]any{"a": 1.0}}, map[string]any{"a": 1.0}, ""},
		{"value with variables", v1.Variable{Value: "ns-{{ request.namespace }}"}, "ns-team-a", ""},
		{"whole variable keeps its type", v1.Variable{Value: "{{ request.object.metadata.labels }}"}, map[string]any{"tier": "web"}, ""},
		{"jmesPath on the context", v1.Variable{JMESPath: "request.object.metadata.labels.tier"}, "web", ""},
		{"jmesPath on the value", v1.Variable{Value: map[string]any{"team-a": "k1", "team-b": "k2"}, JMESPath: `"{{ request.namespace }}"`}, "k1", ""},
		{"jmesPath with a variable", v1.Variable{Value: map[string]any{"team-a": "k1"}, JMESPath: `"{{ request.namespace }}"`}, "k1", ""},
		{"missing key, default", v1.Variable{JMESPath: "request.object.metadata.labels.owner", Default: "nobody"}, "nobody", ""},
		{"null result, default", v1.Variable{JMESPath: "request.object.spec.nodeName || `null`", Default: "none"}, "none", ""},
		{"missing key on the value, default", v1.Variable{Value: map[string]any{}, JMESPath: "x.y", Default: "d"}, "d", ""},
		{"missing key, no default", v1.Variable{JMESPath: "request.object.metadata.labels.owner"}, nil,
			`context entry "e": failed to apply jmespath request.object.metadata.labels.owner: `},
		{"null", v1.Variable{JMESPath: "request.object.spec.nodeName || `null`"}, nil,
			"failed to add context entry for variable e since it evaluated to nil"},
		{"unresolved variable in the value", v1.Variable{Value: "{{ request.nope }}"}, nil,
			`context entry "e": e.variable.value: variable substitution failed: `},
		{"jmesPath not a string", v1.Variable{JMESPath: "{{ request.object.metadata.labels }}"}, nil,
			`context entry "e": e.variable.jmesPath: the expression did not resolve to a string`},
		{"jmesPath invalid once substituted", v1.Variable{JMESPath: "{{ request.namespace }}[["}, nil, `context entry "e": failed to apply jmespath team-a[[: invalid JMESPath expression`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileContextEntry(&v1.ContextEntry{Name: "e", Variable: &tc.v}, "e", "")
			if err != nil {
				t.Fatal(err)
			}
			d := doc()
			err = c.Load(context.Background(), d, Loaders{})
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tc.wantErr)
				}
				if _, set := d["e"]; set {
					t.Errorf("a failed entry was set: %v", d["e"])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, d["e"]); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
		})
	}
}

// TestContextEntryTooLarge: a value that grows with the request is capped.
func TestContextEntryTooLarge(t *testing.T) {
	c, err := compileContextEntry(&v1.ContextEntry{Name: "big", Variable: &v1.Variable{Value: "{{ request.object }}"}}, "big", "")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{"request": map[string]any{"object": map[string]any{"data": strings.Repeat("x", maxContextBytes)}}}
	if err := c.Load(context.Background(), doc, Loaders{}); err == nil || !strings.Contains(err.Error(), "more than the limit of 2097152") {
		t.Fatalf("err = %v, want the size limit", err)
	}
}

const templatedPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: key
      variable: {jmesPath: request.object.metadata.annotations.key}
    preconditions:
    - {key: "{{ request.operation }}", operator: NotEquals, value: DELETE}
    verifyImages:
    - imageReferences: ["ghcr.io/*"]
      repository: "ghcr.io/{{ request.namespace }}/signatures"
      attestors:
      - entries:
        - keys: {publicKeys: "{{ key }}", rekor: {ignoreTlog: true}}
      attestations:
      - type: https://slsa.dev/provenance/v0.2
        conditions:
        - all:
          - {key: "{{ builder.id }}", operator: Equals, value: "{{ request.namespace }}"}
`

// TestSubstitute: an entry with variables is compiled again for each substitution; the
// substitutions are told apart by Variant and the compiled entry of one is reused; attestation
// conditions are not substituted (they are evaluated per statement).
func TestSubstitute(t *testing.T) {
	k1, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	rule := load(t, templatedPolicy).Policies()[0].Rules[0]
	if !rule.NeedsContext() || len(rule.Context) != 1 || rule.Preconditions == nil || rule.Unsupported != "" {
		t.Fatalf("rule: context %d, preconditions %v, unsupported %q", len(rule.Context), rule.Preconditions, rule.Unsupported)
	}
	v := rule.Verifications[0]
	if !v.Templated() {
		t.Fatal("the entry is not templated")
	}
	doc := func(ns, key string) map[string]any {
		return map[string]any{"request": map[string]any{"namespace": ns}, "key": key}
	}
	a, err := v.Substitute(doc("team-a", k1.PEM))
	if err != nil {
		t.Fatal(err)
	}
	if a.Entry.Repository != "ghcr.io/team-a/signatures" || a.Variant == "" || a.Templated() {
		t.Errorf("substituted: repository %q, variant %q, templated %v", a.Entry.Repository, a.Variant, a.Templated())
	}
	if got := a.Attestors[0].Entries[0]; len(got.Keys) != 1 || got.KeyRef != "" || strings.TrimSpace(got.Keys[0].PEM) != strings.TrimSpace(k1.PEM) {
		t.Errorf("substituted attestor = %+v, want k1", got)
	}
	if a.Attestations[0].Conditions[0].All[0].Value != "{{ request.namespace }}" {
		t.Errorf("attestation conditions were substituted: %+v", a.Attestations[0].Conditions)
	}
	again, err := v.Substitute(doc("team-a", k1.PEM))
	if err != nil || again != a {
		t.Errorf("the same substitution compiled again (%p, %p, %v)", again, a, err)
	}
	b, err := v.Substitute(doc("team-a", k2.PEM))
	if err != nil {
		t.Fatal(err)
	}
	if b.Variant == a.Variant || b.Attestors[0].Entries[0].Keys[0].PEM == a.Attestors[0].Entries[0].Keys[0].PEM {
		t.Errorf("another key gave the same entry: variants %s %s", a.Variant, b.Variant)
	}
	if _, err := v.Substitute(map[string]any{"request": map[string]any{"namespace": "x"}}); !errors.Is(err, ErrSubstitution) {
		t.Errorf("missing key: err = %v, want a substitution error", err)
	}
	_, err = v.Substitute(doc("x", "not a key"))
	if err == nil || errors.Is(err, ErrSubstitution) || !strings.Contains(err.Error(), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys") {
		t.Errorf("bad key: err = %v, want an invalid entry naming the field", err)
	}
	if rule.Verifications[0] != v || v.Variant != "" {
		t.Error("substitution changed the compiled rule")
	}
}

// TestSubstitutionsAreBounded: the compiled substitutions kept per entry are bounded.
func TestSubstitutionsAreBounded(t *testing.T) {
	v := load(t, templatedPolicy).Policies()[0].Rules[0].Verifications[0]
	k, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3*maxSubstitutions; i++ {
		if _, err := v.Substitute(map[string]any{"request": map[string]any{"namespace": strings.Repeat("n", i+1)}, "key": k.PEM}); err != nil {
			t.Fatal(err)
		}
		if n := len(v.template.memo); n > maxSubstitutions {
			t.Fatalf("%d substitutions kept", n)
		}
	}
}

// TestPreconditionsCompile: preconditions are compiled once with the field path of each
// condition, and evaluated with unresolvable variables as "".
func TestPreconditionsCompile(t *testing.T) {
	rule := load(t, templatedPolicy).Policies()[0].Rules[0]
	res, err := rule.Preconditions.Evaluate(map[string]any{})
	if err != nil || !res.Pass {
		t.Errorf("no request: %+v, %v; want pass (\"\" is not DELETE)", res, err)
	}
	res, err = rule.Preconditions.Evaluate(map[string]any{"request": map[string]any{"operation": "DELETE"}})
	if err != nil || res.Pass {
		t.Errorf("DELETE: %+v, %v; want not met", res, err)
	}
	err = loadErr(t, strings.Replace(templatedPolicy, "{{ request.operation }}", "{{ a[[ }}", 1))
	if !strings.Contains(err.Error(), "spec.rules[0].preconditions.all[0].key") {
		t.Errorf("err = %v, want the precondition's field path", err)
	}
}

// TestConfigMapEntry: configMap entries substitute their name and namespace, default the
// namespace to the Policy's own ("default" for a ClusterPolicy), and a namespaced Policy may
// not read another namespace's ConfigMap (Kyverno's fix of the same cross-namespace read for
// apiCall, CVE-2026-22039).
func TestConfigMapEntry(t *testing.T) {
	var got []string
	loaders := Loaders{ConfigMap: func(_ context.Context, namespace, name string) (map[string]any, error) {
		got = append(got, namespace+"/"+name)
		return map[string]any{"data": map[string]any{"k": "v"}}, nil
	}}
	doc := map[string]any{"request": map[string]any{"namespace": "team-a"}}
	for _, tc := range []struct {
		name, policyNS string
		ref            v1.ConfigMapRef
		read, wantErr  string
	}{
		{"cluster policy, namespace given", "", v1.ConfigMapRef{Name: "keys", Namespace: "kyverno"}, "kyverno/keys", ""},
		{"cluster policy, no namespace", "", v1.ConfigMapRef{Name: "keys"}, "default/keys", ""},
		{"variables", "", v1.ConfigMapRef{Name: "keys-{{ request.namespace }}", Namespace: "{{ request.namespace }}"}, "team-a/keys-team-a", ""},
		{"policy, no namespace", "team-a", v1.ConfigMapRef{Name: "keys"}, "team-a/keys", ""},
		{"policy, its own namespace", "team-a", v1.ConfigMapRef{Name: "keys", Namespace: "{{ request.namespace }}"}, "team-a/keys", ""},
		{"policy, another namespace", "team-a", v1.ConfigMapRef{Name: "keys", Namespace: "kyverno"}, "",
			`context entry "e": configMap namespace "kyverno" is different from policy namespace "team-a"`},
		{"unresolved name", "", v1.ConfigMapRef{Name: "{{ request.nope }}"}, "", `context entry "e": e.configMap.name: variable substitution failed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			ref := tc.ref
			value, err := loadEntry(t, &v1.ContextEntry{Name: "e", ConfigMap: &ref}, tc.policyNS, doc["request"], loaders)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || len(got) != 0 {
					t.Fatalf("err = %v (read %v), want %q and nothing read", err, got, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0] != tc.read {
				t.Fatalf("read %v, err %v; want %s", got, err, tc.read)
			}
			if diff := cmp.Diff(map[string]any{"data": map[string]any{"k": "v"}}, value); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAPICallEntry: apiCall urlPath entries substitute the path, GET it through the loader
// (cleaned; only Kubernetes API paths; a namespaced Policy only inside its namespace) and apply
// the (substituted) jmesPath to the answer.
func TestAPICallEntry(t *testing.T) {
	var got []string
	loaders := Loaders{APICall: func(_ context.Context, p string) (any, error) {
		got = append(got, p)
		if strings.Contains(p, "missing") {
			return nil, errors.New(`namespaces "missing" not found`)
		}
		return map[string]any{"metadata": map[string]any{"name": "team-a", "annotations": map[string]any{"vouch.dev/key": "k1"}}}, nil
	}}
	doc := map[string]any{"request": map[string]any{"namespace": "team-a"}}
	for _, tc := range []struct {
		name, policyNS string
		call           v1.APICall
		read           string
		want           any
		wantErr        string
	}{
		{"namespace annotation", "", v1.APICall{URLPath: "/api/v1/namespaces/{{ request.namespace }}", JMESPath: `metadata.annotations."vouch.dev/key"`}, "/api/v1/namespaces/team-a", "k1", ""},
		{"whole answer", "", v1.APICall{URLPath: "/api/v1/namespaces/team-a", Method: "GET"}, "/api/v1/namespaces/team-a",
			map[string]any{"metadata": map[string]any{"name": "team-a", "annotations": map[string]any{"vouch.dev/key": "k1"}}}, ""},
		{"cleaned, query kept", "", v1.APICall{URLPath: "/api/v1/namespaces/x/../team-a?labelSelector=a%3Db", JMESPath: "metadata.name"}, "/api/v1/namespaces/team-a?labelSelector=a%3Db", "team-a", ""},
		{"policy, own namespace", "team-a", v1.APICall{URLPath: "/apis/apps/v1/namespaces/team-a/deployments/web", JMESPath: "metadata.name"}, "/apis/apps/v1/namespaces/team-a/deployments/web", "team-a", ""},
		{"policy, another namespace", "team-a", v1.APICall{URLPath: "/api/v1/namespaces/kyverno/configmaps/keys"}, "", nil,
			`context entry "e": apiCall urlPath "/api/v1/namespaces/kyverno/configmaps/keys" is outside the policy namespace "team-a"`},
		{"policy, escaping with ..", "team-a", v1.APICall{URLPath: "/api/v1/namespaces/team-a/../kyverno/configmaps/keys"}, "", nil,
			`context entry "e": apiCall urlPath "/api/v1/namespaces/team-a/../kyverno/configmaps/keys" is outside the policy namespace "team-a"`},
		{"policy, cluster-scoped", "team-a", v1.APICall{URLPath: "/api/v1/nodes"}, "", nil, `context entry "e": apiCall urlPath "/api/v1/nodes" is outside the policy namespace "team-a"`},
		{"not the Kubernetes API", "", v1.APICall{URLPath: "/healthz"}, "", nil, `context entry "e": apiCall urlPath "/healthz" is not a Kubernetes API path`},
		{"Secrets", "", v1.APICall{URLPath: "/api/v1/namespaces/vouch/secrets/registry"}, "", nil,
			`context entry "e": apiCall urlPath "/api/v1/namespaces/vouch/secrets/registry" reads Secrets, which vouch does not read for policies`},
		{"all Secrets", "", v1.APICall{URLPath: "/api/v1//secrets"}, "", nil, `context entry "e": apiCall urlPath "/api/v1//secrets" reads Secrets`},
		{"not found", "", v1.APICall{URLPath: "/api/v1/namespaces/missing"}, "/api/v1/namespaces/missing", nil,
			`context entry "e": failed to GET resource with raw url: /api/v1/namespaces/missing: namespaces "missing" not found`},
		{"jmesPath fails", "", v1.APICall{URLPath: "/api/v1/namespaces/team-a", JMESPath: "metadata.labels.x"}, "/api/v1/namespaces/team-a", nil,
			`context entry "e": failed to apply JMESPath metadata.labels.x: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			call := tc.call
			value, err := loadEntry(t, &v1.ContextEntry{Name: "e", APICall: &call}, tc.policyNS, doc["request"], loaders)
			if tc.read != "" && (len(got) != 1 || got[0] != tc.read) {
				t.Errorf("read %v, want %s", got, tc.read)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if tc.read == "" && len(got) != 0 {
					t.Errorf("read %v before refusing", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, value); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
		})
	}
	for _, method := range []v1.APICall{{URLPath: "/apis/authorization.k8s.io/v1/subjectaccessreviews", Method: "POST"}, {Service: &v1.ServiceCall{URL: "https://x.example"}}} {
		c, err := compileContextEntry(&v1.ContextEntry{Name: "e", APICall: &method}, "e", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Load(context.Background(), map[string]any{}, loaders); err == nil || !strings.Contains(err.Error(), "entries are not supported yet") {
			t.Errorf("%+v: %v, want unsupported", method, err)
		}
	}
}

// TestContextLoadErrors: a context entry, precondition or entry template that cannot compile
// is refused when the policy is loaded, each problem at its own field path.
func TestContextLoadErrors(t *testing.T) {
	err := loadErr(t, `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: bad}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: x
      variable: {jmesPath: "a[["}
    - name: z
      apiCall: {urlPath: "/api/v1/{{ a[[ }}"}
    - name: w
      imageRegistry: {reference: "{{ images.containers.a.reference }}", jmesPath: "length(@, @)"}
    preconditions:
      all:
      - {key: "{{ b[[ }}", operator: Equals, value: 1}
    verifyImages:
    - imageReferences: ["ghcr.io/*"]
      mutateDigest: false
      attestors:
      - entries:
        - keys: {publicKeys: "{{ c[[ }}"}
`)
	for _, want := range []string{
		`spec.rules[0].context[0].variable.jmesPath: Invalid value: invalid JMESPath expression "a[["`,
		`spec.rules[0].context[1].apiCall.urlPath: Invalid value: invalid variable {{ a[[ }}`,
		`spec.rules[0].context[2].imageRegistry.jmesPath: Invalid value: invalid JMESPath expression "length(@, @)"`,
		`spec.rules[0].preconditions.all[0].key: Invalid value: invalid variable {{ b[[ }}`,
		`spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: Invalid value: invalid variable {{ c[[ }}`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// loadEntry compiles the context entry e of a policy in policyNS ("" for a ClusterPolicy) and
// loads it into a document holding request, returning the value it set.
func loadEntry(t *testing.T, e *v1.ContextEntry, policyNS string, request any, loaders Loaders) (any, error) {
	t.Helper()
	c, err := compileContextEntry(e, "e", policyNS)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]any{"request": request}
	err = c.Load(context.Background(), d, loaders)
	return d[e.Name], err
}
