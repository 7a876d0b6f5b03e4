package conditions

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/jmespath-community/go-jmespath/pkg/functions"
	"github.com/jmespath-community/go-jmespath/pkg/util"
)

// function is a JMESPath function: the library's built-ins and Kyverno's custom functions
// (kyverno pkg/engine/jmespath/functions.go, time.go, arithmetic.go), which replace built-ins
// of the same name (replace, split, trim, items, sum) exactly as Kyverno registers them.
type function struct {
	name  string
	args  []functions.ArgSpec
	regex bool // the first argument is a regular expression (precompiled when literal)
	impl  func(e *evaluator, n *node, args []any) (any, error)
}

// functionTable is every function an expression may call, by name. It is built once and
// never modified.
var functionTable = buildFunctionTable()

func buildFunctionTable() map[string]*function {
	table := map[string]*function{}
	for _, entry := range functions.GetDefaultFunctions() {
		table[entry.Name] = builtin(entry)
	}
	for _, f := range kyvernoFunctions() {
		table[f.name] = f
	}
	return table
}

// builtin wraps a jmespath-community function with the size checks of this package.
func builtin(entry functions.FunctionEntry) *function {
	handler := entry.Handler
	name := entry.Name
	return &function{name: name, args: entry.Arguments, impl: func(e *evaluator, _ *node, args []any) (any, error) {
		if name == "pad_left" || name == "pad_right" {
			if w, ok := args[1].(float64); ok && w > maxStringBytes {
				return nil, fmt.Errorf("JMESPath function '%s': width %v: %w", name, w, ErrBudget)
			}
		}
		if name == "sort_by" {
			// The library sorts its argument in place; the document must not change.
			if list, ok := args[0].([]any); ok {
				args[0] = append([]any(nil), list...)
			}
		}
		out, err := handler(args)
		if err != nil {
			return nil, err
		}
		return out, e.chargeResult(name, out)
	}}
}

// chargeResult charges the budget for a function's result: one step per list element, and
// strings longer than maxStringBytes are refused.
func (e *evaluator) chargeResult(name string, out any) error {
	switch r := out.(type) {
	case string:
		if len(r) > maxStringBytes {
			return fmt.Errorf("JMESPath function '%s': result of %d bytes: %w", name, len(r), ErrBudget)
		}
	case []any:
		if !e.charge(len(r)) {
			return ErrBudget
		}
	}
	return nil
}

func (f *function) checkArity(count int) error {
	min, variadic := 0, false
	for _, a := range f.args {
		if !a.Optional {
			min++
		}
		variadic = variadic || a.Variadic
	}
	if count < min {
		return fmt.Errorf("JMESPath function '%s': not enough arguments: got %d, want at least %d", f.name, count, min)
	}
	if !variadic && count > len(f.args) {
		return fmt.Errorf("JMESPath function '%s': too many arguments: got %d, want at most %d", f.name, count, len(f.args))
	}
	return nil
}

// checkTypes is the library's argument type check (interpreter.resolveArgs), with messages
// that name types rather than print (possibly huge) values.
func (f *function) checkTypes(args []any) error {
	for i, arg := range args {
		spec := f.args[len(f.args)-1]
		if i < len(f.args) {
			spec = f.args[i]
		}
		if !typeMatches(spec.Types, arg) {
			return fmt.Errorf("JMESPath function '%s': argument #%d: expected %s, got %s", f.name, i+1, typeNames(spec.Types), jsonType(arg))
		}
	}
	return nil
}

func (f *function) call(e *evaluator, n *node, args []any) (any, error) {
	return f.impl(e, n, args)
}

func typeMatches(types []functions.JpType, arg any) bool {
	for _, t := range types {
		switch t {
		case functions.JpAny:
			return true
		case functions.JpNumber:
			if _, ok := arg.(float64); ok {
				return true
			}
		case functions.JpString:
			if _, ok := arg.(string); ok {
				return true
			}
		case functions.JpArray:
			if util.IsSliceType(arg) {
				return true
			}
		case functions.JpObject:
			if _, ok := arg.(map[string]any); ok {
				return true
			}
		case functions.JpArrayArray:
			if _, ok := util.ToArrayArray(arg); ok {
				return true
			}
		case functions.JpArrayNumber:
			if _, ok := util.ToArrayNum(arg); ok {
				return true
			}
		case functions.JpArrayString:
			if _, ok := util.ToArrayStr(arg); ok {
				return true
			}
		case functions.JpExpref:
			if _, ok := arg.(functions.ExpRef); ok {
				return true
			}
		}
	}
	return false
}

func typeNames(types []functions.JpType) string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return strings.Join(names, " or ")
}

// jsonType names the JSON type of v for messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case functions.ExpRef:
		return "expref"
	}
	if util.IsSliceType(v) {
		return "array"
	}
	return reflect.TypeOf(v).String()
}

// regexArg returns the compiled pattern of a regex function: precompiled when the policy wrote
// it as a literal, compiled now when it comes from the document.
func (e *evaluator) regexArg(name string, n *node, pattern string) (*regexp.Regexp, error) {
	if n != nil && n.re != nil {
		return n.re, nil
	}
	if !e.charge(len(pattern)) {
		return nil, ErrBudget
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("JMESPath function '%s': %w", name, err)
	}
	return re, nil
}

// sizeCheck refuses a result of size bytes before it is built.
func sizeCheck(name string, size int) error {
	if size > maxStringBytes || size < 0 {
		return fmt.Errorf("JMESPath function '%s': result would exceed %d bytes: %w", name, maxStringBytes, ErrBudget)
	}
	return nil
}
