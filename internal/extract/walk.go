package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vouchproject/vouch/internal/imageref"
)

// walker collects the images of one Images call.
type walker struct {
	ex     *extractor
	images []Image
}

// walk follows fields from node, whose JSON pointer is ptr, as Kyverno's extract does: '*'
// expands array elements (and, for custom extractors, map values in sorted key order); any
// other field descends into a map. A missing or null node yields nothing. imagePullSecrets
// are collected from every map descended through by name, and from the map holding the image.
func (w *walker) walk(node any, fields []string, ptr string, secrets []string) error {
	if node == nil {
		return nil
	}
	if len(fields) > 0 && fields[0] == "*" {
		return w.expand(node, fields[1:], ptr, secrets)
	}
	m, ok := node.(map[string]any)
	if !ok {
		return fmt.Errorf("extracting images at %s: expected an object, got %s", pointer(ptr), jsonType(node))
	}
	secrets = pullSecrets(m, secrets)
	if len(fields) == 0 {
		return w.leaf(m, ptr, secrets)
	}
	return w.walk(m[fields[0]], fields[1:], ptr+"/"+escape(fields[0]), secrets)
}

func (w *walker) expand(node any, fields []string, ptr string, secrets []string) error {
	switch n := node.(type) {
	case []any:
		for i, v := range n {
			if err := w.walk(v, fields, ptr+"/"+strconv.Itoa(i), secrets); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if w.ex.listsOnly {
			return fmt.Errorf("extracting images at %s: expected an array, got an object", pointer(ptr))
		}
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := w.walk(n[k], fields, ptr+"/"+escape(k), secrets); err != nil {
				return err
			}
		}
		return nil
	}
	want := "an array or object"
	if w.ex.listsOnly {
		want = "an array"
	}
	return fmt.Errorf("extracting images at %s: expected %s, got %s", pointer(ptr), want, jsonType(node))
}

// leaf reads the key and the image of the object m, at pointer ptr.
func (w *walker) leaf(m map[string]any, ptr string, secrets []string) error {
	ex := w.ex
	ptr += "/" + escape(ex.value)
	key := ptr
	if ex.key != "" {
		v, present := m[ex.key]
		k, ok := v.(string)
		switch {
		case !present:
			return fmt.Errorf("extracting image at %s: invalid key: field %q is missing", ptr, ex.key)
		case !ok:
			return fmt.Errorf("extracting image at %s: invalid key: field %q is %s, not a string", ptr, ex.key, jsonType(v))
		}
		key = k
	}
	raw, present := m[ex.value]
	if !present || raw == nil {
		return nil
	}
	written, ok := raw.(string)
	if !ok {
		return fmt.Errorf("extracting image at %s: expected a string, got %s", ptr, jsonType(raw))
	}
	if strings.TrimSpace(written) == "" {
		return nil
	}
	value := written
	if ex.query != nil {
		v, err := ex.query.Search(written)
		if err != nil {
			return fmt.Errorf("extracting image at %s: applying jmesPath %q: %w", ptr, ex.jmesPath, err)
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("extracting image at %s: jmesPath %q must produce a string, but produced %s", ptr, ex.jmesPath, jsonType(v))
		}
		value = s
	}
	ref, err := imageref.Parse(value)
	if err != nil {
		cause := err
		if pe := (*imageref.ParseError)(nil); errors.As(err, &pe) {
			cause = pe.Err
		}
		return &imageError{pointer: ptr, image: value, err: err, cause: cause}
	}
	if len(w.images) >= MaxImages {
		return fmt.Errorf("extracting image at %s: too many images: more than %d in one object", ptr, MaxImages)
	}
	w.images = append(w.images, Image{
		Group:       ex.group,
		Key:         key,
		Pointer:     ptr,
		Written:     written,
		Ref:         ref,
		PullSecrets: slices.Clone(secrets),
	})
	return nil
}

// imageError is an invalid image string: "extracting image at <ptr>: invalid image '<v>' (<cause>)",
// Kyverno's message with the pointer. It unwraps to the *imageref.ParseError.
type imageError struct {
	pointer, image string
	err, cause     error
}

func (e *imageError) Error() string {
	return fmt.Sprintf("extracting image at %s: invalid image '%s' (%v)", e.pointer, e.image, e.cause)
}

func (e *imageError) Unwrap() error { return e.err }

// pullSecrets appends the names in m's imagePullSecrets ([{name: x}]) to secrets, without
// modifying the caller's slice. Entries of another shape are ignored, as in Kyverno.
func pullSecrets(m map[string]any, secrets []string) []string {
	list, ok := m["imagePullSecrets"].([]any)
	if !ok {
		return secrets
	}
	secrets = slices.Clip(secrets)
	for _, e := range list {
		if em, ok := e.(map[string]any); ok {
			if name, ok := em["name"].(string); ok {
				secrets = append(secrets, name)
			}
		}
	}
	return secrets
}

// escape escapes one JSON pointer reference token (RFC 6901 §3).
func escape(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// pointer names ptr in a message; the root's pointer is "" in RFC 6901, unreadable there.
func pointer(ptr string) string {
	if ptr == "" {
		return "the object root"
	}
	return ptr
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, int, int64, int32, uint, uint64, uint32, json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
