package v1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	sigsjson "sigs.k8s.io/json"
)

// FieldError is a decoding or validation problem at one field path, e.g.
// "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys: unknown field \"foo\"".
type FieldError struct {
	Path    string // Kubernetes-style field path; empty for the document itself
	Message string
}

// Error returns "<path>: <message>" (or the message alone for the document root).
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ErrNotAPolicy is returned (wrapped) by DecodePolicy for a document that is not a kyverno.io
// ClusterPolicy or Policy.
var ErrNotAPolicy = errors.New("not a kyverno.io ClusterPolicy or Policy")

// maxNesting bounds the depth of a policy document; real policies are far shallower.
const maxNesting = 64

// DecodePolicy decodes one policy document given as JSON. Unknown fields, duplicate fields and
// type mismatches are reported as FieldErrors with full field paths; every problem found is
// returned (joined with errors.Join). Kyverno's legacy forms are accepted: verifyImages written
// as one mapping, and condition lists written without any/all (read as all).
func DecodePolicy(data []byte) (*Policy, error) {
	var doc map[string]any
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &doc); err != nil {
		return nil, &FieldError{Message: "invalid JSON: " + err.Error()}
	}
	if doc == nil {
		return nil, &FieldError{Message: "document is not an object"}
	}
	if depth(doc, 0) > maxNesting {
		return nil, &FieldError{Message: fmt.Sprintf("document is nested deeper than %d levels", maxNesting)}
	}
	apiVersion, _ := doc["apiVersion"].(string)
	kind, _ := doc["kind"].(string)
	if (kind != KindClusterPolicy && kind != KindPolicy) ||
		(apiVersion != Group+"/"+Version && apiVersion != Group+"/"+VersionV2beta1) {
		return nil, fmt.Errorf("%w: apiVersion %q, kind %q", ErrNotAPolicy, apiVersion, kind)
	}
	normalizeLegacy(doc)
	normalized, err := json.Marshal(doc)
	if err != nil {
		return nil, &FieldError{Message: "re-encoding document: " + err.Error()}
	}
	p := &Policy{}
	strictErrs, err := sigsjson.UnmarshalStrict(normalized, p)
	if err != nil {
		return nil, typeError(normalized, err)
	}
	var errs []error
	for _, se := range strictErrs {
		errs = append(errs, strictError(se))
	}
	if apiVersion == Group+"/"+VersionV2beta1 {
		errs = append(errs, v2beta1Errors(p)...)
	}
	if len(errs) > 0 {
		sortFieldErrors(errs)
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// normalizeLegacy rewrites Kyverno's legacy shapes in place so the typed decoder sees one form.
func normalizeLegacy(doc map[string]any) {
	spec, _ := doc["spec"].(map[string]any)
	rules, _ := spec["rules"].([]any)
	for _, r := range rules {
		rule, ok := r.(map[string]any)
		if !ok {
			continue
		}
		if vi, ok := rule["verifyImages"].(map[string]any); ok {
			rule["verifyImages"] = []any{vi}
		}
		if list, ok := rule["preconditions"].([]any); ok {
			rule["preconditions"] = map[string]any{"all": list}
		}
		entries, _ := rule["verifyImages"].([]any)
		for _, e := range entries {
			entry, _ := e.(map[string]any)
			validate, _ := entry["validate"].(map[string]any)
			deny, _ := validate["deny"].(map[string]any)
			if list, ok := deny["conditions"].([]any); ok {
				deny["conditions"] = map[string]any{"all": list}
			}
		}
	}
}

// v2beta1Errors reports fields kyverno.io/v2beta1 does not have (spec §1.4).
func v2beta1Errors(p *Policy) []error {
	var errs []error
	for i := range p.Spec.Rules {
		rule := &p.Spec.Rules[i]
		rp := fmt.Sprintf("spec.rules[%d]", i)
		for _, m := range []struct {
			path string
			mr   *MatchResources
		}{{rp + ".match", &rule.MatchResources}, {rp + ".exclude", rule.ExcludeResources}} {
			if m.mr != nil && (!m.mr.UserInfo.IsEmpty() || !m.mr.ResourceDescription.IsEmpty()) {
				errs = append(errs, &FieldError{Path: m.path, Message: "kyverno.io/v2beta1 accepts only any/all filters here (resources, subjects, roles and clusterRoles directly under match/exclude are v1 only)"})
			}
		}
		for j := range rule.VerifyImages {
			iv := &rule.VerifyImages[j]
			ip := fmt.Sprintf("%s.verifyImages[%d]", rp, j)
			legacy := map[string]bool{
				"image": iv.Image != "", "key": iv.Key != "", "roots": iv.Roots != "",
				"subject": iv.Subject != "", "issuer": iv.Issuer != "",
				"additionalExtensions": iv.AdditionalExtensions != nil,
				"annotations":          iv.Annotations != nil, "cosignOCI11": iv.CosignOCI11,
			}
			for _, f := range sortedTrue(legacy) {
				errs = append(errs, &FieldError{Path: ip + "." + f, Message: "unknown field (not in kyverno.io/v2beta1; use kyverno.io/v1)"})
			}
		}
	}
	return errs
}

func sortedTrue(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// strictError turns a sigs.k8s.io/json strict error into a FieldError with the field path.
func strictError(err error) error {
	var fe sigsjson.FieldError
	if !errors.As(err, &fe) {
		return &FieldError{Message: err.Error()}
	}
	msg := "unknown field"
	if strings.HasPrefix(err.Error(), "duplicate field") {
		msg = "duplicate field"
	}
	return &FieldError{Path: fe.FieldPath(), Message: msg}
}

// typeError re-decodes with encoding/json to obtain the offset of a type mismatch and reports
// it at the indexed field path.
func typeError(data []byte, err error) error {
	var te *json.UnmarshalTypeError
	if err2 := json.Unmarshal(data, &Policy{}); errors.As(err2, &te) {
		return &FieldError{
			Path:    pathAtOffset(data, te.Offset),
			Message: fmt.Sprintf("invalid type: got %s, want %s", te.Value, typeName(te.Type.String())),
		}
	}
	return &FieldError{Message: err.Error()}
}

func typeName(t string) string {
	switch {
	case t == "string", t == "bool":
		return map[string]string{"string": "string", "bool": "boolean"}[t]
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "*int"):
		return "integer"
	case strings.HasPrefix(t, "[]"):
		return "list"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "."):
		return "object"
	}
	return strings.TrimPrefix(t, "v1.")
}

// pathAtOffset returns the field path of the JSON value at which encoding/json reported a type
// mismatch (its UnmarshalTypeError.Offset: just after a scalar, or just after the opening
// delimiter of an object or array).
func pathAtOffset(data []byte, offset int64) string {
	path, _ := walkTo(json.NewDecoder(bytes.NewReader(data)), "", offset)
	return path
}

// walkTo consumes one JSON value and reports whether the value at offset lies within it.
func walkTo(dec *json.Decoder, path string, offset int64) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return path, true
	}
	d, isDelim := tok.(json.Delim)
	if !isDelim || dec.InputOffset() >= offset {
		return path, dec.InputOffset() >= offset
	}
	for i := 0; dec.More(); i++ {
		child := path + "[" + strconv.Itoa(i) + "]"
		if d == '{' {
			key, err := dec.Token()
			if err != nil {
				return path, true
			}
			child = joinPath(path, fmt.Sprint(key))
		}
		if p, found := walkTo(dec, child, offset); found {
			return p, true
		}
	}
	_, _ = dec.Token() // closing delimiter
	return path, dec.InputOffset() >= offset
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func depth(v any, d int) int {
	if d > maxNesting {
		return d
	}
	max := d
	switch t := v.(type) {
	case map[string]any:
		for _, c := range t {
			if n := depth(c, d+1); n > max {
				max = n
			}
		}
	case []any:
		for _, c := range t {
			if n := depth(c, d+1); n > max {
				max = n
			}
		}
	}
	return max
}

func sortFieldErrors(errs []error) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}
