package conditions

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// Conditions is a compiled list of any/all blocks. It is immutable and safe for concurrent
// use; the zero value and nil hold no condition and pass.
type Conditions struct {
	blocks []block
	// substituteFirst resolves every variable of every condition (keys, values and messages)
	// before any operator runs, as Kyverno does for attestation conditions
	// (SubstituteAllInConditions); otherwise each condition resolves its key and value when it
	// is reached, as for validate.deny (EvaluateConditions).
	substituteFirst bool
	// lenient resolves unresolvable variables to "" (rule preconditions).
	lenient bool
	count   int // conditions in all blocks
}

type block struct {
	path     string
	hasAny   bool // an `any` list was written (an empty one fails, as in Kyverno)
	any, all []condition
}

type condition struct {
	path    string // field path of the condition, e.g. spec...conditions[0].all[1]
	op      operator
	key     value
	value   value
	message *template
	rawKey  any // as written, for failure descriptions
}

// Compile compiles attestation conditions (spec §3.12.2): every block must hold. path is the
// field path of the list, e.g. "spec.rules[0].verifyImages[0].attestations[0].conditions";
// errors name the offending field below it. Variables are resolved for all conditions before
// any is evaluated, so an unresolvable variable is an error even in a condition that
// short-circuiting would skip (Kyverno's SubstituteAllInConditions).
func Compile(blocks []v1.AnyAllConditions, path string) (*Conditions, error) {
	c := &Conditions{substituteFirst: true}
	for i := range blocks {
		if err := c.add(&blocks[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// CompileDeny compiles validate.deny.conditions (spec §3.13); path is the field path of the
// conditions, e.g. "spec.rules[0].verifyImages[0].validate.deny.conditions". Each condition
// resolves its variables when it is reached (Kyverno's EvaluateConditions), and messages are
// reported as written. A nil block holds no condition.
func CompileDeny(conds *v1.AnyAllConditions, path string) (*Conditions, error) {
	c := &Conditions{}
	if conds == nil {
		return c, nil
	}
	if err := c.add(conds, path); err != nil {
		return nil, err
	}
	return c, nil
}

// CompilePreconditions compiles a rule's preconditions (spec §2.3); path is their field path,
// e.g. "spec.rules[0].preconditions". As Kyverno's SubstituteAllInPreconditions, every variable
// (messages included) is resolved before any condition runs, and a variable that does not
// resolve is the empty string, not an error: `{{ request.object.metadata.labels.team }}` on an
// object without that label compares "" with the value. An exhausted budget is still an error.
// A nil block holds no condition and passes.
func CompilePreconditions(conds *v1.AnyAllConditions, path string) (*Conditions, error) {
	c := &Conditions{substituteFirst: true, lenient: true}
	if conds == nil {
		return c, nil
	}
	if err := c.add(conds, path); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Conditions) add(src *v1.AnyAllConditions, path string) error {
	b := block{path: path, hasAny: src.Any != nil}
	var err error
	if b.any, err = c.compileList(src.Any, path+".any"); err != nil {
		return err
	}
	if b.all, err = c.compileList(src.All, path+".all"); err != nil {
		return err
	}
	c.blocks = append(c.blocks, b)
	return nil
}

func (c *Conditions) compileList(list []v1.Condition, path string) ([]condition, error) {
	out := make([]condition, 0, len(list))
	for i, src := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		op, ok := parseOperator(string(src.Operator))
		if !ok {
			return nil, fmt.Errorf("%s.operator: unknown operator %q", p, src.Operator)
		}
		cond := condition{path: p, op: op, rawKey: src.Key}
		var err error
		if cond.key, err = compileValue(src.Key); err != nil {
			return nil, fmt.Errorf("%s.key: %w", p, err)
		}
		if cond.value, err = compileValue(src.Value); err != nil {
			return nil, fmt.Errorf("%s.value: %w", p, err)
		}
		if c.substituteFirst {
			if cond.message, err = compileTemplate(src.Message); err != nil {
				return nil, fmt.Errorf("%s.message: %w", p, err)
			}
		} else {
			cond.message = &template{text: src.Message}
		}
		out = append(out, cond)
		c.count++
	}
	return out, nil
}

// Result is the outcome of an evaluation that could decide.
type Result struct {
	// Pass reports whether the conditions hold (for validate.deny: whether to deny).
	Pass bool
	// Message is Kyverno's message: the messages of the deciding conditions joined by "; "
	// (by ";" across the blocks of a passing list). Often empty: conditions rarely have one.
	Message string
	// Failures describes the conditions that made the result false (empty when Pass).
	Failures []Failure
}

// Failure describes one condition that evaluated to false (or, with an empty Operator, an
// empty `any` list, which Kyverno treats as false).
type Failure struct {
	Path     string // field path of the condition
	Key      any    // the key as written
	Resolved any    // the key after substitution
	Operator string
	Value    any // the value after substitution
	Message  string
}

func (f Failure) String() string {
	if f.Operator == "" {
		return f.Path + ": empty list: no condition holds"
	}
	s := fmt.Sprintf("%s: %s %s %s", f.Path, describe(f.Resolved), f.Operator, describe(f.Value))
	if k, ok := f.Key.(string); ok && k != "" && !equalJSON(f.Key, f.Resolved) {
		s = fmt.Sprintf("%s: %s (from %q) %s %s", f.Path, describe(f.Resolved), k, f.Operator, describe(f.Value))
	}
	return s
}

// Reason is a message for a false result: Message when the policy wrote one, else a
// description of the failed conditions.
func (r Result) Reason() string {
	if r.Message != "" || r.Pass {
		return r.Message
	}
	parts := make([]string, len(r.Failures))
	for i, f := range r.Failures {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// maxDescribe caps the length of a value in failure descriptions.
const maxDescribe = 200

func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	if len(b) > maxDescribe {
		return string(b[:maxDescribe]) + "..."
	}
	return string(b)
}

func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// Evaluate evaluates the conditions against doc, a JSON document (encoding/json shapes), with
// time functions reading the current time. An error means the conditions could not be decided
// (a variable that does not resolve, an expression error, an exhausted budget); it wraps
// ErrSubstitution or ErrBudget where those apply.
func (c *Conditions) Evaluate(doc any) (Result, error) {
	return c.EvaluateAt(doc, time.Now())
}

// EvaluateAt is Evaluate with `now` as the current time of time functions.
func (c *Conditions) EvaluateAt(doc any, now time.Time) (Result, error) {
	if c == nil || len(c.blocks) == 0 {
		return Result{Pass: true}, nil
	}
	run := &run{e: evaluator{root: doc, now: now, lenient: c.lenient}}
	if c.substituteFirst {
		run.resolved = make([]resolved, c.count)
		i := 0
		for bi := range c.blocks {
			for _, list := range [][]condition{c.blocks[bi].any, c.blocks[bi].all} {
				for ci := range list {
					if err := run.resolve(&list[ci], &run.resolved[i], true); err != nil {
						return Result{}, err
					}
					i++
				}
			}
		}
	}
	var passMessages []string
	for bi := range c.blocks {
		res, err := run.block(&c.blocks[bi])
		if err != nil {
			return Result{}, err
		}
		if !res.Pass {
			return res, nil
		}
		if res.Message != "" {
			passMessages = append(passMessages, res.Message)
		}
	}
	if len(c.blocks) == 1 {
		return Result{Pass: true, Message: strings.Join(passMessages, "; ")}, nil
	}
	return Result{Pass: true, Message: strings.Join(passMessages, ";")}, nil
}

// resolved is a condition after substitution.
type resolved struct {
	key, value any
	message    string
}

// run is the state of one evaluation.
type run struct {
	e        evaluator
	resolved []resolved // substituteFirst: by condition, in block order (any before all)
	next     int        // index in resolved of the next condition evaluated
}

func (r *run) resolve(c *condition, out *resolved, withMessage bool) error {
	var err error
	if out.key, err = c.key.render(&r.e); err != nil {
		return fmt.Errorf("%s.key: %w: %w", c.path, ErrSubstitution, err)
	}
	if out.value, err = c.value.render(&r.e); err != nil {
		return fmt.Errorf("%s.value: %w: %w", c.path, ErrSubstitution, err)
	}
	if !withMessage {
		out.message = c.message.text
		return nil
	}
	m, err := c.message.render(&r.e)
	if err != nil {
		return fmt.Errorf("%s.message: %w: %w", c.path, ErrSubstitution, err)
	}
	s, ok := m.(string)
	if !ok {
		return fmt.Errorf("%s.message: %w: the message did not resolve to a string", c.path, ErrSubstitution)
	}
	out.message = s
	return nil
}

// condition evaluates the cond-th condition reached in this evaluation.
func (r *run) condition(c *condition, index int) (bool, resolved, error) {
	var res resolved
	if r.resolved != nil {
		res = r.resolved[index]
	} else if err := r.resolve(c, &res, false); err != nil {
		return false, res, err
	}
	return c.op.apply(res.key, res.value), res, nil
}

// block evaluates one any/all block as Kyverno's evaluateAnyAllConditions: `any` (when
// written) needs one true condition, `all` needs every one; both lists are evaluated (each
// short-circuits); the message is the true conditions' messages on success and the false
// ones' on failure.
func (r *run) block(b *block) (Result, error) {
	base := r.next
	r.next += len(b.any) + len(b.all)
	var trueMsgs, falseMsgs []string
	var anyFailures, failures []Failure
	fail := func(to *[]Failure, c *condition, res resolved) {
		if res.message != "" {
			falseMsgs = append(falseMsgs, res.message)
		}
		*to = append(*to, Failure{Path: c.path, Key: c.rawKey, Resolved: res.key,
			Operator: c.op.String(), Value: res.value, Message: res.message})
	}
	anyOK := !b.hasAny
	for i := range b.any {
		ok, res, err := r.condition(&b.any[i], base+i)
		if err != nil {
			return Result{}, err
		}
		if ok {
			anyOK = true
			if res.message != "" {
				trueMsgs = append(trueMsgs, res.message)
			}
			break
		}
		fail(&anyFailures, &b.any[i], res)
	}
	allOK := true
	for i := range b.all {
		ok, res, err := r.condition(&b.all[i], base+len(b.any)+i)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			allOK = false
			fail(&failures, &b.all[i], res)
			break
		}
		if res.message != "" {
			trueMsgs = append(trueMsgs, res.message)
		}
	}
	if anyOK && allOK {
		return Result{Pass: true, Message: strings.Join(trueMsgs, "; ")}, nil
	}
	if !anyOK {
		if len(b.any) == 0 {
			anyFailures = []Failure{{Path: b.path + ".any"}}
		}
		failures = append(anyFailures, failures...)
	}
	return Result{Message: strings.Join(falseMsgs, "; "), Failures: failures}, nil
}
