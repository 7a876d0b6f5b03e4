package conditions

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrSubstitution marks an error resolving a `{{ }}` variable (Kyverno: "variable substitution
// failed"); match it with errors.Is.
var ErrSubstitution = errors.New("variable substitution failed")

// template is a string with `{{ expression }}` variables (kyverno
// pkg/engine/variables/vars.go). A string that is exactly one variable keeps the JSON type of
// the result; otherwise each result is embedded, strings as they are and anything else as
// JSON (null for null). `\{{ x }}` is the literal text `{{ x }}`. Variables nest: in
// `{{ a.{{ b }} }}` the inner result is embedded in the outer expression's text.
//
// Unlike Kyverno, text that results from a substitution is never scanned for variables again
// (see doc.go).
type template struct {
	text  string // the literal text when there are no variables
	parts []part
	whole bool // exactly one variable and no text
}

// part is literal text or a variable.
type part struct {
	text string
	v    *variable
}

// variable is one `{{ }}`: a compiled expression, or for nested variables the pieces of the
// expression's text.
type variable struct {
	raw    string
	expr   *expression
	pieces []part
}

func compileTemplate(s string) (*template, error) {
	parts := parseParts(s)
	t := &template{parts: parts}
	switch {
	case len(parts) == 0:
		t.parts = nil
	case len(parts) == 1 && parts[0].v == nil:
		t.text, t.parts = parts[0].text, nil
	case len(parts) == 1:
		t.whole = true
	}
	if err := compileVariables(t.parts); err != nil {
		return nil, err
	}
	return t, nil
}

func compileVariables(parts []part) error {
	for _, p := range parts {
		if p.v == nil {
			continue
		}
		if err := compileVariables(p.v.pieces); err != nil {
			return err
		}
		if len(p.v.pieces) > 1 || len(p.v.pieces) == 1 && p.v.pieces[0].v != nil {
			continue // nested: compiled when evaluated
		}
		src := ""
		if len(p.v.pieces) == 1 {
			src = p.v.pieces[0].text
		}
		x, err := compileVariableExpression(src)
		if err != nil {
			return fmt.Errorf("invalid variable %s: %w", p.v.raw, err)
		}
		p.v.expr, p.v.pieces = x, nil
	}
	return nil
}

func compileVariableExpression(src string) (*expression, error) {
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, errors.New("empty expression")
	}
	return compileExpression(src)
}

// isStatic reports whether the template has no variables.
func (t *template) isStatic() bool { return len(t.parts) == 0 }

// render substitutes the variables.
func (t *template) render(e *evaluator) (any, error) {
	if t.isStatic() {
		return t.text, nil
	}
	if t.whole {
		return t.parts[0].v.resolve(e)
	}
	return renderParts(e, t.parts)
}

func renderParts(e *evaluator, parts []part) (string, error) {
	var b strings.Builder
	for _, p := range parts {
		if p.v == nil {
			b.WriteString(p.text)
			continue
		}
		x, err := p.v.resolve(e)
		if err != nil {
			return "", err
		}
		s, err := embed(x)
		if err != nil {
			return "", fmt.Errorf("failed to resolve %s: %w", p.v.raw, err)
		}
		b.WriteString(s)
		if b.Len() > maxStringBytes {
			return "", fmt.Errorf("substituting %s: %w", p.v.raw, ErrBudget)
		}
	}
	return b.String(), nil
}

// embed renders a variable's value inside a longer string.
func embed(x any) (string, error) {
	if s, ok := x.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(x)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// resolve evaluates the variable's expression against the document.
func (v *variable) resolve(e *evaluator) (any, error) {
	x := v.expr
	if x == nil {
		src, err := renderParts(e, v.pieces)
		if err != nil {
			return nil, err
		}
		if x, err = compileVariableExpression(src); err != nil {
			if e.lenient {
				return "", nil
			}
			return nil, fmt.Errorf("failed to resolve %s: invalid expression %q: %w", v.raw, strings.TrimSpace(src), err)
		}
	}
	out, err := e.search(x)
	if err != nil {
		if e.lenient && !e.exceeded && !errors.Is(err, ErrBudget) {
			return "", nil
		}
		return nil, fmt.Errorf("failed to resolve %s: JMESPath query failed: %w", v.raw, err)
	}
	return out, nil
}

// parseParts splits s into literal text and variables, Kyverno's way: a variable is `{{`, then
// characters other than braces, single-brace groups without braces inside (`{a: b}`) or nested
// variables, then `}}`; anything that does not close that way is literal text.
func parseParts(s string) []part {
	var parts []part
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, part{text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(s); {
		if s[i] == '\\' && strings.HasPrefix(s[i+1:], "{{") {
			if end, _, ok := scanVariable(s, i+1, false); ok {
				text.WriteString(s[i+1 : end])
				i = end
				continue
			}
		}
		if strings.HasPrefix(s[i:], "{{") {
			if end, pieces, ok := scanVariable(s, i, true); ok {
				flush()
				parts = append(parts, part{v: &variable{raw: s[i:end], pieces: pieces}})
				i = end
				continue
			}
		}
		text.WriteByte(s[i])
		i++
	}
	flush()
	return parts
}

// scanVariable scans the variable starting at s[start:] ("{{") and returns the index after its
// closing "}}" and the pieces of its expression text.
func scanVariable(s string, start int, nested bool) (int, []part, bool) {
	var pieces []part
	var text strings.Builder
	for i := start + 2; i < len(s); {
		switch s[i] {
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				if text.Len() > 0 || len(pieces) == 0 {
					pieces = append(pieces, part{text: text.String()})
				}
				return i + 2, pieces, true
			}
			return 0, nil, false
		case '{':
			if i+1 < len(s) && s[i+1] == '{' {
				if !nested {
					return 0, nil, false
				}
				end, inner, ok := scanVariable(s, i, true)
				if !ok {
					return 0, nil, false
				}
				if text.Len() > 0 {
					pieces = append(pieces, part{text: text.String()})
					text.Reset()
				}
				pieces = append(pieces, part{v: &variable{raw: s[i:end], pieces: inner}})
				i = end
				continue
			}
			j := strings.IndexAny(s[i+1:], "{}")
			if j < 0 || s[i+1+j] == '{' {
				return 0, nil, false
			}
			text.WriteString(s[i : i+2+j])
			i += 2 + j
		default:
			text.WriteByte(s[i])
			i++
		}
	}
	return 0, nil, false
}
