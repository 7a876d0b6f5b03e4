package conditions

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"gopkg.in/inf.v0"
	"k8s.io/apimachinery/pkg/api/resource"
)

// timeFunctions are Kyverno's time functions (pkg/engine/jmespath/time.go). "Now" is the
// evaluation's clock (Evaluate: time.Now(); EvaluateAt: the given instant).
func timeFunctions() []*function {
	return []*function{
		{name: "time_since", args: specs(tString, tString, tString), impl: timeSince},
		{name: "time_now", impl: func(e *evaluator, _ *node, _ []any) (any, error) {
			return e.now.Format(time.RFC3339), nil
		}},
		{name: "time_now_utc", impl: func(e *evaluator, _ *node, _ []any) (any, error) {
			return e.now.UTC().Format(time.RFC3339), nil
		}},
		{name: "time_add", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			t, err := time.Parse(time.RFC3339, a[0].(string))
			if err != nil {
				return nil, err
			}
			d, err := time.ParseDuration(a[1].(string))
			if err != nil {
				return nil, err
			}
			return t.Add(d).Format(time.RFC3339), nil
		})},
		{name: "time_parse", args: specs(tString, tString), impl: pure(timeParse)},
		{name: "time_utc", args: specs(tString), impl: pure(func(a []any) (any, error) {
			t, err := time.Parse(time.RFC3339, a[0].(string))
			if err != nil {
				return nil, err
			}
			return t.UTC().Format(time.RFC3339), nil
		})},
		{name: "time_diff", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			t1, t2, err := twoTimes(a)
			if err != nil {
				return nil, err
			}
			return t2.Sub(t1).String(), nil
		})},
		{name: "time_before", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			t1, t2, err := twoTimes(a)
			if err != nil {
				return nil, err
			}
			return t1.Before(t2), nil
		})},
		{name: "time_after", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			t1, t2, err := twoTimes(a)
			if err != nil {
				return nil, err
			}
			return t1.After(t2), nil
		})},
		{name: "time_between", args: specs(tString, tString, tString), impl: pure(func(a []any) (any, error) {
			t, start, err := twoTimes(a)
			if err != nil {
				return nil, err
			}
			end, err := time.Parse(time.RFC3339, a[2].(string))
			if err != nil {
				return nil, err
			}
			return t.After(start) && t.Before(end), nil
		})},
		{name: "time_truncate", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			t, err := time.Parse(time.RFC3339, a[0].(string))
			if err != nil {
				return nil, err
			}
			d, err := time.ParseDuration(a[1].(string))
			if err != nil {
				return nil, err
			}
			return t.Truncate(d).Format(time.RFC3339), nil
		})},
		{name: "time_to_cron", args: specs(tString), impl: pure(func(a []any) (any, error) {
			t, err := time.Parse(time.RFC3339, a[0].(string))
			if err != nil {
				return nil, err
			}
			return fmt.Sprintf("%d %d %d %d %d", t.Minute(), t.Hour(), t.Day(), int(t.Month()), int(t.Weekday())), nil
		})},
	}
}

func twoTimes(a []any) (time.Time, time.Time, error) {
	t1, err := time.Parse(time.RFC3339, a[0].(string))
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	t2, err := time.Parse(time.RFC3339, a[1].(string))
	return t1, t2, err
}

// timeSince is time_since(layout, ts1, ts2): ts2 - ts1 as a Go duration string; an empty
// layout means RFC 3339 and an empty ts2 means now.
func timeSince(e *evaluator, _ *node, a []any) (any, error) {
	layout, ts1, ts2 := a[0].(string), a[1].(string), a[2].(string)
	if layout == "" {
		layout = time.RFC3339
	}
	t1, err := time.Parse(layout, ts1)
	if err != nil {
		return nil, err
	}
	t2 := e.now
	if ts2 != "" {
		if t2, err = time.Parse(layout, ts2); err != nil {
			return nil, err
		}
	}
	return t2.Sub(t1).String(), nil
}

// timeParse is time_parse(layout, ts): a numeric layout means ts is Unix seconds.
func timeParse(a []any) (any, error) {
	layout, ts := a[0].(string), a[1].(string)
	if _, err := strconv.ParseInt(layout, 10, 64); err == nil {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return nil, err
		}
		return time.Unix(sec, 0).UTC().Format(time.RFC3339), nil
	}
	t, err := time.Parse(layout, ts)
	if err != nil {
		return nil, err
	}
	return t.Format(time.RFC3339), nil
}

// operand is an argument of Kyverno's arithmetic functions: a number, a resource quantity
// (strings that parse as one, e.g. "10", "1Gi", "1m"), or a duration ("1h").
type operand struct {
	kind byte // 's' scalar, 'q' quantity, 'd' duration
	f    float64
	q    resource.Quantity
	d    time.Duration
}

func toOperand(v any) (operand, bool) {
	switch x := v.(type) {
	case float64:
		return operand{kind: 's', f: x}, true
	case string:
		if q, err := resource.ParseQuantity(x); err == nil {
			return operand{kind: 'q', q: q}, true
		}
		if d, err := time.ParseDuration(x); err == nil {
			return operand{kind: 'd', d: d}, true
		}
	}
	return operand{}, false
}

// arith is add, subtract, multiply, divide or modulo with Kyverno's operand rules
// (pkg/engine/jmespath/arithmetic.go): like kinds add and subtract; a quantity or duration
// scales by a number; quantity/quantity and duration/duration give numbers.
func arith(name string) func(a []any) (any, error) {
	return func(a []any) (any, error) {
		x, ok1 := toOperand(a[0])
		y, ok2 := toOperand(a[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("JMESPath function '%s': invalid operands", name)
		}
		return arithmetic(name, x, y)
	}
}

func sum(a []any) (any, error) {
	list := a[0].([]any)
	if len(list) == 0 {
		return nil, errors.New("JMESPath function 'sum': at least one element in the array is required")
	}
	acc := list[0]
	for _, v := range list[1:] {
		var err error
		if acc, err = arith("sum")([]any{acc, v}); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

func arithmetic(name string, x, y operand) (any, error) {
	switch name {
	case "add", "sum", "subtract":
		return addOperands(name, x, y)
	case "multiply":
		return multiplyOperands(x, y)
	case "divide":
		return divideOperands(x, y)
	}
	return moduloOperands(x, y)
}

func mismatch(name string) error { return fmt.Errorf("JMESPath function '%s': types mismatch", name) }

func zeroDivisor(name string) error {
	return fmt.Errorf("JMESPath function '%s': Zero divisor passed", name)
}

// addOperands: like kinds only.
func addOperands(name string, x, y operand) (any, error) {
	if x.kind != y.kind {
		return nil, mismatch(name)
	}
	sign := 1.0
	if name == "subtract" {
		sign = -1
	}
	switch x.kind {
	case 's':
		return x.f + sign*y.f, nil
	case 'd':
		return (x.d + time.Duration(sign)*y.d).String(), nil
	}
	if sign < 0 {
		x.q.Sub(y.q)
	} else {
		x.q.Add(y.q)
	}
	return x.q.String(), nil
}

// multiplyOperands: a number times anything.
func multiplyOperands(x, y operand) (any, error) {
	if x.kind != 's' {
		x, y = y, x
	}
	if x.kind != 's' {
		return nil, mismatch("multiply")
	}
	switch y.kind {
	case 's':
		return x.f * y.f, nil
	case 'd':
		return time.Duration(y.d.Seconds() * x.f * float64(time.Second)).String(), nil
	}
	return scaleQuantity(y.q, x.f, false)
}

// divideOperands: like kinds give numbers; quantities and durations divide by numbers.
func divideOperands(x, y operand) (any, error) {
	switch {
	case y.kind == 's' && y.f == 0,
		y.kind == 'd' && y.d == 0,
		y.kind == 'q' && y.q.AsApproximateFloat64() == 0:
		if x.kind == y.kind || y.kind == 's' {
			return nil, zeroDivisor("divide")
		}
	case x.kind == 's' && y.kind == 's':
		return x.f / y.f, nil
	case x.kind == 'q' && y.kind == 'q':
		return x.q.AsApproximateFloat64() / y.q.AsApproximateFloat64(), nil
	case x.kind == 'd' && y.kind == 'd':
		return x.d.Seconds() / y.d.Seconds(), nil
	case x.kind == 'd' && y.kind == 's':
		return time.Duration(x.d.Seconds() / y.f * float64(time.Second)).String(), nil
	case x.kind == 'q' && y.kind == 's':
		return scaleQuantity(x.q, y.f, true)
	}
	return nil, mismatch("divide")
}

// moduloOperands: like kinds, integral numbers and quantities.
func moduloOperands(x, y operand) (any, error) {
	if x.kind != y.kind {
		return nil, mismatch("modulo")
	}
	switch x.kind {
	case 'd':
		if y.d == 0 {
			return nil, zeroDivisor("modulo")
		}
		return (x.d % y.d).String(), nil
	case 's':
		return intModulo("modulo", x.f, y.f, func(r int64) any { return float64(r) })
	}
	return intModulo("modulo", x.q.AsApproximateFloat64(), y.q.AsApproximateFloat64(), func(r int64) any {
		return resource.NewQuantity(r, x.q.Format).String()
	})
}

func intModulo(name string, a, b float64, result func(int64) any) (any, error) {
	if a != math.Trunc(a) || b != math.Trunc(b) || math.Abs(a) > math.MaxInt64/2 || math.Abs(b) > math.MaxInt64/2 {
		return nil, fmt.Errorf("JMESPath function '%s': Non-integer argument(s) passed for modulo", name)
	}
	if int64(b) == 0 {
		return nil, zeroDivisor(name)
	}
	return result(int64(a) % int64(b)), nil
}

// scaleQuantity multiplies (or divides, rounding down at the larger scale as Kyverno does) a
// quantity by a number.
func scaleQuantity(q resource.Quantity, f float64, divide bool) (any, error) {
	fq, err := resource.ParseQuantity(strconv.FormatFloat(f, 'g', -1, 64))
	if err != nil {
		return nil, err
	}
	var out inf.Dec
	if divide {
		scale := q.AsDec().Scale()
		if s := fq.AsDec().Scale(); s > scale {
			scale = s
		}
		out.QuoRound(q.AsDec(), fq.AsDec(), scale, inf.RoundDown)
	} else {
		out.Mul(q.AsDec(), fq.AsDec())
	}
	return resource.NewDecimalQuantity(out, q.Format).String(), nil
}
