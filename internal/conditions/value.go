package conditions

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// value is a condition key or value: JSON in which every string may hold variables.
// Kyverno substitutes strings anywhere in the key or value, object keys included.
type value struct {
	lit  any       // the value when it holds no variable (shared, never modified)
	tmpl *template // a string with variables
	list []value   // an array with variables
	keys []*template
	vals []value // an object with variables: keys[i] -> vals[i], in sorted key order
	kind byte    // 'l' literal, 't' template, 'a' array, 'o' object
}

func compileValue(v any) (value, error) {
	v, err := normalize(v)
	if err != nil {
		return value{}, err
	}
	if !hasVariables(v) {
		return value{kind: 'l', lit: v}, nil
	}
	switch x := v.(type) {
	case string:
		t, err := compileTemplate(x)
		return value{kind: 't', tmpl: t}, err
	case []any:
		out := value{kind: 'a', list: make([]value, len(x))}
		for i, e := range x {
			if out.list[i], err = compileValue(e); err != nil {
				return value{}, within(fmt.Sprintf("[%d]", i), err)
			}
		}
		return out, nil
	case map[string]any:
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		sort.Strings(names)
		out := value{kind: 'o'}
		for _, k := range names {
			kt, err := compileTemplate(k)
			if err != nil {
				return value{}, within(k, err)
			}
			vv, err := compileValue(x[k])
			if err != nil {
				return value{}, within(k, err)
			}
			out.keys, out.vals = append(out.keys, kt), append(out.vals, vv)
		}
		return out, nil
	}
	return value{kind: 'l', lit: v}, nil
}

// hasVariables reports whether a string anywhere in v holds a variable.
func hasVariables(v any) bool {
	switch x := v.(type) {
	case string:
		parts := parseParts(x)
		for _, p := range parts {
			if p.v != nil {
				return true
			}
		}
		// An escaped variable still needs rendering (the backslash goes).
		return len(parts) == 1 && parts[0].text != x
	case []any:
		for _, e := range x {
			if hasVariables(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if hasVariables(k) || hasVariables(e) {
				return true
			}
		}
	}
	return false
}

func (v *value) render(e *evaluator) (any, error) {
	switch v.kind {
	case 't':
		return v.tmpl.render(e)
	case 'a':
		out := make([]any, len(v.list))
		for i := range v.list {
			x, err := v.list[i].render(e)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case 'o':
		out := make(map[string]any, len(v.keys))
		for i, kt := range v.keys {
			k, err := kt.render(e)
			if err != nil {
				return nil, err
			}
			ks, err := embed(k)
			if err != nil {
				return nil, err
			}
			x, err := v.vals[i].render(e)
			if err != nil {
				return nil, err
			}
			out[ks] = x
		}
		return out, nil
	}
	return v.lit, nil
}

// normalize returns v in encoding/json shapes (numbers as float64), which the operators expect.
func normalize(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return v, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("value is not JSON: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// valueError is an error at a place inside a compiled value: its object keys and array
// indexes from the outside in ("attestors", "[0]", ...). It reads "attestors: [0]: <err>".
type valueError struct {
	at  []string
	err error
}

func (e *valueError) Error() string { return strings.Join(e.at, ": ") + ": " + e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

// fieldPath renders the place as a field path below a parent: parent.attestors[0].keys.
func (e *valueError) fieldPath(parent string) string {
	var b strings.Builder
	b.WriteString(parent)
	for _, s := range e.at {
		if !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// within places err at key (or index) seg of the value being compiled.
func within(seg string, err error) error {
	if ve, ok := err.(*valueError); ok {
		return &valueError{at: append([]string{seg}, ve.at...), err: ve.err}
	}
	return &valueError{at: []string{seg}, err: err}
}
