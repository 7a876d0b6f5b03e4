package patch

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzApply: on any object, Apply never panics and never modifies its input; no operations is
// a copy; the annotation operations Operations builds apply to any object whose metadata is a
// map (what the API server sends) and leave both annotations holding exactly the records, and
// nothing else changed but the annotations; a digest pin at an existing string replaces it.
// Arbitrary operations (any op, path, value) are applied or refused, never a panic.
func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"nginx"}]}}`), []byte(`[{"op":"replace","path":"/spec/containers/0/image","value":"nginx@sha256:1"}]`), "/spec/containers/0/image")
	f.Add([]byte(`{"metadata":{"annotations":{"kyverno.io/verify-images":"{\"x\":\"pass\"}"}},"spec":{}}`), []byte(`[{"op":"remove","path":"/metadata"}]`), "/spec")
	f.Add([]byte(`{"metadata":{"annotations":null}}`), []byte(`[{"op":"add","path":"/metadata/annotations/a~1b","value":1}]`), "/metadata/annotations")
	f.Add([]byte(`{"metadata":{"annotations":{"a":"b"},"name":"~/"},"x":[1,2,{"y":null}]}`), []byte(`[{"op":"move","from":"/x/0","path":"/x/-"},{"op":"copy","from":"/x","path":"/z"},{"op":"test","path":"/z/0","value":2}]`), "/x/2/y")
	f.Add([]byte(`{"metadata":"not a map"}`), []byte(`[{"op":"add","path":"","value":{}}]`), "")
	f.Add([]byte(`{"a":1e400}`), []byte(`not json`), "/a")
	f.Fuzz(func(t *testing.T, object, rawOps []byte, pointer string) {
		var obj map[string]any
		if json.Unmarshal(object, &obj) != nil || obj == nil {
			return
		}
		before, err := json.Marshal(obj)
		if err != nil {
			return // not representable as JSON (no such object comes from a request body)
		}
		unchanged := func(what string) {
			if after, _ := json.Marshal(obj); string(after) != string(before) {
				t.Fatalf("%s modified its input: %s, was %s", what, after, before)
			}
		}

		// No operations: a copy.
		cp, err := Apply(obj, nil)
		if err != nil {
			t.Fatalf("Apply(obj, nil): %v", err)
		}
		if got, _ := json.Marshal(cp); string(got) != string(before) {
			t.Fatalf("Apply(obj, nil) = %s, want %s", got, before)
		}

		// Arbitrary operations.
		var ops []Operation
		if json.Unmarshal(rawOps, &ops) == nil {
			_, _ = Apply(obj, ops)
			unchanged("Apply of arbitrary operations")
		}

		// The annotation operations, and a pin.
		var m Metadata
		m.Record("ns/pol", "rule", "docker.io/library/nginx:1", Pass)
		m.Record("/cpol", "r~/", "ghcr.io/a/b@sha256:1", Fail)
		m.RecordFlat("docker.io/library/nginx:1", Skip)
		annOps, err := m.Operations(obj)
		if err != nil {
			t.Fatalf("Operations: %v", err)
		}
		// Images are pinned where the extractors found them: never under metadata.
		target, pinnable := lookup(obj, pointer)
		if _, ok := target.(string); ok && pinnable && !strings.HasPrefix(pointer, "/metadata") {
			annOps = append(annOps, PinDigest(pointer, "pinned@sha256:1"))
		}
		out, err := Apply(obj, annOps)
		unchanged("Apply of the annotation operations")
		if _, isMap := obj["metadata"].(map[string]any); !isMap {
			return // the API server always sends metadata; the engine reports the error
		}
		if err != nil {
			t.Fatalf("annotation operations %+v do not apply to %s: %v", annOps, before, err)
		}
		ann, _ := out["metadata"].(map[string]any)["annotations"].(map[string]any)
		if len(ann) < 2 {
			t.Fatalf("annotations %v after %+v", ann, annOps)
		}
		var flat map[string]string
		if s, _ := ann[AnnotationVerified].(string); json.Unmarshal([]byte(s), &flat) != nil || flat["docker.io/library/nginx:1"] != Skip || flat["ghcr.io/a/b@sha256:1"] != Fail {
			t.Fatalf("annotation %s = %v", AnnotationVerified, ann[AnnotationVerified])
		}
		var scoped scopedJSON
		if s, _ := ann[AnnotationScoped].(string); json.Unmarshal([]byte(s), &scoped) != nil || scoped.Policies["/cpol"]["r~/"]["ghcr.io/a/b@sha256:1"] != Fail {
			t.Fatalf("annotation %s = %v", AnnotationScoped, ann[AnnotationScoped])
		}
		// Nothing else changed but the annotations (and the pinned string).
		strip := func(o map[string]any) map[string]any {
			c := map[string]any{}
			raw, _ := json.Marshal(o)
			_ = json.Unmarshal(raw, &c)
			if md, ok := c["metadata"].(map[string]any); ok {
				delete(md, "annotations")
			}
			return c
		}
		want := strip(obj)
		got := strip(out)
		if len(annOps) > 0 && annOps[len(annOps)-1].Op == "replace" && pointer != "" {
			setAt(want, pointer, "pinned@sha256:1")
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("annotation operations changed more than the annotations:\n got %v\nwant %v", got, want)
		}
	})
}

// lookup resolves an RFC 6901 pointer in a decoded JSON document.
func lookup(doc any, pointer string) (any, bool) {
	if pointer == "" || pointer[0] != '/' {
		return nil, false
	}
	cur := doc
	for _, seg := range splitPointer(pointer) {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, ok := index(seg, len(c))
			if !ok {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// setAt sets the value at an existing pointer (lookup found it).
func setAt(doc map[string]any, pointer string, v any) {
	segs := splitPointer(pointer)
	var cur any = doc
	for i, seg := range segs {
		last := i == len(segs)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[seg] = v
				return
			}
			cur = c[seg]
		case []any:
			j, _ := index(seg, len(c))
			if last {
				c[j] = v
				return
			}
			cur = c[j]
		}
	}
}

func splitPointer(pointer string) []string {
	var out []string
	seg := ""
	for i := 1; i <= len(pointer); i++ {
		if i == len(pointer) || pointer[i] == '/' {
			out = append(out, unescape(seg))
			seg = ""
			continue
		}
		seg += string(pointer[i])
	}
	return out
}

func unescape(s string) string {
	out := ""
	for i := 0; i < len(s); i++ {
		if s[i] == '~' && i+1 < len(s) && (s[i+1] == '0' || s[i+1] == '1') {
			out += map[byte]string{'0': "~", '1': "/"}[s[i+1]]
			i++
			continue
		}
		out += string(s[i])
	}
	return out
}

// index parses an array index as RFC 6901 allows: digits, no leading zero.
func index(seg string, n int) (int, bool) {
	if seg == "" || (len(seg) > 1 && seg[0] == '0') || len(seg) > 6 {
		return 0, false
	}
	i := 0
	for _, r := range seg {
		if r < '0' || r > '9' {
			return 0, false
		}
		i = i*10 + int(r-'0')
	}
	return i, i < n
}
