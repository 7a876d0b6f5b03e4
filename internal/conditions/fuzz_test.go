package conditions

import (
	"encoding/json"
	"errors"
	"testing"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// FuzzEvaluate: any condition (key template, operator, JSON or string value) over any JSON
// document compiles or fails cleanly, and evaluates without panicking, within the budget.
// Seeds are in testdata/fuzz/FuzzEvaluate.
func FuzzEvaluate(f *testing.F) {
	f.Add("{{ builder.id }}", "Equals", `"https://github.com/*"`, []byte(statementDoc))
	f.Add("{{ tags }}", "AnyIn", `["a","b"]`, []byte(`{"tags":["a"]}`))
	f.Add("{{ a.{{ b }} }}", "NotEquals", `"x"`, []byte(`{"a":{"c":1},"b":"c"}`))
	f.Add("{{ regex_match('^v[0-9]+', v) }}", "Equals", `true`, []byte(`{"v":"v1"}`))
	f.Add("{{ time_since('', t, '') }}", "DurationLessThan", `"24h"`, []byte(`{"t":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, key, op, value string, doc []byte) {
		var val any = value
		if json.Valid([]byte(value)) {
			_ = json.Unmarshal([]byte(value), &val)
		}
		var d any
		if err := json.Unmarshal(doc, &d); err != nil {
			d = string(doc)
		}
		c := v1.Condition{Key: key, Operator: v1.ConditionOperator(op), Value: val, Message: key}
		blocks := []v1.AnyAllConditions{{Any: []v1.Condition{c}, All: []v1.Condition{c, {Key: val, Operator: "AllIn", Value: key}}}}
		if conds, err := Compile(blocks, "c"); err == nil {
			check(t, conds, d)
		}
		if conds, err := CompileDeny(&blocks[0], "d"); err == nil {
			check(t, conds, d)
		}
		if tmpl, err := CompileTemplate(key, "m"); err == nil {
			_, _ = tmpl.RenderAt(d, testNow)
		}
		if o, ok := parseOperator(op); ok {
			_ = o.apply(val, key)
		}
	})
}

func check(t *testing.T, conds *Conditions, doc any) {
	res, err := conds.EvaluateAt(doc, testNow)
	if err != nil && (res.Pass || res.Failures != nil) {
		t.Fatalf("error %v with result %+v", err, res)
	}
	if err != nil && !errors.Is(err, ErrSubstitution) {
		t.Fatalf("error that is not a substitution error: %v", err)
	}
}
