package patch

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// Annotation keys Kyverno writes (spec §2.8).
const (
	AnnotationVerified = "kyverno.io/verify-images"
	AnnotationScoped   = "kyverno.io/verify-images-scoped"
)

// Operation is one RFC 6902 operation.
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// PinDigest replaces the image string at pointer with the pinned reference.
func PinDigest(pointer, pinned string) Operation {
	return Operation{Op: "replace", Path: pointer, Value: pinned}
}

// Escape escapes a JSON pointer segment (RFC 6901).
func Escape(segment string) string {
	return strings.ReplaceAll(strings.ReplaceAll(segment, "~", "~0"), "/", "~1")
}

// Status values recorded in the annotations.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

var rank = map[string]int{Pass: 0, Skip: 1, Fail: 2}

// Metadata is Kyverno's image verification metadata: a flat image→status map and the scoped
// policy→rule→image→status map. When two records meet for the same key, the worse status
// wins (docs/COMPATIBILITY.md; Kyverno keeps the last written).
type Metadata struct {
	flat   map[string]string
	scoped map[string]map[string]map[string]string
}

// Record notes the status of an image for a policy (scope key "<namespace>/<name>") and rule.
func (m *Metadata) Record(policyKey, rule, image, status string) {
	if m.flat == nil {
		m.flat = map[string]string{}
		m.scoped = map[string]map[string]map[string]string{}
	}
	if old, ok := m.flat[image]; !ok || rank[status] > rank[old] {
		m.flat[image] = status
	}
	rules := m.scoped[policyKey]
	if rules == nil {
		rules = map[string]map[string]string{}
		m.scoped[policyKey] = rules
	}
	images := rules[rule]
	if images == nil {
		images = map[string]string{}
		rules[rule] = images
	}
	if old, ok := images[image]; !ok || rank[status] > rank[old] {
		images[image] = status
	}
}

// RecordFlat notes a status in the flat map only (Kyverno's record of a skipped image before
// its pin).
func (m *Metadata) RecordFlat(image, status string) {
	if m.flat == nil {
		m.flat = map[string]string{}
		m.scoped = map[string]map[string]map[string]string{}
	}
	if old, ok := m.flat[image]; !ok || rank[status] > rank[old] {
		m.flat[image] = status
	}
}

// Empty reports whether nothing was recorded.
func (m *Metadata) Empty() bool { return len(m.flat) == 0 }

// Status returns the scoped status of an image for a policy and rule, "" if none.
func (m *Metadata) Status(policyKey, rule, image string) string {
	return m.scoped[policyKey][rule][image]
}

type scopedJSON struct {
	Version  int                                     `json:"version"`
	Policies map[string]map[string]map[string]string `json:"policies"`
}

// Operations returns the annotation operations for obj, to be placed before the image
// operations: an empty annotations map when the object has none, then both annotations
// ("add" overwrites a value the object arrived with).
func (m *Metadata) Operations(obj map[string]any) ([]Operation, error) {
	if m.Empty() {
		return nil, nil
	}
	flat, err := json.Marshal(m.flat)
	if err != nil {
		return nil, err
	}
	scoped, err := json.Marshal(scopedJSON{Version: 1, Policies: m.scoped})
	if err != nil {
		return nil, err
	}
	var ops []Operation
	meta, _ := obj["metadata"].(map[string]any)
	if _, ok := meta["annotations"].(map[string]any); !ok {
		ops = append(ops, Operation{Op: "add", Path: "/metadata/annotations", Value: map[string]any{}})
	}
	return append(ops,
		Operation{Op: "add", Path: "/metadata/annotations/" + Escape(AnnotationVerified), Value: string(flat)},
		Operation{Op: "add", Path: "/metadata/annotations/" + Escape(AnnotationScoped), Value: string(scoped)},
	), nil
}

// Apply returns a copy of obj with the operations applied; obj is not modified.
func Apply(obj map[string]any, ops []Operation) (map[string]any, error) {
	doc, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		var out map[string]any
		return out, json.Unmarshal(doc, &out)
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("decoding patch: %w", err)
	}
	patched, err := p.Apply(doc)
	if err != nil {
		return nil, fmt.Errorf("applying patch: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(patched, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// SortedImages returns the recorded images in order (for messages and tests).
func (m *Metadata) SortedImages() []string {
	out := make([]string, 0, len(m.flat))
	for k := range m.flat {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
