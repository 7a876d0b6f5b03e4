package conditions

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// TestPreconditionsLenient: in preconditions a variable that does not resolve is "" (Kyverno's
// preconditions resolver), in keys, values and messages alike; everywhere else it is an error.
func TestPreconditionsLenient(t *testing.T) {
	block := &v1.AnyAllConditions{All: []v1.Condition{
		cond("{{ request.object.metadata.labels.verify }}", "NotEquals", "false", "{{ request.object.metadata.name }} opted out"),
		cond("{{ missing.value }}x", "Equals", "{{ nope }}x"),
	}}
	pre, err := CompilePreconditions(block, "spec.rules[0].preconditions")
	if err != nil {
		t.Fatal(err)
	}
	res, err := evaluate(t, pre, `{"request": {"object": {"metadata": {"name": "p"}}}}`)
	if err != nil || !res.Pass {
		t.Fatalf("no label: %+v, %v; want met", res, err)
	}
	res, err = evaluate(t, pre, `{"request": {"object": {"metadata": {"name": "p", "labels": {"verify": "false"}}}}}`)
	if err != nil || res.Pass || res.Message != "p opted out" {
		t.Fatalf("verify=false: %+v, %v; want not met with the message", res, err)
	}
	strict, err := CompileDeny(block, "deny")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evaluate(t, strict, `{"request": {"object": {"metadata": {"name": "p"}}}}`); !errors.Is(err, ErrSubstitution) {
		t.Errorf("deny with the same conditions: err = %v, want a substitution error", err)
	}
	// An exhausted budget is never read as "".
	heavy, err := CompilePreconditions(&v1.AnyAllConditions{All: []v1.Condition{
		cond("{{ length(split(s, '')) }}", "Equals", 0),
	}}, "p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := heavy.EvaluateAt(map[string]any{"s": strings.Repeat("a", 1<<20)}, testNow); !errors.Is(err, ErrBudget) {
		t.Errorf("heavy precondition: err = %v, want ErrBudget", err)
	}
}

// TestValueAndQuery: compiled JSON values substitute every string, keys included, and keep the
// JSON type of whole variables; Query applies an expression with Kyverno's missing-key rule.
func TestValueAndQuery(t *testing.T) {
	doc := mustJSON(t, `{"request": {"namespace": "team-a", "object": {"metadata": {"labels": {"tier": "web"}}}}}`)
	v, err := CompileValue(map[string]any{"{{ request.namespace }}": []any{"{{ request.object.metadata.labels }}", "x-{{ request.namespace }}", 1.0}}, "f")
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Render(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"team-a": []any{map[string]any{"tier": "web"}, "x-team-a", 1.0}}
	if diff := cmp.Diff(want, got); diff != "" || !v.HasVariables() {
		t.Errorf("render (-want +got):\n%s", diff)
	}
	lit, err := CompileValue("plain", "f")
	if err != nil || lit.HasVariables() {
		t.Errorf("a literal has variables (%v)", err)
	}
	if _, err := v.Render(map[string]any{}); err == nil || !strings.HasPrefix(err.Error(), "f: variable substitution failed") {
		t.Errorf("render without the request: %v", err)
	}
	if x, err := Query("request.object.metadata.labels.tier", doc); err != nil || x != "web" {
		t.Errorf("query = %v, %v", x, err)
	}
	if _, err := Query("request.object.metadata.annotations.key", doc); err == nil {
		t.Error("a missing key is not an error")
	}
	if _, err := Query("a[[", doc); err == nil || !strings.Contains(err.Error(), "invalid JMESPath expression") {
		t.Errorf("invalid expression: %v", err)
	}
}
