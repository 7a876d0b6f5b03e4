package conditions

import (
	"fmt"
	"testing"
)

type opCase struct {
	key, value any
	want       bool
}

// runOps runs cases for one operator. Kyverno's tests pass Go ints; JSON gives float64, and
// both are run here.
func runOps(t *testing.T, opName string, cases []opCase) {
	t.Helper()
	op, ok := parseOperator(opName)
	if !ok {
		t.Fatalf("unknown operator %q", opName)
	}
	for i, c := range cases {
		name := fmt.Sprintf("%s/%d/%v_%v", opName, i, c.key, c.value)
		t.Run(name, func(t *testing.T) {
			if got := op.apply(c.key, c.value); got != c.want {
				t.Errorf("%#v %s %#v = %v, want %v", c.key, opName, c.value, got, c.want)
			}
			k, err1 := normalize(c.key)
			v, err2 := normalize(c.value)
			if err1 == nil && err2 == nil {
				if got := op.apply(k, v); got != c.want {
					t.Errorf("as JSON: %#v %s %#v = %v, want %v", k, opName, v, got, c.want)
				}
			}
		})
	}
}

// Cases from kyverno pkg/engine/variables/operator/equal_test.go (TestEqualHandler_Evaluate).
var equalsCases = []opCase{
	{true, true, true}, {false, false, true}, {true, false, false}, {true, "true", false},
	{42, 42, true}, {42, 43, false}, {int64(100), int64(100), true}, {42, int64(42), true},
	{42, float64(42), true}, {42, 42.5, false}, {42, "42", true}, {42, "invalid", false},
	{3.14, 3.14, true}, {3.14, 2.71, false}, {float64(42), 42, true}, {3.14, "3.14", true},
	{3.14, "invalid", false}, {3.14, true, false},
	{"hello", "hello", true}, {"hello", "world", false},
	{"hello-world", "hello-*", true}, {"goodbye-world", "hello-*", false}, {"hello", 123, false},
	{"100Mi", "100Mi", true}, {"1Gi", "1024Mi", true}, {"100Mi", "200Mi", false},
	{"1h", "60m", true}, {"1h", "30m", false},
	{map[string]any{"foo": "bar"}, map[string]any{"foo": "bar"}, true},
	{map[string]any{"foo": "bar"}, map[string]any{"foo": "baz"}, false},
	{map[string]any{"foo": "bar"}, "not a map", false},
	{[]any{"a", "b", "c"}, []any{"a", "b", "c"}, true},
	{[]any{"a", "b", "c"}, []any{"a", "b", "d"}, false},
	{[]any{"a", "b", "c"}, []any{"a", "b"}, false},
	{[]any{"a", "b", "c"}, "not a slice", false},
	// Kyverno ≥1.15 quantity cross-type (notequal_test.go Test_NotEqual_ResourceQuantityCrossType).
	{"5", 5, true}, {"5", int64(5), true}, {"5", float64(5), true}, {"5", 6, false},
	// equal.go: durations against seconds, either side; "0" is never a duration.
	{"1h", 3600, true}, {"1m30s", 90.0, true}, {"0", "0s", false}, {"0", "0", true},
	// equal.go: a quantity key never falls back to wildcard matching; "?" matches one rune.
	{"5", "5*", false}, {"abc", "a?c", true}, {"abc", "a*", true}, {"a*", "abc", false},
	// Kubernetes quantities: "1e3" == "1000", "1m" is a milli-quantity (not a minute, since "1m"
	// is also a duration string both sides parse as durations: 1m == 60s).
	{"1e3", "1000", true}, {"1m", "60s", true},
	// null keys are unsupported (false); NotEquals negates (true).
	{nil, nil, false}, {nil, "x", false},
	// Floats: a numeric string must parse; bools never equal strings.
	{1.5, "1.50", true}, {1.0, "1", true}, {false, "false", false},
}

func TestEquals(t *testing.T) {
	runOps(t, "Equals", equalsCases)
	// An unsupported Go type is false (equal_test.go "unsupported type").
	if opEquals.apply(struct{}{}, struct{}{}) {
		t.Error("struct{} Equals struct{} = true")
	}
}

func TestEqualAlias(t *testing.T) { runOps(t, "equal", []opCase{{"a", "a", true}}) }

// NotEquals is the negation of Equals (kyverno operator/notequal.go; notequal_test.go).
func TestNotEquals(t *testing.T) {
	var cases []opCase
	for _, c := range equalsCases {
		cases = append(cases, opCase{c.key, c.value, !c.want})
	}
	cases = append(cases,
		opCase{true, false, true}, opCase{42, 43, true}, opCase{int64(5), 5.5, true},
		opCase{"100Mi", "not-a-quantity", true}, opCase{"1h", "30m", true},
		opCase{"5", 5, false}, opCase{"5", 6, true})
	runOps(t, "NotEquals", cases)
	runOps(t, "NotEqual", []opCase{{"a", "b", true}})
}

// Cases from kyverno operator/anyin_test.go (TestAnyInHandler_Evaluate).
func TestAnyIn(t *testing.T) {
	runOps(t, "AnyIn", []opCase{
		{"kyverno", "kyverno", true},
		{"kube-system", []any{"default", "kube-*"}, true},
		{"kyverno", "default", false},
		{64, "64", true},
		{1, []any{1, 2, 3}, true},
		{64, "default", false},
		{3.14, "3.14", true},
		{2.2, []any{1.1, 2.2, 3.3}, true},
		{3.14, "default", false},
		{true, "true", true},
		{[]any{"kube-system", "kube-public"}, "kube-*", true},
		{[]any{"kube-system", "default"}, "kube-system", true},
		{[]any{"default", "kyverno"}, "kube-*", false},
		{[]any{"default", "kyverno"}, []any{"kube-*", "ky*"}, true},
		{[]any{"default", "kyverno"}, []any{"kube-*", "kube-system"}, false},
		{[]any{}, []any{"default", "kyverno"}, false},
		{"", []any{"default", "kyverno"}, false},
		{map[string]any{"foo": "bar"}, "test", false},
		{"5", "1-10", true},
		{"0", "1-10", false},
		{[]any{"0", "5"}, "1-10", true},
		{[]any{"0", "20"}, "1-10", false},
		{"apple", `["apple", "banana"]`, true},
		{"cherry", `["apple", "banana"]`, false},
		{[]any{"apple", "cherry"}, `["apple", "banana"]`, true},
		{[]any{"cherry", "date"}, `["apple", "banana"]`, false},
		// Wildcards work in either direction (isAnyIn).
		{"kube-*", []any{"kube-system"}, true},
		// A JSON value string must be an array of strings, else the operator is false.
		{"6", "5", false}, {"a", `{"a":1}`, false},
		// Ranges with quantities (pattern.go): 500m is in 0-1.
		{"500m", "0-1", true}, {"2", "0-1", false},
		// null and object keys are unsupported.
		{nil, []any{"a"}, false},
		// fmt.Sprint renders large floats in exponent form, as in Kyverno.
		{1e6, []any{"1e+06"}, true}, {1e6, []any{"1000000"}, false},
	})
}

// Cases from kyverno operator/anynotin_test.go (TestAnyNotInHandler_Evaluate).
func TestAnyNotIn(t *testing.T) {
	runOps(t, "AnyNotIn", []opCase{
		{"kyverno", "kyverno", false},
		{"kube-system", []any{"default", "kube-*"}, false},
		{"kyverno", "default", true},
		{64, "64", false},
		{1, []any{1, 2, 3}, false},
		{64, "default", true},
		{3.14, "3.14", false},
		{2.2, []any{1.1, 2.2, 3.3}, false},
		{3.14, "default", true},
		{true, true, false},
		{[]any{"kube-system", "kube-public"}, "kube-*", false},
		{[]any{"kube-system", "default"}, "kube-system", true},
		{[]any{"default", "kyverno"}, "kube-*", true},
		{[]any{1, 2, 3}, 2, true},
		{[]any{1, 2, 3}, 4, true},
		{[]any{1.1, 2.2, 3.3}, 1.1, true},
		{[]any{1.1, 2.2, 3.3}, 4.4, true},
		{[]any{true, false}, true, true},
		{[]any{true}, false, true},
		{[]any{"default", "kyverno"}, []any{"kube-*", "kube-system"}, true},
		{[]any{"default", "kyverno"}, []any{"kube-*", "ky*"}, true},
		{[]any{}, []any{"default", "kyverno"}, false},
		{"", []any{"default", "kyverno"}, true},
		// A single-element list equal to the value string is in it.
		{[]any{"a"}, "a", false},
		// Range: "1-10" becomes "1!-10" (anyin.go anySetExistsInArray).
		{[]any{"0", "5"}, "1-10", true}, {[]any{"2", "5"}, "1-10", false},
		{"5", "1-10", false}, {"50", "1-10", true},
	})
}

// Cases from kyverno operator/allnotin_test.go (TestAllNotInHandler_Evaluate).
func TestAllNotIn(t *testing.T) {
	runOps(t, "AllNotIn", []opCase{
		{"kyverno", "kyverno", false},
		{"kube-system", []any{"default", "kube-*"}, false},
		{"kyverno", "default", true},
		{64, "64", false},
		{64, "default", true},
		{[]any{"kube-system", "kube-public"}, "kube-*", false},
		{[]any{"kube-system", "default"}, "kube-system", false},
		{[]any{"default", "kyverno"}, "kube-*", true},
		{[]any{"default", "kyverno"}, []any{"kube-*", "kube-system"}, true},
		{[]any{"default", "kyverno"}, []any{"kube-*", "ky*"}, false},
		{[]any{}, []any{"a"}, true},
		{[]any{"20", "30"}, "1-10", true}, {[]any{"5", "30"}, "1-10", false},
	})
}

// AllIn: every key element matches some value element (kyverno operator/allin.go).
func TestAllIn(t *testing.T) {
	runOps(t, "AllIn", []opCase{
		{"kyverno", "kyverno", true},
		{"kube-system", []any{"default", "kube-*"}, true},
		{"kyverno", "default", false},
		{[]any{"kube-system", "kube-public"}, "kube-*", true},
		{[]any{"kube-system", "default"}, "kube-*", false},
		{[]any{"a", "b"}, []any{"a", "b", "c"}, true},
		{[]any{"a", "d"}, []any{"a", "b", "c"}, false},
		{[]any{"a", "b"}, `["a","b"]`, true},
		{[]any{}, []any{"a"}, true},
		{[]any{"1", "5"}, "1-10", true}, {[]any{"1", "50"}, "1-10", false},
		{[]any{1, 2}, []any{1, 2, 3}, true},
		{map[string]any{}, []any{}, false},
	})
}

// Deprecated In and NotIn (kyverno operator/in.go, notin.go).
func TestLegacyIn(t *testing.T) {
	runOps(t, "In", []opCase{
		{"a", []any{"a", "b"}, true},
		{"a*", []any{"abc"}, true}, // the key is the pattern for list values
		{"abc", []any{"a*"}, false},
		{"abc", "a*", true}, // the value string is the pattern
		{"b", `["a","b"]`, true},
		{"c", `["a","b"]`, false},
		{"c", "not json", false},
		{64, []any{64}, true},
		{true, []any{true}, false}, // In takes no bool keys
		{[]any{"a", "b"}, []any{"a", "b", "c"}, true},
		{[]any{"a", "d"}, []any{"a", "b", "c"}, false},
		{[]any{"a*"}, []any{"abc"}, false}, // lists compare exactly
		{[]any{"a"}, "a", true},
		{[]any{1}, []any{"1"}, false}, // list keys must be strings
		{[]any{"a"}, []any{1}, false}, // list values must be strings
	})
	runOps(t, "NotIn", []opCase{
		{"a", []any{"a", "b"}, false},
		{"c", []any{"a", "b"}, true},
		{"c", "not json", false}, // invalid value type: false
		{[]any{"a", "d"}, []any{"a", "b"}, true},
		{[]any{"a", "b"}, []any{"a", "b"}, false},
		// Deviation: Kyverno returns true here (see doc.go).
		{[]any{"a"}, "a", false},
	})
}

// Cases from kyverno operator/numeric_test.go.
func TestNumeric(t *testing.T) {
	runOps(t, "GreaterThan", []opCase{
		{5.0, 3.0, true}, {3.0, 5.0, false}, {10.0, 10.0, false}, {-1.0, -5.0, true},
		{0.0, -1.0, true}, {2.5, 2.4, true},
		{10, 5, true}, {100, int64(50), true}, {25, 20.5, true}, {30, "25", true}, {10, "5.5", true},
		{"10.5", 10, true}, {"100", 50, true}, {"25.5", "20.0", true},
		{"200m", "100m", true}, {"100m", "200m", false}, {"1Gi", "500Mi", true},
		{"1.2.0", "1.1.0", true},
		{true, false, false}, {map[string]any{"foo": "bar"}, "100", false},
		{[]any{"a", "b"}, "100", false}, {nil, "100", false},
		{10, true, false}, {10, "not-a-number", false},
		// Durations on either side; numbers are seconds.
		{"2h", "1h", true}, {"2h", 3600, true}, {7200, "1h", true}, {"1h", "not", false},
		// Semver needs both sides to parse (no "v" prefix with blang/semver).
		{"v1.2.0", "v1.1.0", false}, {"1.2.0", 1, false},
		// A quantity key with a numeric value is compared as a number when it parses as one.
		{"1Gi", 5, false}, {"10", 5, true},
	})
	runOps(t, "GreaterThanOrEquals", []opCase{
		{1024.0, 512.0, true}, {100.0, 100.0, true}, {50.0, 100.0, false}, {0.0, 0.0, true},
		{10.5, 10, true}, {3.14, 3.14, true}, {5.5, "4.5", true}, {2.5, 5.0, false},
		{"500m", "500m", true}, {"1.5.0", "1.5.0", true},
	})
	runOps(t, "LessThan", []opCase{
		{2.0, 5.0, true}, {10.0, 5.0, false}, {7.0, 7.0, false}, {-10.0, -5.0, true},
		{int64(5), 10, true}, {int64(20), int64(30), true}, {int64(100), 50, false},
		{"256Mi", "1Gi", true}, {"1.0.0", "2.0.0", true}, {"2.0.0", "1.9.0", false},
		{"1.0.0-alpha", "1.0.0", true},
	})
	runOps(t, "LessThanOrEquals", []opCase{
		{100.0, 200.0, true}, {64.0, 64.0, true}, {150.0, 100.0, false},
		{"2Gi", "2Gi", true}, {"0.9.0", "1.0.0", true},
	})
	// Deviation: operator names are case-insensitive for the comparison too (doc.go).
	runOps(t, "greaterthan", []opCase{{5.0, 3.0, true}})
}

// Cases from kyverno operator/duration_test.go.
func TestDurationOperators(t *testing.T) {
	runOps(t, "DurationGreaterThan", []opCase{
		{"2h", "1h", true}, {"1h", "2h", false}, {"1h", "1h", false}, {"60m", "1h", false},
		{"61m", "1h", true}, {120, 60, true}, {60, 120, false}, {int64(3600), int64(1800), true},
		{120, "1m", true}, {120.5, 60.5, true}, {120.5, 60, true}, {120.0, "1m", true},
		{true, false, false}, {"2m", 60, true}, {"2m", 60.0, true}, {"invalid", 60, false},
		{"1h", "invalid", false}, {"1h", true, false}, {int64(120), "invalid", false},
	})
	runOps(t, "DurationGreaterThanOrEquals", []opCase{
		{"2h", "1h", true}, {"1h", "60m", true}, {"30m", "1h", false}, {60, 60, true},
	})
	runOps(t, "DurationLessThan", []opCase{
		{"30m", "1h", true}, {"2h", "1h", false}, {"1h", "60m", false}, {30, 60, true},
	})
	runOps(t, "DurationLessThanOrEquals", []opCase{
		{"30m", "1h", true}, {"1h", "60m", true}, {"2h", "1h", false}, {60, 60, true},
	})
}

func TestParseOperator(t *testing.T) {
	for _, name := range []string{"Equals", "equals", "EQUALS", "Equal", "NotEqual", "In", "AnyIn", "AllIn",
		"NotIn", "AnyNotIn", "AllNotIn", "GreaterThan", "GreaterThanOrEquals", "LessThan",
		"LessThanOrEquals", "DurationGreaterThan", "DurationGreaterThanOrEquals", "DurationLessThan",
		"DurationLessThanOrEquals"} {
		if _, ok := parseOperator(name); !ok {
			t.Errorf("parseOperator(%q) failed", name)
		}
	}
	for _, name := range []string{"", "Equalz", "Contains", "=="} {
		if _, ok := parseOperator(name); ok {
			t.Errorf("parseOperator(%q) succeeded", name)
		}
	}
	if got := opAnyNotIn.String(); got != "AnyNotIn" {
		t.Errorf("String() = %q", got)
	}
}

// Range patterns (kyverno pkg/engine/pattern/pattern_test.go, operator/operator.go).
func TestPatternValidate(t *testing.T) {
	for _, c := range []struct {
		value, pattern string
		want           bool
	}{
		{"5", "1-10", true}, {"10", "1-10", true}, {"11", "1-10", false},
		{"5", "1!-10", false}, {"11", "1!-10", true},
		{"500Mi", "100Mi-1Gi", true}, {"2Gi", "100Mi-1Gi", false},
		{"5", ">3", true}, {"5", ">=5", true}, {"5", "<5", false}, {"5", "!5", false},
		{"abc", "a*", true}, {"abc", "!a*", false}, {"abc", ">a", false},
		{"5", ">10 | <6", true}, {"5", ">1 & <4", false},
		{"90s", "1m-2m", true},
	} {
		if got := patternValidate(c.value, c.pattern); got != c.want {
			t.Errorf("patternValidate(%q, %q) = %v, want %v", c.value, c.pattern, got, c.want)
		}
	}
	for p, want := range map[string]patternOp{"1-10": patInRange, "1!-10": patNotInRange, ">=1": patMoreEqual,
		"<1": patLess, "!a": patNotEqual, "a-b": patEqual, "x": patEqual, "-5-10": patInRange} {
		if got := rangeOperator(p); got != want {
			t.Errorf("rangeOperator(%q) = %q, want %q", p, got, want)
		}
	}
}
