package conditions

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/blang/semver/v4"
	"k8s.io/apimachinery/pkg/api/resource"
)

// operator is a Kyverno condition operator (spec §3.14,
// kyverno pkg/engine/variables/operator/operator.go CreateOperatorHandler).
type operator uint8

const (
	opEquals operator = iota + 1
	opNotEquals
	opIn
	opNotIn
	opAnyIn
	opAllIn
	opAnyNotIn
	opAllNotIn
	opGreaterThan
	opGreaterThanOrEquals
	opLessThan
	opLessThanOrEquals
	opDurationGreaterThan
	opDurationGreaterThanOrEquals
	opDurationLessThan
	opDurationLessThanOrEquals
)

var operatorNames = [...]string{
	opEquals: "Equals", opNotEquals: "NotEquals", opIn: "In", opNotIn: "NotIn",
	opAnyIn: "AnyIn", opAllIn: "AllIn", opAnyNotIn: "AnyNotIn", opAllNotIn: "AllNotIn",
	opGreaterThan: "GreaterThan", opGreaterThanOrEquals: "GreaterThanOrEquals",
	opLessThan: "LessThan", opLessThanOrEquals: "LessThanOrEquals",
	opDurationGreaterThan: "DurationGreaterThan", opDurationGreaterThanOrEquals: "DurationGreaterThanOrEquals",
	opDurationLessThan: "DurationLessThan", opDurationLessThanOrEquals: "DurationLessThanOrEquals",
}

func (o operator) String() string {
	if int(o) < len(operatorNames) && operatorNames[o] != "" {
		return operatorNames[o]
	}
	return fmt.Sprintf("operator(%d)", o)
}

// parseOperator maps an operator name to its operator. Kyverno matches names
// case-insensitively and accepts the deprecated aliases Equal and NotEqual.
func parseOperator(name string) (operator, bool) {
	lower := strings.ToLower(name)
	switch lower {
	case "equal":
		return opEquals, true
	case "notequal":
		return opNotEquals, true
	}
	for i, n := range operatorNames {
		if n != "" && strings.ToLower(n) == lower {
			return operator(i), true
		}
	}
	return 0, false
}

// apply evaluates key <op> value with Kyverno's coercions. Operators never fail: a type
// mismatch is false, as in Kyverno.
func (o operator) apply(key, value any) bool {
	switch o {
	case opEquals:
		return equals(key, value)
	case opNotEquals:
		return !equals(key, value)
	case opIn, opNotIn:
		return legacyIn(o == opNotIn, key, value)
	case opAnyIn, opAllIn, opAnyNotIn, opAllNotIn:
		return setIn(o, key, value)
	case opGreaterThan, opGreaterThanOrEquals, opLessThan, opLessThanOrEquals:
		return numeric(o, key, value)
	case opDurationGreaterThan, opDurationGreaterThanOrEquals, opDurationLessThan, opDurationLessThanOrEquals:
		return durationCompare(o, key, value)
	}
	return false
}

// toFloat returns v as a float64 when it is a JSON number (or a Go integer).
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float32:
		return float64(n), true
	}
	return 0, false
}

// equals is Kyverno's EqualHandler (pkg/engine/variables/operator/equal.go): the key's type
// decides; bool needs a bool; numbers accept numbers and numeric strings; strings try
// durations, then resource quantities, then a wildcard match with the value as pattern;
// objects and arrays compare deeply. Anything else (null keys included) is false.
func equals(key, value any) bool {
	if k, ok := toFloat(key); ok {
		return floatEquals(k, value)
	}
	switch k := key.(type) {
	case bool:
		v, ok := value.(bool)
		return ok && k == v
	case string:
		return stringEquals(k, value)
	case map[string]any:
		v, ok := value.(map[string]any)
		return ok && reflect.DeepEqual(k, v)
	case []any:
		v, ok := value.([]any)
		return ok && reflect.DeepEqual(k, v)
	}
	return false
}

func floatEquals(k float64, value any) bool {
	if v, ok := toFloat(value); ok {
		return k == v
	}
	if s, ok := value.(string); ok {
		f, err := strconv.ParseFloat(s, 64)
		return err == nil && f == k
	}
	return false
}

func stringEquals(k string, value any) bool {
	if kd, vd, ok := parseDurations(k, value); ok {
		return kd.Seconds() == vd.Seconds()
	}
	if kq, ok := parseQuantity(k); ok {
		switch v := value.(type) {
		case string:
			// A quantity key never falls back to wildcard matching (Kyverno returns false).
			vq, ok := parseQuantity(v)
			return ok && kq.Cmp(vq) == 0
		default:
			// Kyverno ≥1.15: "5" Equals 5 (operator/notequal_test.go Test_NotEqual_ResourceQuantityCrossType).
			if f, ok := toFloat(v); ok {
				vq, ok := parseQuantity(strconv.FormatFloat(f, 'f', -1, 64))
				return ok && kq.Cmp(vq) == 0
			}
		}
	}
	if v, ok := value.(string); ok {
		return wildcardMatch(v, k)
	}
	return false
}

// parseQuantity parses a Kubernetes resource quantity ("1Gi", "500m", "10").
func parseQuantity(s string) (resource.Quantity, bool) {
	if s == "" {
		return resource.Quantity{}, false
	}
	// Quantities start with a sign, a digit or a dot; skip ParseQuantity's work otherwise.
	if c := s[0]; c != '+' && c != '-' && c != '.' && (c < '0' || c > '9') {
		return resource.Quantity{}, false
	}
	q, err := resource.ParseQuantity(s)
	return q, err == nil
}

// mayBeDuration rejects, without allocating, strings that time.ParseDuration certainly rejects:
// after an optional sign a duration is "0" or starts with a digit or '.' and ends with a unit
// (ns, us, µs, ms, s, m, h).
func mayBeDuration(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "0" {
		return true
	}
	if s == "" || !(s[0] == '.' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	last := s[len(s)-1]
	return last == 's' || last == 'm' || last == 'h'
}

func parseDurationString(s string) (time.Duration, bool) {
	if !mayBeDuration(s) {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// parseDurations is Kyverno's parseDuration (operator/operator.go): at least one side must be
// a duration string other than "0"; the other side may be a duration string or a number of
// seconds (truncated to whole seconds, as Kyverno's time.Duration(x)*time.Second does).
func parseDurations(key, value any) (time.Duration, time.Duration, bool) {
	kd, kok := durationOperand(key)
	vd, vok := durationOperand(value)
	if !kok && !vok {
		return 0, 0, false
	}
	if !kok {
		if kd, kok = secondsOperand(key); !kok {
			return 0, 0, false
		}
	}
	if !vok {
		if vd, vok = secondsOperand(value); !vok {
			return 0, 0, false
		}
	}
	return kd, vd, true
}

func durationOperand(v any) (time.Duration, bool) {
	s, ok := v.(string)
	if !ok || s == "0" {
		return 0, false
	}
	return parseDurationString(s)
}

func secondsOperand(v any) (time.Duration, bool) {
	f, ok := toFloat(v)
	if !ok {
		return 0, false
	}
	return time.Duration(f) * time.Second, true
}

// numeric is Kyverno's NumericOperatorHandler (operator/numeric.go): numbers, numeric strings,
// durations (either side, seconds for bare numbers), resource quantities (both strings), and
// finally semantic versions (blang/semver, both strings).
func numeric(o operator, key, value any) bool {
	if k, ok := toFloat(key); ok {
		return numericFloat(o, k, value)
	}
	k, ok := key.(string)
	if !ok {
		return false
	}
	if kd, vd, ok := parseDurations(k, value); ok {
		return compareFloats(o, kd.Seconds(), vd.Seconds())
	}
	if v, ok := value.(string); ok {
		if kq, ok := parseQuantity(k); ok {
			if vq, ok := parseQuantity(v); ok {
				return compareFloats(o, float64(kq.Cmp(vq)), 0)
			}
		}
	}
	if f, err := strconv.ParseFloat(k, 64); err == nil {
		return numericFloat(o, f, value)
	}
	kv, err := semver.Parse(k)
	if err != nil {
		return false
	}
	v, ok := value.(string)
	if !ok {
		return false
	}
	vv, err := semver.Parse(v)
	if err != nil {
		return false
	}
	return compareFloats(o, float64(kv.Compare(vv)), 0)
}

func numericFloat(o operator, k float64, value any) bool {
	if v, ok := toFloat(value); ok {
		return compareFloats(o, k, v)
	}
	v, ok := value.(string)
	if !ok {
		return false
	}
	if kd, vd, ok := parseDurations(k, v); ok {
		return compareFloats(o, kd.Seconds(), vd.Seconds())
	}
	f, err := strconv.ParseFloat(v, 64)
	return err == nil && compareFloats(o, k, f)
}

func compareFloats(o operator, k, v float64) bool {
	switch o {
	case opGreaterThan, opDurationGreaterThan:
		return k > v
	case opGreaterThanOrEquals, opDurationGreaterThanOrEquals:
		return k >= v
	case opLessThan, opDurationLessThan:
		return k < v
	case opLessThanOrEquals, opDurationLessThanOrEquals:
		return k <= v
	}
	return false
}

// durationCompare is Kyverno's deprecated DurationOperatorHandler (operator/duration.go):
// both sides are durations, bare numbers are seconds.
func durationCompare(o operator, key, value any) bool {
	kd, ok := durationOrSeconds(key)
	if !ok {
		return false
	}
	vd, ok := durationOrSeconds(value)
	if !ok {
		return false
	}
	return compareDurations(o, kd, vd)
}

func durationOrSeconds(v any) (time.Duration, bool) {
	if s, ok := v.(string); ok {
		return parseDurationString(s)
	}
	return secondsOperand(v)
}

func compareDurations(o operator, k, v time.Duration) bool {
	switch o {
	case opDurationGreaterThan:
		return k > v
	case opDurationGreaterThanOrEquals:
		return k >= v
	case opDurationLessThan:
		return k < v
	case opDurationLessThanOrEquals:
		return k <= v
	}
	return false
}
