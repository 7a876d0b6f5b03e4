package conditions

import (
	"fmt"
	"time"
)

// Template is a compiled string with `{{ }}` variables, for messages such as
// validate.message (spec §3.13). It is immutable and safe for concurrent use.
type Template struct {
	t    *template
	path string
}

// CompileTemplate compiles s; path names the field in errors.
func CompileTemplate(s, path string) (*Template, error) {
	t, err := compileTemplate(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Template{t: t, path: path}, nil
}

// Render substitutes the variables against doc. A string that is exactly one variable gives
// the variable's JSON value, which may not be a string; see RenderString.
func (t *Template) Render(doc any) (any, error) { return t.RenderAt(doc, time.Now()) }

// RenderAt is Render with `now` as the current time of time functions.
func (t *Template) RenderAt(doc any, now time.Time) (any, error) {
	e := evaluator{root: doc, now: now}
	out, err := t.t.render(&e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", t.path, ErrSubstitution, err)
	}
	return out, nil
}

// RenderString renders a message: the result must be a string.
func (t *Template) RenderString(doc any) (string, error) {
	out, err := t.Render(doc)
	if err != nil {
		return "", err
	}
	s, ok := out.(string)
	if !ok {
		return "", fmt.Errorf("%s: the message did not resolve to a string (got %s)", t.path, jsonType(out))
	}
	return s, nil
}

// AttestationDocument is the document attestation conditions are evaluated against (spec
// §3.12.2): the admission context base with the top-level keys of the statement's predicate
// merged into its root, so `{{ builder.id }}` reads predicate.builder.id. The statement's
// predicate must be an object.
//
// Unlike Kyverno, whose deep merge lets the (attacker-signed) predicate override context
// entries such as `request` or `images`, keys of base win. Neither input is modified.
func AttestationDocument(base map[string]any, statement map[string]any) (map[string]any, error) {
	predicate, ok := statement["predicate"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("failed to extract predicate from statement: predicate is %s, not an object", jsonType(statement["predicate"]))
	}
	out := make(map[string]any, len(base)+len(predicate))
	for k, v := range predicate {
		out[k] = v
	}
	for k, v := range base {
		out[k] = v
	}
	return out, nil
}

// Value is a compiled JSON value in which any string (object keys included) may hold `{{ }}`
// variables: a rule's context entry values and the verifyImages fields Kyverno substitutes
// before verifying (spec §2.3). It is immutable and safe for concurrent use.
type Value struct {
	v    value
	path string
}

// CompileValue compiles v (encoding/json shapes); path names the field in errors.
func CompileValue(v any, path string) (*Value, error) {
	cv, err := compileValue(v)
	if err != nil {
		// The error names the field inside the value: <path>.attestors[0].keys.publicKeys: ...
		if ve, ok := err.(*valueError); ok {
			return nil, fmt.Errorf("%s: %w", ve.fieldPath(path), ve.err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Value{v: cv, path: path}, nil
}

// HasVariables reports whether rendering can give anything but the value as written.
func (v *Value) HasVariables() bool { return v.v.kind != 'l' }

// Render substitutes the variables against doc. Nothing is shared with the compiled value
// except literals, which the caller must not modify.
func (v *Value) Render(doc any) (any, error) {
	e := evaluator{root: doc, now: time.Now()}
	out, err := v.v.render(&e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", v.path, ErrSubstitution, err)
	}
	return out, nil
}

// Query evaluates a JMESPath expression (Kyverno's functions included) against doc, with the
// budget of conditions. A field missing from an object is an error, as in Kyverno's
// interpreter.
func Query(expr string, doc any) (any, error) {
	x, err := compileVariableExpression(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid JMESPath expression %q: %w", expr, err)
	}
	e := evaluator{root: doc, now: time.Now()}
	return e.search(x)
}

// CheckExpression reports whether expr is a valid JMESPath expression with Kyverno's functions.
func CheckExpression(expr string) error {
	if _, err := compileVariableExpression(expr); err != nil {
		return fmt.Errorf("invalid JMESPath expression %q: %w", expr, err)
	}
	return nil
}
