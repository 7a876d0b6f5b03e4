package extract

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jmespath-community/go-jmespath"

	"github.com/vouchproject/vouch/internal/imageref"
)

// MaxImages bounds the number of images extracted from one object, to bound the work an
// admission request can cause.
const MaxImages = 1000

// DefaultGroup is the group name of a custom extractor without a name.
const DefaultGroup = "custom"

// Config is one custom image extractor (Kyverno rule.imageExtractors[kind][i]).
type Config struct {
	Path     string // slash-separated, '*' expands arrays AND map values, e.g. "/spec/steps/*/image" or "/spec/steps/*"
	Value    string // optional field name holding the image; if empty the last path segment is the value field
	Name     string // group name, default "custom"
	Key      string // optional field used as the image key; must resolve to a string; default key = the JSON pointer
	JMESPath string // optional JMESPath applied to the string value; must yield a string
}

// Image is one image found in an object.
type Image struct {
	Group       string       // "containers", "initContainers", "ephemeralContainers", or the custom Name
	Key         string       // container name (default extractors) or custom key
	Pointer     string       // RFC 6901 JSON pointer of the field holding the image string, e.g. "/spec/template/spec/containers/0/image"
	Written     string       // the image string exactly as written in the object (before JMESPath)
	Ref         imageref.Ref // parsed (after JMESPath if any)
	PullSecrets []string     // names from imagePullSecrets found on the pod spec on the way down
}

// extractor is a compiled Config or a built-in extractor.
type extractor struct {
	group     string
	fields    []string // path segments before the value field; "*" expands
	value     string   // field holding the image
	key       string   // field holding the key; "" means the pointer
	jmesPath  string
	query     jmespath.JMESPath // compiled jmesPath, nil without one
	listsOnly bool              // '*' expands arrays only (built-in extractors)
}

// podSpecPaths are the pod spec locations of the kinds with built-in extractors.
func podSpecPaths(kind string) []string {
	switch kind {
	case "Pod":
		return []string{"spec"}
	case "DaemonSet", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "Job":
		return []string{"spec", "template", "spec"}
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	}
	return nil
}

// DefaultKinds reports whether kind has built-in extractors: Pod, DaemonSet, Deployment,
// ReplicaSet, ReplicationController, StatefulSet, Job and CronJob (group and version are not
// considered, as in Kyverno).
func DefaultKinds(kind string) bool {
	return podSpecPaths(kind) != nil
}

// defaults returns the built-in extractors of kind, nil if it has none.
func defaults(kind string) []extractor {
	base := podSpecPaths(kind)
	if base == nil {
		return nil
	}
	out := make([]extractor, 0, 3)
	for _, group := range []string{"initContainers", "containers", "ephemeralContainers"} {
		fields := append(append(make([]string, 0, len(base)+2), base...), group, "*")
		out = append(out, extractor{group: group, fields: fields, value: "image", key: "name", listsOnly: true})
	}
	return out
}

// Validate reports whether the configuration can be compiled: its path must name a value
// field and its jmesPath, if any, must parse.
func (c Config) Validate() error {
	_, err := c.compile()
	return err
}

// compile turns a Config into an extractor as Kyverno's lookupImageExtractor does: path
// segments are trimmed of spaces and empty ones dropped; without Value, the last segment is
// the value field.
func (c Config) compile() (extractor, error) {
	var fields []string
	for _, seg := range strings.Split(c.Path, "/") {
		if seg = strings.Trim(seg, " "); seg != "" {
			fields = append(fields, seg)
		}
	}
	ex := extractor{group: c.Name, fields: fields, value: c.Value, key: c.Key, jmesPath: c.JMESPath}
	if ex.group == "" {
		ex.group = DefaultGroup
	}
	if ex.value == "" {
		if len(fields) == 0 {
			return extractor{}, fmt.Errorf("image extractor path %q names no field", c.Path)
		}
		ex.value, ex.fields = fields[len(fields)-1], fields[:len(fields)-1]
	}
	if ex.value == "*" {
		return extractor{}, fmt.Errorf("image extractor path %q: the value field cannot be '*'", c.Path)
	}
	if c.JMESPath != "" {
		q, err := jmespath.Compile(c.JMESPath, kyvernoFunctions()...)
		if err != nil {
			return extractor{}, fmt.Errorf("invalid jmesPath %q in image extractor: %w", c.JMESPath, err)
		}
		ex.query = q
	}
	return ex, nil
}

// kyvernoFunctions are the Kyverno JMESPath functions available to imageExtractors. Kyverno
// has many more; an expression using another one fails with "unknown function".
func kyvernoFunctions() []jmespath.FunctionEntry {
	return []jmespath.FunctionEntry{{
		Name: "trim_prefix",
		Arguments: []jmespath.ArgSpec{
			{Types: []jmespath.JpType{jmespath.JpString}},
			{Types: []jmespath.JpType{jmespath.JpString}},
		},
		Handler: func(args []any) (any, error) {
			s, ok1 := args[0].(string)
			prefix, ok2 := args[1].(string)
			if !ok1 || !ok2 {
				return nil, errors.New("trim_prefix: arguments must be strings")
			}
			return strings.TrimPrefix(s, prefix), nil
		},
	}}
}

// extractors returns the extractors that apply to kind: the custom ones when custom has an
// entry for kind, else the built-in ones.
func extractors(kind string, custom map[string][]Config) ([]extractor, error) {
	configs, ok := custom[kind]
	if !ok {
		return defaults(kind), nil
	}
	if len(configs) == 0 {
		return nil, fmt.Errorf("no image extractors configured for kind %q", kind)
	}
	out := make([]extractor, 0, len(configs))
	for i, c := range configs {
		ex, err := c.compile()
		if err != nil {
			return nil, fmt.Errorf("imageExtractors.%s[%d]: %w", kind, i, err)
		}
		out = append(out, ex)
	}
	return out, nil
}

// Images extracts images from obj of the given kind. custom maps kind -> configs (a rule's imageExtractors);
// when custom is non-nil and has an entry for kind, those configs replace the defaults for that kind;
// when custom is non-nil but has no entry for kind, the built-in extractors are used.
//
// Kinds without extractors yield no images and no error. Empty and whitespace-only image
// strings, and missing or null image fields, are ignored. Anything else that is not a valid
// image reference, and any unexpected shape on the way to it, is an error naming the JSON
// pointer.
func Images(obj map[string]any, kind string, custom map[string][]Config) ([]Image, error) {
	exs, err := extractors(kind, custom)
	if err != nil {
		return nil, err
	}
	w := walker{}
	for i := range exs {
		w.ex = &exs[i]
		if err := w.walk(obj, w.ex.fields, "", nil); err != nil {
			return nil, err
		}
	}
	return w.images, nil
}
