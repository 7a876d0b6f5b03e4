package conditions

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"time"

	"github.com/jmespath-community/go-jmespath/pkg/functions"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"github.com/jmespath-community/go-jmespath/pkg/util"
)

// Evaluation bounds (see doc.go).
const (
	// maxSteps caps the JMESPath nodes (and projected elements) one Evaluate may visit.
	maxSteps = 1 << 20
	// maxStringBytes caps the strings and lists a function may build from its input.
	maxStringBytes = 4 << 20
)

// ErrBudget is returned when an evaluation exceeds its step or size budget.
var ErrBudget = errors.New("expression evaluation budget exceeded")

// notFoundError is Kyverno's JMESPath NotFoundError (pkg/engine/jmespath/errors.go): a field
// missing from an object. Kyverno's interpreter reports it where standard JMESPath yields null,
// which makes `{{ missing.key }}` an error; composite nodes (projections, functions, ||, ...)
// treat it as null.
type notFoundError struct{ key string }

func (e notFoundError) Error() string { return fmt.Sprintf("Unknown key %q in path", e.key) }

func isNotFound(err error) bool {
	_, ok := err.(notFoundError)
	return ok
}

type nodeKind uint8

const (
	nField nodeKind = iota + 1
	nSub            // subexpression and index expression: right applied to left
	nIndex
	nSlice
	nProjection
	nFilter
	nFlatten
	nValueProjection
	nCurrent
	nRoot
	nLiteral
	nFunction
	nExpRef
	nOr
	nAnd
	nNot
	nComparator
	nArithmetic
	nUnary
	nPipe
	nList
	nHash
	nLet
	nVariable
)

// node is a compiled JMESPath AST node.
type node struct {
	kind        nodeKind
	name        string // field, function or variable name
	lit         any    // literal value
	tok         parsing.TokType
	index       int
	slice       []util.SliceParam
	allowString bool // projection over a string slice
	fn          *function
	re          *regexp.Regexp // pattern precompiled when a regex function's pattern is a literal
	keys        []string       // multi-select hash keys, let binding names
	kids        []*node
}

// expression is a compiled JMESPath expression.
type expression struct {
	src  string
	root *node
}

// binding is one let-expression variable, in a list that shadows outer bindings.
type binding struct {
	name  string
	value any
	next  *binding
}

// evaluator is the per-Evaluate state: the document, the clock and the budget.
type evaluator struct {
	root     any
	now      time.Time
	steps    int
	exceeded bool
	bind     *binding
	// lenient resolves a variable that fails to the empty string, as Kyverno's
	// preconditions resolver does; an exhausted budget is still an error.
	lenient bool
}

// charge spends n steps of the budget and reports whether the budget still holds.
func (e *evaluator) charge(n int) bool {
	e.steps += n
	if e.steps > maxSteps {
		e.exceeded = true
	}
	return !e.exceeded
}

// search evaluates x against the evaluator's document.
func (e *evaluator) search(x *expression) (any, error) {
	v, err := e.eval(x.root, e.root)
	if e.exceeded {
		return nil, ErrBudget
	}
	return v, err
}

// ignoreNotFound turns Kyverno's NotFoundError into null, as its composite nodes do.
func ignoreNotFound(v any, err error) (any, error) {
	if err != nil && isNotFound(err) {
		return nil, nil
	}
	return v, err
}

func (e *evaluator) eval(n *node, v any) (any, error) {
	if !e.charge(1) {
		return nil, ErrBudget
	}
	switch n.kind {
	case nField:
		if m, ok := v.(map[string]any); ok {
			if r, ok := m[n.name]; ok {
				return r, nil
			}
			return nil, notFoundError{n.name}
		}
		return nil, nil // a field of null, a string, a number... is null
	case nSub:
		left, err := e.eval(n.kids[0], v)
		if err != nil || left == nil {
			return nil, err
		}
		return e.eval(n.kids[1], left)
	case nIndex:
		return index(n.index, v), nil
	case nSlice:
		return e.evalSlice(n, v)
	case nProjection:
		return e.evalProjection(n, v)
	case nFilter:
		return e.evalFilter(n, v)
	case nFlatten:
		return e.evalFlatten(n, v)
	case nValueProjection:
		return e.evalValueProjection(n, v)
	case nCurrent:
		return v, nil
	case nRoot:
		return e.root, nil
	case nLiteral:
		return n.lit, nil
	case nFunction:
		return e.evalFunction(n, v)
	case nExpRef:
		body := n.kids[0]
		return functions.ExpRef(func(x any) (any, error) {
			return ignoreNotFound(e.eval(body, x))
		}), nil
	case nOr:
		left, err := ignoreNotFound(e.eval(n.kids[0], v))
		if err != nil {
			return nil, err
		}
		if util.IsFalse(left) {
			return ignoreNotFound(e.eval(n.kids[1], v))
		}
		return left, nil
	case nAnd:
		left, err := ignoreNotFound(e.eval(n.kids[0], v))
		if err != nil {
			return nil, err
		}
		if util.IsFalse(left) {
			return left, nil
		}
		return e.eval(n.kids[1], v)
	case nNot:
		x, err := ignoreNotFound(e.eval(n.kids[0], v))
		if err != nil {
			return nil, err
		}
		return util.IsFalse(x), nil
	case nComparator:
		return e.evalComparator(n, v)
	case nArithmetic, nUnary:
		return e.evalArithmetic(n, v)
	case nPipe:
		left, err := ignoreNotFound(e.eval(n.kids[0], v))
		if err != nil {
			return nil, err
		}
		return ignoreNotFound(e.eval(n.kids[1], left))
	case nList, nHash:
		return e.evalMultiSelect(n, v)
	case nLet:
		return e.evalLet(n, v)
	case nVariable:
		for b := e.bind; b != nil; b = b.next {
			if b.name == n.name {
				return b.value, nil
			}
		}
		return nil, fmt.Errorf("variable not defined: %s", n.name)
	}
	return nil, fmt.Errorf("unsupported JMESPath node %d", n.kind)
}

func index(i int, v any) any {
	s, ok := v.([]any)
	if !ok {
		return nil
	}
	if i < 0 {
		i += len(s)
	}
	if i < 0 || i >= len(s) {
		return nil
	}
	return s[i]
}

// evalMultiSelect is [a, b] (nList) or {x: a, y: b} (nHash).
func (e *evaluator) evalMultiSelect(n *node, v any) (any, error) {
	values := make([]any, len(n.kids))
	for i, k := range n.kids {
		x, err := ignoreNotFound(e.eval(k, v))
		if err != nil {
			return nil, err
		}
		values[i] = x
	}
	if n.kind == nList {
		return values, nil
	}
	out := make(map[string]any, len(values))
	for i, x := range values {
		out[n.keys[i]] = x
	}
	return out, nil
}

// evalLet is `let $a = x, $b = y in body`: bindings shadow outer ones for the body only.
func (e *evaluator) evalLet(n *node, v any) (any, error) {
	saved := e.bind
	defer func() { e.bind = saved }()
	bound := e.bind
	for i, name := range n.keys {
		x, err := ignoreNotFound(e.eval(n.kids[i], v))
		if err != nil {
			return nil, err
		}
		bound = &binding{name: name, value: x, next: bound}
	}
	e.bind = bound
	return ignoreNotFound(e.eval(n.kids[len(n.kids)-1], v))
}

func (e *evaluator) evalSlice(n *node, v any) (any, error) {
	switch s := v.(type) {
	case []any:
		return util.Slice(s, n.slice)
	case string:
		runes, err := util.Slice([]rune(s), n.slice)
		if err != nil {
			return nil, nil
		}
		return string(runes), nil
	}
	return nil, nil
}

func (e *evaluator) evalProjection(n *node, v any) (any, error) {
	left, err := ignoreNotFound(e.eval(n.kids[0], v))
	if err != nil {
		return nil, err
	}
	s, ok := left.([]any)
	if !ok {
		if str, isStr := left.(string); isStr && n.allowString {
			return str, nil
		}
		return nil, nil
	}
	return e.project(n.kids[1], s)
}

func (e *evaluator) project(right *node, elems []any) (any, error) {
	out := []any{}
	for _, el := range elems {
		x, err := ignoreNotFound(e.eval(right, el))
		if err != nil {
			return nil, err
		}
		if x != nil {
			out = append(out, x)
		}
	}
	return out, nil
}

func (e *evaluator) evalFilter(n *node, v any) (any, error) {
	left, err := e.eval(n.kids[0], v)
	if err != nil {
		return nil, nil // Kyverno: any error on the left of a filter is null
	}
	s, ok := left.([]any)
	if !ok {
		return nil, nil
	}
	out := []any{}
	for _, el := range s {
		keep, err := ignoreNotFound(e.eval(n.kids[2], el))
		if err != nil {
			return nil, err
		}
		if util.IsFalse(keep) {
			continue
		}
		x, err := ignoreNotFound(e.eval(n.kids[1], el))
		if err != nil {
			return nil, err
		}
		if x != nil {
			out = append(out, x)
		}
	}
	return out, nil
}

func (e *evaluator) evalFlatten(n *node, v any) (any, error) {
	left, err := e.eval(n.kids[0], v)
	if err != nil {
		return nil, nil
	}
	s, ok := left.([]any)
	if !ok {
		return nil, nil
	}
	out := []any{}
	for _, el := range s {
		if inner, ok := el.([]any); ok {
			if !e.charge(len(inner)) {
				return nil, ErrBudget
			}
			out = append(out, inner...)
		} else {
			out = append(out, el)
		}
	}
	return out, nil
}

func (e *evaluator) evalValueProjection(n *node, v any) (any, error) {
	left, err := e.eval(n.kids[0], v)
	if err != nil {
		return nil, nil
	}
	m, ok := left.(map[string]any)
	if !ok {
		return nil, nil
	}
	// Kyverno iterates the map in Go's random order; sorted keys make the result stable.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values := make([]any, len(keys))
	for i, k := range keys {
		values[i] = m[k]
	}
	return e.project(n.kids[1], values)
}

func (e *evaluator) evalComparator(n *node, v any) (any, error) {
	left, err := ignoreNotFound(e.eval(n.kids[0], v))
	if err != nil {
		return nil, err
	}
	right, err := ignoreNotFound(e.eval(n.kids[1], v))
	if err != nil {
		return nil, err
	}
	switch n.tok {
	case parsing.TOKEQ:
		return reflect.DeepEqual(left, right), nil
	case parsing.TOKNE:
		return !reflect.DeepEqual(left, right), nil
	}
	l, ok1 := toFloat(left)
	r, ok2 := toFloat(right)
	if !ok1 || !ok2 {
		return nil, nil
	}
	switch n.tok {
	case parsing.TOKGT:
		return l > r, nil
	case parsing.TOKGTE:
		return l >= r, nil
	case parsing.TOKLT:
		return l < r, nil
	case parsing.TOKLTE:
		return l <= r, nil
	}
	return nil, nil
}

func (e *evaluator) evalArithmetic(n *node, v any) (any, error) {
	left, err := ignoreNotFound(e.eval(n.kids[0], v))
	if err != nil {
		return nil, err
	}
	l, ok := toFloat(left)
	if !ok {
		return nil, nil
	}
	if n.kind == nUnary {
		if n.tok == parsing.TOKMinus {
			return -l, nil
		}
		return l, nil
	}
	right, err := ignoreNotFound(e.eval(n.kids[1], v))
	if err != nil {
		return nil, err
	}
	r, ok := toFloat(right)
	if !ok {
		return nil, nil
	}
	switch n.tok {
	case parsing.TOKPlus:
		return l + r, nil
	case parsing.TOKMinus:
		return l - r, nil
	case parsing.TOKStar, parsing.TOKMultiply:
		return l * r, nil
	case parsing.TOKDivide:
		return l / r, nil
	case parsing.TOKModulo:
		return math.Mod(l, r), nil
	case parsing.TOKDiv:
		return math.Floor(l / r), nil
	}
	return nil, nil
}

func (e *evaluator) evalFunction(n *node, v any) (any, error) {
	args := make([]any, len(n.kids))
	for i, k := range n.kids {
		x, err := ignoreNotFound(e.eval(k, v))
		if err != nil {
			return nil, err
		}
		args[i] = x
	}
	if err := n.fn.checkTypes(args); err != nil {
		return nil, err
	}
	return n.fn.call(e, n, args)
}
