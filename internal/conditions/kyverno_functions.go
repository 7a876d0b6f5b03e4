package conditions

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/blang/semver/v4"
	"github.com/jmespath-community/go-jmespath/pkg/functions"
	"sigs.k8s.io/yaml"
)

var (
	tString = []functions.JpType{functions.JpString}
	tNumber = []functions.JpType{functions.JpNumber}
	tStrNum = []functions.JpType{functions.JpString, functions.JpNumber}
	tObject = []functions.JpType{functions.JpObject}
	tArray  = []functions.JpType{functions.JpArray}
	tObjArr = []functions.JpType{functions.JpObject, functions.JpArray}
	tAny    = []functions.JpType{functions.JpAny}
)

func specs(types ...[]functions.JpType) []functions.ArgSpec {
	out := make([]functions.ArgSpec, len(types))
	for i, t := range types {
		out[i] = functions.ArgSpec{Types: t}
	}
	return out
}

// pure adapts a function that needs neither the evaluator nor the call node.
func pure(f func(args []any) (any, error)) func(*evaluator, *node, []any) (any, error) {
	return func(_ *evaluator, _ *node, args []any) (any, error) { return f(args) }
}

// kyvernoFunctions are Kyverno's custom JMESPath functions, with its argument types and
// results (pkg/engine/jmespath/functions.go, time.go, arithmetic.go).
func kyvernoFunctions() []*function {
	fns := []*function{
		{name: "compare", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			return float64(strings.Compare(a[0].(string), a[1].(string))), nil
		})},
		{name: "equal_fold", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			return strings.EqualFold(a[0].(string), a[1].(string)), nil
		})},
		{name: "replace", args: specs(tString, tString, tString, tNumber), impl: pure(func(a []any) (any, error) {
			return replace("replace", a[0].(string), a[1].(string), a[2].(string), int(a[3].(float64)))
		})},
		{name: "replace_all", args: specs(tString, tString, tString), impl: pure(func(a []any) (any, error) {
			return replace("replace_all", a[0].(string), a[1].(string), a[2].(string), -1)
		})},
		{name: "to_upper", args: specs(tString), impl: pure(func(a []any) (any, error) {
			return strings.ToUpper(a[0].(string)), nil
		})},
		{name: "to_lower", args: specs(tString), impl: pure(func(a []any) (any, error) {
			return strings.ToLower(a[0].(string)), nil
		})},
		{name: "trim", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			return strings.Trim(a[0].(string), a[1].(string)), nil
		})},
		{name: "trim_prefix", args: specs(tString, tString), impl: pure(func(a []any) (any, error) {
			return strings.TrimPrefix(a[0].(string), a[1].(string)), nil
		})},
		{name: "split", args: specs(tString, tString), impl: split},
		{name: "regex_replace_all", args: specs(tString, tStrNum, tStrNum), regex: true, impl: regexReplacer("regex_replace_all", false)},
		{name: "regex_replace_all_literal", args: specs(tString, tStrNum, tStrNum), regex: true, impl: regexReplacer("regex_replace_all_literal", true)},
		{name: "regex_match", args: specs(tString, tStrNum), regex: true, impl: regexMatch},
		{name: "pattern_match", args: specs(tString, tStrNum), impl: pure(func(a []any) (any, error) {
			return wildcardMatch(a[0].(string), numberOrString(a[1])), nil
		})},
		{name: "label_match", args: specs(tObject, tObject), impl: pure(labelMatch)},
		{name: "to_boolean", args: specs(tString), impl: pure(toBoolean)},
		{name: "add", args: specs(tAny, tAny), impl: pure(arith("add"))},
		{name: "subtract", args: specs(tAny, tAny), impl: pure(arith("subtract"))},
		{name: "multiply", args: specs(tAny, tAny), impl: pure(arith("multiply"))},
		{name: "divide", args: specs(tAny, tAny), impl: pure(arith("divide"))},
		{name: "modulo", args: specs(tAny, tAny), impl: pure(arith("modulo"))},
		{name: "sum", args: specs(tArray), impl: pure(sum)},
		{name: "round", args: specs(tNumber, tNumber), impl: pure(round)},
		{name: "base64_decode", args: specs(tString), impl: pure(func(a []any) (any, error) {
			out, err := base64.StdEncoding.DecodeString(a[0].(string))
			if err != nil {
				return nil, err
			}
			return string(out), nil
		})},
		{name: "base64_encode", args: specs(tString), impl: pure(func(a []any) (any, error) {
			s := a[0].(string)
			if err := sizeCheck("base64_encode", base64.StdEncoding.EncodedLen(len(s))); err != nil {
				return nil, err
			}
			return base64.StdEncoding.EncodeToString([]byte(s)), nil
		})},
		{name: "path_canonicalize", args: specs(tString), impl: pure(func(a []any) (any, error) {
			return filepath.Join(a[0].(string)), nil
		})},
		{name: "truncate", args: specs(tString, tNumber), impl: pure(truncate)},
		{name: "semver_compare", args: specs(tString, tString), impl: pure(semverCompare)},
		{name: "parse_json", args: specs(tString), impl: pure(func(a []any) (any, error) {
			var out any
			err := json.Unmarshal([]byte(a[0].(string)), &out)
			return out, err
		})},
		{name: "parse_yaml", args: specs(tString), impl: pure(parseYAML)},
		{name: "lookup", args: specs(tObjArr, tStrNum), impl: pure(lookup)},
		{name: "items", args: specs(tObjArr, tString, tString), impl: items},
		{name: "object_from_lists", args: specs(tArray, tArray), impl: pure(objectFromLists)},
	}
	return append(fns, timeFunctions()...)
}

// numberOrString is Kyverno's ifaceToString for string|number arguments; numbers are printed
// with float32 precision, as Kyverno does (strconv.FormatFloat(f, 'f', -1, 32)).
func numberOrString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 32)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func replace(name, s, old, repl string, n int) (any, error) {
	count := strings.Count(s, old)
	if n >= 0 && n < count {
		count = n
	}
	if err := sizeCheck(name, len(s)+count*(len(repl)-len(old))); err != nil {
		return nil, err
	}
	return strings.Replace(s, old, repl, n), nil
}

func split(e *evaluator, _ *node, a []any) (any, error) {
	s, sep := a[0].(string), a[1].(string)
	count := strings.Count(s, sep) + 1
	if sep == "" {
		count = utf8.RuneCountInString(s)
	}
	if !e.charge(count) {
		return nil, ErrBudget
	}
	parts := strings.Split(s, sep)
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

func regexMatch(e *evaluator, n *node, a []any) (any, error) {
	re, err := e.regexArg("regex_match", n, a[0].(string))
	if err != nil {
		return nil, err
	}
	return re.MatchString(numberOrString(a[1])), nil
}

// regexReplacer is regex_replace_all (with $1 expansion) or regex_replace_all_literal. The
// output is at most len(src) + (len(src)+1)*len(repl) + (number of '$' in repl)*len(src) bytes
// (matches do not overlap), which is checked before replacing.
func regexReplacer(name string, literal bool) func(*evaluator, *node, []any) (any, error) {
	return func(e *evaluator, n *node, a []any) (any, error) {
		re, err := e.regexArg(name, n, a[0].(string))
		if err != nil {
			return nil, err
		}
		src, repl := numberOrString(a[1]), numberOrString(a[2])
		bound := len(src) + (len(src)+1)*len(repl)
		if !literal {
			bound += strings.Count(repl, "$") * len(src)
		}
		if err := sizeCheck(name, bound); err != nil {
			return nil, err
		}
		if literal {
			return re.ReplaceAllLiteralString(src, repl), nil
		}
		return re.ReplaceAllString(src, repl), nil
	}
}

// labelMatch: every label of the first object is in the second with the same value.
// (Kyverno compares with != and panics on object values; values here compare deeply.)
func labelMatch(a []any) (any, error) {
	labels, match := a[0].(map[string]any), a[1].(map[string]any)
	for k, v := range labels {
		got, ok := match[k]
		if !ok || !reflect.DeepEqual(got, v) {
			return false, nil
		}
	}
	return true, nil
}

func toBoolean(a []any) (any, error) {
	switch s := a[0].(string); strings.ToLower(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return nil, fmt.Errorf("JMESPath function 'to_boolean': lowercase argument must be 'true' or 'false' (provided: '%s')", s)
	}
}

// intNumber returns f as an int when it is integral.
func intNumber(f float64) (int, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, fmt.Errorf("expected an integer number but got: %v", f)
	}
	return int(f), nil
}

func round(a []any) (any, error) {
	x, places := a[0].(float64), a[1].(float64)
	n, err := intNumber(places)
	if err != nil {
		return nil, errors.New("JMESPath function 'round': Non-integer argument(s) passed for round off")
	}
	if n < 0 {
		return nil, errors.New("JMESPath function 'round': Argument out of bounds")
	}
	shift := math.Pow(10, float64(n))
	return math.Round(x*shift) / shift, nil
}

func truncate(a []any) (any, error) {
	s, l := a[0].(string), a[1].(float64)
	if l < 0 {
		l = 0
	}
	if l >= float64(utf8.RuneCountInString(s)) {
		return s, nil
	}
	return string([]rune(s)[:int(l)]), nil
}

// semverCompare reports whether the version is in the range (blang/semver ParseRange, e.g.
// ">=1.2.0 <2.0.0 || 3.x" is not supported by blang; ">=1.2.0 <2.0.0 || >=3.0.0" is). A version
// that does not parse is 0.0.0, as in Kyverno.
func semverCompare(a []any) (any, error) {
	v, _ := semver.Parse(a[0].(string))
	r, err := semver.ParseRange(a[1].(string))
	if err != nil {
		return nil, err
	}
	return r(v), nil
}

func parseYAML(a []any) (any, error) {
	data, err := yaml.YAMLToJSON([]byte(a[0].(string)))
	if err != nil {
		return nil, err
	}
	if err := sizeCheck("parse_yaml", len(data)); err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(data, &out)
	return out, err
}

func lookup(a []any) (any, error) {
	switch in := a[0].(type) {
	case map[string]any:
		key, ok := a[1].(string)
		if !ok {
			return nil, errors.New("JMESPath function 'lookup': argument #2 is expected of String type")
		}
		return in[key], nil
	case []any:
		f, ok := a[1].(float64)
		if !ok {
			return nil, errors.New("JMESPath function 'lookup': argument #2 is expected of Number type")
		}
		i, err := intNumber(f)
		if err != nil {
			return nil, fmt.Errorf("JMESPath function 'lookup': argument #2: %w", err)
		}
		if i < 0 || i >= len(in) {
			return nil, nil
		}
		return in[i], nil
	}
	return nil, errors.New("JMESPath function 'lookup': argument #1 is expected of Object or Array type")
}

func items(e *evaluator, _ *node, a []any) (any, error) {
	keyName, valName := a[1].(string), a[2].(string)
	switch in := a[0].(type) {
	case map[string]any:
		if !e.charge(len(in)) {
			return nil, ErrBudget
		}
		keys := make([]string, 0, len(in))
		for k := range in {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = map[string]any{keyName: k, valName: in[k]}
		}
		return out, nil
	case []any:
		if !e.charge(len(in)) {
			return nil, ErrBudget
		}
		out := make([]any, len(in))
		for i, v := range in {
			out[i] = map[string]any{keyName: float64(i), valName: v}
		}
		return out, nil
	}
	return nil, errors.New("JMESPath function 'items': argument #1 is expected of Object or Array type")
}

func objectFromLists(a []any) (any, error) {
	keys, ok1 := a[0].([]any)
	values, ok2 := a[1].([]any)
	if !ok1 || !ok2 {
		return nil, errors.New("JMESPath function 'object_from_lists': arguments are expected of Array type")
	}
	out := make(map[string]any, len(keys))
	for i, k := range keys {
		var key string
		switch x := k.(type) {
		case string, float64, bool:
			key = numberOrString(x)
		default:
			return nil, errors.New("JMESPath function 'object_from_lists': argument #1 is expected of StringArray type")
		}
		if i < len(values) {
			out[key] = values[i]
		} else {
			out[key] = nil
		}
	}
	return out, nil
}
