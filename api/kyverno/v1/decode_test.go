package v1

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func mustJSON(t *testing.T, y string) []byte {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict([]byte(y))
	if err != nil {
		t.Fatalf("YAMLToJSON: %v", err)
	}
	return j
}

// prune drops zero values (false, "", empty maps and lists) so that documents that differ only
// in omitted defaults compare equal.
func prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, c := range t {
			if p := prune(c); p != nil {
				out[k] = p
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(t) == 0 {
			return nil
		}
		out := make([]any, len(t))
		for i, c := range t {
			out[i] = prune(c)
		}
		return out
	case bool:
		if !t {
			return nil
		}
	case string:
		if t == "" {
			return nil
		}
	}
	return v
}

func generic(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return prune(v)
}

// TestRoundTripEveryField decodes a policy that sets every field of spec §1.2-1.5 and the
// policy/rule/match surface, re-encodes it, and requires the same document back: nothing is
// dropped or renamed.
func TestRoundTripEveryField(t *testing.T) {
	data, err := os.ReadFile("testdata/kitchen-sink.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := mustJSON(t, string(data))
	p, err := DecodePolicy(in)
	if err != nil {
		t.Fatalf("DecodePolicy: %v", err)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(generic(t, in), generic(t, out)); diff != "" {
		t.Errorf("round trip changed the document (-in +out):\n%s", diff)
	}
	if errs, _ := Validate(p); len(errs) > 0 {
		t.Errorf("kitchen-sink policy should be valid, got:\n%v", errs.ToAggregate())
	}
}

func TestDecodeLegacyForms(t *testing.T) {
	p, err := DecodePolicy(mustJSON(t, `
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: single}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    preconditions:
    - {key: "{{ request.operation }}", operator: Equals, value: CREATE}
    verifyImages:
      imageReferences: ["*"]
      validate:
        deny:
          conditions:
          - {key: a, operator: Equals, value: b}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Spec.Rules[0]
	if len(r.VerifyImages) != 1 || r.VerifyImages[0].ImageReferences[0] != "*" {
		t.Errorf("verifyImages mapping not read as a one-entry list: %+v", r.VerifyImages)
	}
	if r.Preconditions == nil || len(r.Preconditions.All) != 1 {
		t.Errorf("precondition list not read as all: %+v", r.Preconditions)
	}
	if c := r.VerifyImages[0].Validation.Deny.Conditions; c == nil || len(c.All) != 1 {
		t.Errorf("deny condition list not read as all: %+v", c)
	}
}

func TestDecodeErrors(t *testing.T) {
	head := "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\n"
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"unknown field deep", head + `
spec:
  rules:
  - name: r
    verifyImages:
    - imageReferences: ["*"]
      attestors:
      - entries:
        - keys: {publicKeys: x, bogus: 1}
`, []string{"spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.bogus: unknown field"}},
		{"unknown top-level spec field", head + "spec: {rules: [], validationFailureActions: Enforce}\n",
			[]string{"spec.validationFailureActions: unknown field"}},
		{"several unknown fields all reported", head + `
spec:
  rules:
  - name: r
    foo: 1
    verifyImages: [{imageReferences: ["*"], bar: 2}]
`, []string{"spec.rules[0].foo: unknown field", "spec.rules[0].verifyImages[0].bar: unknown field"}},
		{"wrong type bool", head + `
spec:
  rules:
  - name: r
  - name: s
    verifyImages: [{imageReferences: ["*"], required: "yes"}]
`, []string{"spec.rules[1].verifyImages[0].required: invalid type: got string, want boolean"}},
		{"wrong type list", head + `
spec:
  rules:
  - name: r
    verifyImages: [{imageReferences: "*"}]
`, []string{"spec.rules[0].verifyImages[0].imageReferences: invalid type: got string, want list"}},
		{"count not an integer", head + `
spec:
  rules:
  - name: r
    verifyImages: [{imageReferences: ["*"], attestors: [{count: 1.5, entries: []}]}]
`, []string{"spec.rules[0].verifyImages[0].attestors[0].count: invalid type"}},
		{"case matters", head + "spec: {rules: [{name: r, verifyImages: [{ImageReferences: ['*']}]}]}\n",
			[]string{"spec.rules[0].verifyImages[0].ImageReferences: unknown field"}},
		{"v2beta1 has no legacy fields", "apiVersion: kyverno.io/v2beta1\nkind: ClusterPolicy\nmetadata: {name: p}\n" + `
spec:
  rules:
  - name: r
    match: {resources: {kinds: [Pod]}}
    verifyImages: [{image: "*", key: "k"}]
`, []string{"spec.rules[0].match: kyverno.io/v2beta1 accepts only any/all",
			"spec.rules[0].verifyImages[0].image: unknown field", "spec.rules[0].verifyImages[0].key: unknown field"}},
		{"not a policy", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", []string{"not a kyverno.io ClusterPolicy or Policy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodePolicy(mustJSON(t, tt.doc))
			if err == nil {
				t.Fatal("DecodePolicy succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeDepthLimit(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	doc := `{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":"p"},"spec":{"rules":[{"name":"r","mutate":` + deep + `}]}}`
	if _, err := DecodePolicy([]byte(doc)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("want a nesting error, got %v", err)
	}
}

func FuzzDecodePolicy(f *testing.F) {
	if data, err := os.ReadFile("testdata/kitchen-sink.yaml"); err == nil {
		if j, err := yaml.YAMLToJSON(data); err == nil {
			f.Add(j)
		}
	}
	f.Add([]byte(`{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":"p"},"spec":{"rules":[{"name":"r","verifyImages":{"imageReferences":["*"]}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePolicy(data)
		if err != nil {
			return
		}
		Validate(p)
		for i := range p.Spec.Rules {
			for j := range p.Spec.Rules[i].VerifyImages {
				p.Spec.Rules[i].VerifyImages[j].Convert()
			}
		}
	})
}
