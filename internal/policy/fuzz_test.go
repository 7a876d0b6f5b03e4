package policy

import (
	"context"
	"testing"

	kyvernov1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/manifest"
)

// FuzzCompile: any policy document either fails to load with an error or compiles; a compiled
// rule's context entries, preconditions and entry substitutions then evaluate against a
// request without a panic (their errors are the rule's error at admission).
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{templatedPolicy, attestationPolicy, insecurePolicy} {
		f.Add([]byte(seed))
	}
	f.Add([]byte(`apiVersion: kyverno.io/v1
kind: Policy
metadata: {name: p, namespace: team-a}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: cm
      configMap: {name: "keys-{{ request.namespace }}"}
    - name: ns
      apiCall: {urlPath: "/api/v1/namespaces/{{ request.namespace }}", jmesPath: metadata.labels}
    - name: img
      imageRegistry: {reference: "{{ images.containers.a.reference }}", jmesPath: configData.config.User}
    preconditions:
      any:
      - {key: "{{ ns.team || '' }}", operator: AnyIn, value: [a, b]}
    verifyImages:
    - imageReferences: ["*"]
      mutateDigest: false
      attestors:
      - entries:
        - keys: {publicKeys: "{{ cm.data.pub }}"}
`))
	doc := func() map[string]any {
		return map[string]any{
			"request": map[string]any{"namespace": "team-a", "operation": "CREATE",
				"object": map[string]any{"metadata": map[string]any{"name": "p", "annotations": map[string]any{"key": "{{ request.namespace }}"}}}},
			"images": map[string]any{"containers": map[string]any{"a": map[string]any{"reference": "ghcr.io/a/b:1"}}},
		}
	}
	loaders := Loaders{
		ConfigMap: func(context.Context, string, string) (map[string]any, error) {
			return map[string]any{"data": map[string]any{"pub": "not a key"}}, nil
		},
		APICall: func(context.Context, string) (any, error) {
			return map[string]any{"metadata": map[string]any{"labels": map[string]any{"team": "a"}}}, nil
		},
		ImageData: func(context.Context, string, *kyvernov1.ImageRegistryCredentials) (any, error) {
			return map[string]any{"configData": map[string]any{"config": map[string]any{"User": "1000"}}}, nil
		},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := manifest.Split("fuzz.yaml", data)
		if err != nil {
			return
		}
		set, _, err := LoadDocuments(docs)
		if err != nil || set == nil {
			return
		}
		for _, p := range set.Policies() {
			for _, r := range p.Rules {
				d := doc()
				for _, c := range r.Context {
					_ = c.Load(context.Background(), d, loaders)
				}
				if r.Preconditions != nil {
					_, _ = r.Preconditions.Evaluate(d)
				}
				for _, v := range r.Verifications {
					if s, err := v.Substitute(d); err == nil && s == nil {
						t.Fatal("Substitute returned neither an entry nor an error")
					}
				}
			}
		}
	})
}
