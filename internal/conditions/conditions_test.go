package conditions

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

func cond(key any, op string, value any, msg ...string) v1.Condition {
	c := v1.Condition{Key: key, Operator: v1.ConditionOperator(op), Value: value}
	if len(msg) > 0 {
		c.Message = msg[0]
	}
	return c
}

const statementDoc = `{
  "builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.9.0"},
  "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
  "invocation": {"configSource": {"uri": "git+https://github.com/acme/app@refs/heads/main", "entryPoint": ".github/workflows/release.yml"}},
  "metadata": {"buildFinishedOn": "2026-02-28T12:00:00Z", "reproducible": false},
  "materials": [{"uri": "git+https://github.com/acme/app", "digest": {"sha1": "abc"}}],
  "count": 3,
  "nothing": null,
  "tags": ["a", "b"],
  "inject": "{{ builder.id }}"
}`

func evaluate(t *testing.T, c *Conditions, doc string) (Result, error) {
	t.Helper()
	return c.EvaluateAt(mustJSON(t, doc), testNow)
}

// TestSubstitution covers Kyverno's variable rules (kyverno pkg/engine/variables/vars.go,
// vars_test.go): a whole-string variable keeps its JSON type, embedded ones are strings (JSON
// for non-strings, "null" for null), `\{{` escapes, variables nest.
func TestSubstitution(t *testing.T) {
	doc := mustJSON(t, statementDoc)
	cases := []struct {
		in   string
		want any
	}{
		{"plain", "plain"},
		{"", ""},
		{"{{ count }}", 3.0},
		{"{{count}}", 3.0},
		{"{{ tags }}", []any{"a", "b"}},
		{"{{ nothing }}", nil},
		{"{{ metadata.reproducible }}", false},
		{" {{ count }}", " 3"},
		{"n={{ count }}", "n=3"},
		{"{{ count }}{{ count }}", "33"},
		{"content = {{ nothing }}", "content = null"},
		{"tags: {{ tags }}", `tags: ["a","b"]`},
		{"m: {{ materials[0].digest }}", `m: {"sha1":"abc"}`},
		{"b: {{ metadata.reproducible }}", "b: false"},
		{`\{{ count }}`, "{{ count }}"},
		{`x \{{ count }} {{ count }}`, "x {{ count }} 3"},
		{"{{ invocation.{{ 'configSource' }}.entryPoint }}", ".github/workflows/release.yml"},
		{"{{ {a: count}.a }}", 3.0},
		{"{{ count } }", "{{ count } }"}, // not a variable: literal
		{"{{ count", "{{ count"},
		{"}} {{", "}} {{"},
		{"{ {{ count }} }", "{ 3 }"},
		// Values from the document are not substituted again (Kyverno would resolve this).
		{"{{ inject }}", "{{ builder.id }}"},
		{"x{{ inject }}", "x{{ builder.id }}"},
	}
	for _, c := range cases {
		tmpl, err := CompileTemplate(c.in, "msg")
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		got, err := tmpl.RenderAt(doc, testNow)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%q: (-want +got)\n%s", c.in, diff)
		}
	}
}

func TestSubstitutionErrors(t *testing.T) {
	doc := mustJSON(t, statementDoc)
	for in, want := range map[string]string{
		"{{ predicate.builder.id }}":             `failed to resolve {{ predicate.builder.id }}: JMESPath query failed: Unknown key "predicate" in path`,
		"x {{ builder.missing }}":                `Unknown key "missing" in path`,
		"{{ invocation.{{ 'nope' }}.x }}":        `Unknown key "nope" in path`,
		"{{ invocation.{{ builder.id }} }}":      `invalid expression "invocation.https://github.com/`,
		"{{ to_upper(count) }}":                  "expected string, got number",
		"{{ inject }} {{ nothing.x.y }} {{ q }}": `Unknown key "q" in path`,
	} {
		tmpl, err := CompileTemplate(in, "spec.message")
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		_, err = tmpl.RenderAt(doc, testNow)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrSubstitution) ||
			!strings.HasPrefix(err.Error(), "spec.message: variable substitution failed: ") {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	for in, want := range map[string]string{
		"{{}}":               "invalid variable {{}}: empty expression",
		"{{ a..b }}":         "invalid variable {{ a..b }}: SyntaxError",
		"{{ nope(a) }}":      "unknown function: nope()",
		"x {{ to_upper() }}": "not enough arguments",
	} {
		_, err := CompileTemplate(in, "spec.message")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "spec.message: ") {
			t.Errorf("%q: compile error %v, want %q", in, err, want)
		}
	}
	tmpl, _ := CompileTemplate("{{ tags }}", "spec.message")
	if _, err := tmpl.RenderString(doc); err == nil || !strings.Contains(err.Error(), "did not resolve to a string") {
		t.Errorf("RenderString: %v", err)
	}
	tmpl, _ = CompileTemplate("built by {{ builder.id }}", "spec.message")
	if s, err := tmpl.RenderString(doc); err != nil || !strings.HasPrefix(s, "built by https://") {
		t.Errorf("RenderString: %q, %v", s, err)
	}
}

func TestCompileErrors(t *testing.T) {
	path := "spec.rules[0].verifyImages[0].attestations[0].conditions"
	for _, c := range []struct {
		blocks []v1.AnyAllConditions
		want   string
	}{
		{[]v1.AnyAllConditions{{All: []v1.Condition{cond("a", "Equals", "a"), cond("a", "Equalz", "a")}}},
			path + `[0].all[1].operator: unknown operator "Equalz"`},
		{[]v1.AnyAllConditions{{}, {Any: []v1.Condition{cond("a", "", "a")}}},
			path + `[1].any[0].operator: unknown operator ""`},
		{[]v1.AnyAllConditions{{Any: []v1.Condition{cond("{{ a..b }}", "Equals", "a")}}},
			path + `[0].any[0].key: invalid variable {{ a..b }}: SyntaxError`},
		{[]v1.AnyAllConditions{{All: []v1.Condition{cond("a", "Equals", []any{"x", "{{ nope() }}"})}}},
			path + `[0].all[0].value: [1]: invalid variable {{ nope() }}: unknown function: nope()`},
		{[]v1.AnyAllConditions{{All: []v1.Condition{cond("a", "Equals", "a", "{{ }}")}}},
			path + `[0].all[0].message: invalid variable {{ }}: empty expression`},
		{[]v1.AnyAllConditions{{All: []v1.Condition{cond(make(chan int), "Equals", "a")}}},
			path + `[0].all[0].key: value is not JSON`},
	} {
		_, err := Compile(c.blocks, path)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("error %v, want prefix %q", err, c.want)
		}
	}
	_, err := CompileDeny(&v1.AnyAllConditions{All: []v1.Condition{cond("a", "Bigger", "a")}}, "spec.rules[0].verifyImages[0].validate.deny.conditions")
	if err == nil || err.Error() != `spec.rules[0].verifyImages[0].validate.deny.conditions.all[0].operator: unknown operator "Bigger"` {
		t.Errorf("CompileDeny: %v", err)
	}
}

// TestAnyAll: Kyverno's evaluateAnyAllConditions (kyverno pkg/engine/variables/evaluate.go).
func TestAnyAll(t *testing.T) {
	T := cond("{{ count }}", "Equals", 3, "t")
	F := cond("{{ count }}", "Equals", 4, "f")
	cases := []struct {
		name   string
		blocks []v1.AnyAllConditions
		pass   bool
		msg    string
	}{
		{"no blocks", nil, true, ""},
		{"empty block", []v1.AnyAllConditions{{}}, true, ""},
		{"any true", []v1.AnyAllConditions{{Any: []v1.Condition{F, T}}}, true, "t"},
		{"any false", []v1.AnyAllConditions{{Any: []v1.Condition{F, F}}}, false, "f; f"},
		{"empty any list fails", []v1.AnyAllConditions{{Any: []v1.Condition{}}}, false, ""},
		{"all true", []v1.AnyAllConditions{{All: []v1.Condition{T, T}}}, true, "t; t"},
		{"all false stops at first", []v1.AnyAllConditions{{All: []v1.Condition{T, F, F}}}, false, "f"},
		{"both true", []v1.AnyAllConditions{{Any: []v1.Condition{T}, All: []v1.Condition{T}}}, true, "t; t"},
		{"any false all true", []v1.AnyAllConditions{{Any: []v1.Condition{F}, All: []v1.Condition{T}}}, false, "f"},
		{"any true all false", []v1.AnyAllConditions{{Any: []v1.Condition{F, T}, All: []v1.Condition{F}}}, false, "f; f"},
		{"every block must hold", []v1.AnyAllConditions{{All: []v1.Condition{T}}, {All: []v1.Condition{F}}}, false, "f"},
		{"passing blocks join with ;", []v1.AnyAllConditions{{All: []v1.Condition{T}}, {Any: []v1.Condition{T}}}, true, "t;t"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conds, err := Compile(c.blocks, "conditions")
			if err != nil {
				t.Fatal(err)
			}
			res, err := evaluate(t, conds, statementDoc)
			if err != nil {
				t.Fatal(err)
			}
			if res.Pass != c.pass || res.Message != c.msg {
				t.Errorf("got pass=%v message=%q, want pass=%v message=%q", res.Pass, res.Message, c.pass, c.msg)
			}
			if res.Pass != (len(res.Failures) == 0) {
				t.Errorf("failures %v with pass=%v", res.Failures, res.Pass)
			}
		})
	}
	var nilConds *Conditions
	if res, err := nilConds.Evaluate(nil); err != nil || !res.Pass {
		t.Errorf("nil conditions: %v, %v", res, err)
	}
}

func TestFailureReport(t *testing.T) {
	conds, err := Compile([]v1.AnyAllConditions{{All: []v1.Condition{
		cond("{{ builder.id }}", "Equals", "https://github.com/slsa-framework/slsa-github-generator/*"),
		cond("{{ invocation.configSource.uri }}", "Equals", "git+https://github.com/other/*"),
	}}}, "spec.rules[0].verifyImages[0].attestations[0].conditions")
	if err != nil {
		t.Fatal(err)
	}
	res, err := evaluate(t, conds, statementDoc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Failure{{
		Path:     "spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[1]",
		Key:      "{{ invocation.configSource.uri }}",
		Resolved: "git+https://github.com/acme/app@refs/heads/main",
		Operator: "Equals",
		Value:    "git+https://github.com/other/*",
	}}
	if diff := cmp.Diff(want, res.Failures); diff != "" {
		t.Errorf("failures (-want +got)\n%s", diff)
	}
	wantReason := `spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[1]: "git+https://github.com/acme/app@refs/heads/main" (from "{{ invocation.configSource.uri }}") Equals "git+https://github.com/other/*"`
	if got := res.Reason(); got != wantReason {
		t.Errorf("Reason() = %s\nwant        %s", got, wantReason)
	}
	// A policy message wins.
	conds, _ = Compile([]v1.AnyAllConditions{{All: []v1.Condition{cond("a", "Equals", "b", "must be {{ count }}")}}}, "c")
	if res, _ := evaluate(t, conds, statementDoc); res.Reason() != "must be 3" {
		t.Errorf("Reason() = %q", res.Reason())
	}
}

// TestSubstitutionTiming: attestation conditions resolve every variable first (an unresolvable
// variable anywhere is an error); validate.deny resolves a condition's variables when it is
// reached and reports messages as written (Kyverno's two code paths, spec §3.12.2, §3.13).
func TestSubstitutionTiming(t *testing.T) {
	block := v1.AnyAllConditions{Any: []v1.Condition{
		cond("{{ count }}", "Equals", 3, "count is {{ count }}"),
		cond("{{ no.such.key }}", "Equals", "x"),
	}}
	att, err := Compile([]v1.AnyAllConditions{block}, "spec.attestations[0].conditions")
	if err != nil {
		t.Fatal(err)
	}
	_, err = evaluate(t, att, statementDoc)
	if !errors.Is(err, ErrSubstitution) || !strings.HasPrefix(err.Error(),
		`spec.attestations[0].conditions[0].any[1].key: variable substitution failed: failed to resolve {{ no.such.key }}: JMESPath query failed: Unknown key "no" in path`) {
		t.Errorf("attestation conditions: %v", err)
	}
	deny, err := CompileDeny(&block, "spec.validate.deny.conditions")
	if err != nil {
		t.Fatal(err)
	}
	res, err := evaluate(t, deny, statementDoc)
	if err != nil || !res.Pass || res.Message != "count is {{ count }}" {
		t.Errorf("deny: %+v, %v", res, err)
	}
	// Reached, the unresolvable variable is an error in deny too.
	deny, _ = CompileDeny(&v1.AnyAllConditions{All: []v1.Condition{cond("{{ no.such.key }}", "Equals", "x")}}, "spec.validate.deny.conditions")
	if _, err := evaluate(t, deny, statementDoc); !errors.Is(err, ErrSubstitution) ||
		!strings.HasPrefix(err.Error(), "spec.validate.deny.conditions.all[0].key: ") {
		t.Errorf("deny: %v", err)
	}
	// A message that resolves to a non-string is an error.
	att, _ = Compile([]v1.AnyAllConditions{{All: []v1.Condition{cond("a", "Equals", "a", "{{ tags }}")}}}, "c")
	if _, err := evaluate(t, att, statementDoc); err == nil || !strings.Contains(err.Error(), "c[0].all[0].message: variable substitution failed: the message did not resolve to a string") {
		t.Errorf("message: %v", err)
	}
	if d, _ := CompileDeny(nil, "x"); d == nil {
		t.Error("CompileDeny(nil) = nil")
	} else if res, err := d.Evaluate(nil); err != nil || !res.Pass {
		t.Errorf("empty deny: %+v, %v", res, err)
	}
}

// TestValuesWithVariables: variables inside lists and objects of keys and values.
func TestValuesWithVariables(t *testing.T) {
	conds, err := Compile([]v1.AnyAllConditions{{All: []v1.Condition{
		cond("{{ tags[0] }}", "AnyIn", []any{"{{ tags[1] }}", "{{ tags[0] }}"}),
		cond(map[string]any{"{{ 'k' }}": "{{ count }}", "lit": []any{1, "\\{{ x }}"}}, "Equals",
			map[string]any{"k": 3, "lit": []any{1.0, "\\{{ x }}"}}),
		cond([]any{"{{ count }}", 2}, "Equals", []any{3, 2}),
		cond("{{ count }}", "GreaterThan", "{{ `2` }}"),
	}}}, "c")
	if err != nil {
		t.Fatal(err)
	}
	res, err := evaluate(t, conds, statementDoc)
	if err != nil || !res.Pass {
		t.Errorf("%+v, %v", res, err)
	}
}

// TestLegacyPolicy: a policy decoded by api/kyverno/v1 (legacy plain condition lists read as
// all, integers preserved as int64) compiles and evaluates.
func TestLegacyPolicy(t *testing.T) {
	p, err := v1.DecodePolicy([]byte(`{
	  "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
	  "spec": {"validationFailureAction": "Enforce", "rules": [{"name": "r",
	    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
	    "verifyImages": [{"imageReferences": ["*"], "mutateDigest": false,
	      "attestations": [{"type": "https://slsa.dev/provenance/v0.2", "name": "prov",
	        "conditions": [{"all": [{"key": "{{ count }}", "operator": "Equals", "value": 3}]}]}],
	      "validate": {"deny": {"conditions": [{"key": "{{ prov.count }}", "operator": "GreaterThan", "value": 5}]}}}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	iv := p.Spec.Rules[0].VerifyImages[0]
	att, err := Compile(iv.Attestations[0].Conditions, "spec.rules[0].verifyImages[0].attestations[0].conditions")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := evaluate(t, att, statementDoc); err != nil || !res.Pass {
		t.Errorf("attestation: %+v, %v", res, err)
	}
	deny, err := CompileDeny(iv.Validation.Deny.Conditions, "spec.rules[0].verifyImages[0].validate.deny.conditions")
	if err != nil {
		t.Fatal(err)
	}
	res, err := deny.EvaluateAt(map[string]any{"prov": mustJSON(t, statementDoc)}, testNow)
	if err != nil || res.Pass {
		t.Errorf("deny: %+v, %v", res, err)
	}
}

func TestAttestationDocument(t *testing.T) {
	base := map[string]any{"request": map[string]any{"namespace": "prod"}, "images": "x"}
	stmt := map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": "https://slsa.dev/provenance/v0.2",
		"predicate":     map[string]any{"builder": map[string]any{"id": "b"}, "request": "spoofed"},
	}
	doc, err := AttestationDocument(base, stmt)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"request": map[string]any{"namespace": "prod"}, "images": "x", "builder": map[string]any{"id": "b"}}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if _, ok := base["builder"]; ok {
		t.Error("base was modified")
	}
	for _, bad := range []map[string]any{{}, {"predicate": "{}"}, {"predicate": []any{}}} {
		if _, err := AttestationDocument(base, bad); err == nil || !strings.HasPrefix(err.Error(), "failed to extract predicate from statement") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

// TestConcurrentEvaluate: compiled conditions are shared by concurrent admissions.
func TestConcurrentEvaluate(t *testing.T) {
	conds, err := Compile(benchConditions(), "c")
	if err != nil {
		t.Fatal(err)
	}
	doc := mustJSON(t, statementDoc)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if res, err := conds.EvaluateAt(doc, testNow); err != nil || !res.Pass {
					t.Errorf("%+v, %v", res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
