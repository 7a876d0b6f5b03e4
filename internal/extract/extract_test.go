package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vouchproject/vouch/internal/imageref"
)

const digest = "sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f"

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("decoding test object: %v", err)
	}
	return m
}

func ref(t testing.TB, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const podSpec = `{
	"imagePullSecrets": [{"name": "regcred"}, {"name": "other"}, {"bogus": 1}],
	"initContainers": [{"name": "init", "image": "busybox"}],
	"containers": [
		{"name": "app", "image": "nginx:1.25"},
		{"name": "blank", "image": "  "},
		{"name": "noimage"},
		{"name": "nullimage", "image": null},
		null,
		{"name": "pinned", "image": "ghcr.io/kyverno/zulu:v0.0.14@` + digest + `"}
	],
	"ephemeralContainers": [{"name": "debug", "image": "busybox:1.36"}]
}`

// podImages is what podSpec yields, under the pod spec pointer base.
func podImages(t testing.TB, base string) []Image {
	secrets := []string{"regcred", "other"}
	return []Image{
		{Group: "initContainers", Key: "init", Pointer: base + "/initContainers/0/image", Written: "busybox", Ref: ref(t, "busybox"), PullSecrets: secrets},
		{Group: "containers", Key: "app", Pointer: base + "/containers/0/image", Written: "nginx:1.25", Ref: ref(t, "nginx:1.25"), PullSecrets: secrets},
		{Group: "containers", Key: "pinned", Pointer: base + "/containers/5/image", Written: "ghcr.io/kyverno/zulu:v0.0.14@" + digest, Ref: ref(t, "ghcr.io/kyverno/zulu:v0.0.14@"+digest), PullSecrets: secrets},
		{Group: "ephemeralContainers", Key: "debug", Pointer: base + "/ephemeralContainers/0/image", Written: "busybox:1.36", Ref: ref(t, "busybox:1.36"), PullSecrets: secrets},
	}
}

func TestImagesDefaults(t *testing.T) {
	t.Parallel()
	controller := `{"kind": "%s", "spec": {"template": {"spec": ` + podSpec + `}}}`
	tests := []struct {
		kind string
		obj  string
		base string
	}{
		{kind: "Pod", obj: `{"kind": "Pod", "spec": ` + podSpec + `}`, base: "/spec"},
		{kind: "DaemonSet", obj: fmt.Sprintf(controller, "DaemonSet"), base: "/spec/template/spec"},
		{kind: "Deployment", obj: fmt.Sprintf(controller, "Deployment"), base: "/spec/template/spec"},
		{kind: "ReplicaSet", obj: fmt.Sprintf(controller, "ReplicaSet"), base: "/spec/template/spec"},
		{kind: "ReplicationController", obj: fmt.Sprintf(controller, "ReplicationController"), base: "/spec/template/spec"},
		{kind: "StatefulSet", obj: fmt.Sprintf(controller, "StatefulSet"), base: "/spec/template/spec"},
		{kind: "Job", obj: fmt.Sprintf(controller, "Job"), base: "/spec/template/spec"},
		{kind: "CronJob", obj: `{"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": ` + podSpec + `}}}}}`, base: "/spec/jobTemplate/spec/template/spec"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			if !DefaultKinds(tt.kind) {
				t.Errorf("DefaultKinds(%q) = false", tt.kind)
			}
			obj := decode(t, tt.obj)
			for _, custom := range []map[string][]Config{nil, {"Other": {{Path: "/spec/x"}}}} {
				got, err := Images(obj, tt.kind, custom)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(podImages(t, tt.base), got); diff != "" {
					t.Errorf("Images mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestImagesNoExtractor(t *testing.T) {
	t.Parallel()
	obj := decode(t, `{"kind": "ConfigMap", "spec": {"containers": [{"name": "a", "image": "Not An Image"}]}}`)
	for _, kind := range []string{"ConfigMap", "pod", "Task", ""} {
		if DefaultKinds(kind) {
			t.Errorf("DefaultKinds(%q) = true", kind)
		}
		for _, custom := range []map[string][]Config{nil, {"Pod": {{Path: "/spec/containers/*/image"}}}} {
			got, err := Images(obj, kind, custom)
			if err != nil || len(got) != 0 {
				t.Errorf("Images(kind %q) = %v, %v; want none", kind, got, err)
			}
		}
	}
	// Objects without the expected fields have no images either.
	for _, s := range []string{`{}`, `{"spec": null}`, `{"spec": {}}`, `{"spec": {"containers": null}}`, `{"spec": {"containers": []}}`} {
		got, err := Images(decode(t, s), "Pod", nil)
		if err != nil || len(got) != 0 {
			t.Errorf("Images(%s) = %v, %v; want none", s, got, err)
		}
	}
	if got, err := Images(nil, "Pod", nil); err != nil || len(got) != 0 {
		t.Errorf("Images(nil) = %v, %v; want none", got, err)
	}
}

func TestImagesCustom(t *testing.T) {
	t.Parallel()
	tekton := `{"kind": "Task", "spec": {"steps": [
		{"name": "build", "image": "golang:1.26"},
		{"name": "push", "image": "gcr.io/kaniko-project/executor:v1"},
		{"name": "noop", "image": ""}
	]}}`
	tests := []struct {
		name   string
		obj    string
		kind   string
		custom map[string][]Config
		want   func(t testing.TB) []Image
	}{
		{
			name:   "simple path",
			obj:    tekton,
			kind:   "Task",
			custom: map[string][]Config{"Task": {{Path: "/spec/steps/*/image"}}},
			want: func(t testing.TB) []Image {
				return []Image{
					{Group: "custom", Key: "/spec/steps/0/image", Pointer: "/spec/steps/0/image", Written: "golang:1.26", Ref: ref(t, "golang:1.26")},
					{Group: "custom", Key: "/spec/steps/1/image", Pointer: "/spec/steps/1/image", Written: "gcr.io/kaniko-project/executor:v1", Ref: ref(t, "gcr.io/kaniko-project/executor:v1")},
				}
			},
		},
		{
			name:   "value, key and name",
			obj:    tekton,
			kind:   "Task",
			custom: map[string][]Config{"Task": {{Path: "/spec/steps/*", Value: "image", Key: "name", Name: "steps"}}},
			want: func(t testing.TB) []Image {
				return []Image{
					{Group: "steps", Key: "build", Pointer: "/spec/steps/0/image", Written: "golang:1.26", Ref: ref(t, "golang:1.26")},
					{Group: "steps", Key: "push", Pointer: "/spec/steps/1/image", Written: "gcr.io/kaniko-project/executor:v1", Ref: ref(t, "gcr.io/kaniko-project/executor:v1")},
				}
			},
		},
		{
			name:   "segments trimmed of spaces",
			obj:    tekton,
			kind:   "Task",
			custom: map[string][]Config{"Task": {{Path: " spec / steps//* / image "}}},
			want: func(t testing.TB) []Image {
				return []Image{
					{Group: "custom", Key: "/spec/steps/0/image", Pointer: "/spec/steps/0/image", Written: "golang:1.26", Ref: ref(t, "golang:1.26")},
					{Group: "custom", Key: "/spec/steps/1/image", Pointer: "/spec/steps/1/image", Written: "gcr.io/kaniko-project/executor:v1", Ref: ref(t, "gcr.io/kaniko-project/executor:v1")},
				}
			},
		},
		{
			name: "map values in sorted key order, keys escaped",
			obj: `{"kind": "Bundle", "spec": {"images": {
				"z": {"ref": "z:1"},
				"b/x": {"ref": "b:1"},
				"a~y": {"ref": "a:1"}
			}}}`,
			kind:   "Bundle",
			custom: map[string][]Config{"Bundle": {{Path: "/spec/images/*/ref"}}},
			want: func(t testing.TB) []Image {
				return []Image{
					{Group: "custom", Key: "/spec/images/a~0y/ref", Pointer: "/spec/images/a~0y/ref", Written: "a:1", Ref: ref(t, "a:1")},
					{Group: "custom", Key: "/spec/images/b~1x/ref", Pointer: "/spec/images/b~1x/ref", Written: "b:1", Ref: ref(t, "b:1")},
					{Group: "custom", Key: "/spec/images/z/ref", Pointer: "/spec/images/z/ref", Written: "z:1", Ref: ref(t, "z:1")},
				}
			},
		},
		{
			name: "jmesPath trim_prefix",
			obj:  `{"kind": "DataVolume", "spec": {"source": {"registry": {"url": "docker://ghcr.io/kubevirt/fedora:40"}}}}`,
			kind: "DataVolume",
			custom: map[string][]Config{"DataVolume": {{
				Path: "/spec/source/registry/url", JMESPath: "trim_prefix(@, 'docker://')",
			}}},
			want: func(t testing.TB) []Image {
				return []Image{
					{Group: "custom", Key: "/spec/source/registry/url", Pointer: "/spec/source/registry/url", Written: "docker://ghcr.io/kubevirt/fedora:40", Ref: ref(t, "ghcr.io/kubevirt/fedora:40")},
				}
			},
		},
		{
			name:   "custom configs replace the defaults of their kind",
			obj:    `{"kind": "Pod", "spec": ` + podSpec + `}`,
			kind:   "Pod",
			custom: map[string][]Config{"Pod": {{Path: "/spec/initContainers/*/image", Name: "init"}, {Path: "/spec/ephemeralContainers/*", Value: "image", Key: "name"}}},
			want: func(t testing.TB) []Image {
				secrets := []string{"regcred", "other"}
				return []Image{
					{Group: "init", Key: "/spec/initContainers/0/image", Pointer: "/spec/initContainers/0/image", Written: "busybox", Ref: ref(t, "busybox"), PullSecrets: secrets},
					{Group: "custom", Key: "debug", Pointer: "/spec/ephemeralContainers/0/image", Written: "busybox:1.36", Ref: ref(t, "busybox:1.36"), PullSecrets: secrets},
				}
			},
		},
		{
			name:   "value at the object root",
			obj:    `{"kind": "Image", "image": "alpine:3"}`,
			kind:   "Image",
			custom: map[string][]Config{"Image": {{Path: "/image"}}},
			want: func(t testing.TB) []Image {
				return []Image{{Group: "custom", Key: "/image", Pointer: "/image", Written: "alpine:3", Ref: ref(t, "alpine:3")}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Images(decode(t, tt.obj), tt.kind, tt.custom)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want(t), got); diff != "" {
				t.Errorf("Images mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestImagesErrors(t *testing.T) {
	t.Parallel()
	task := func(custom ...Config) map[string][]Config { return map[string][]Config{"Task": custom} }
	tests := []struct {
		name   string
		obj    string
		kind   string
		custom map[string][]Config
		want   string // the whole message
	}{
		{
			name: "invalid image",
			obj:  `{"spec": {"containers": [{"name": "a", "image": "Nginx:1"}]}}`,
			kind: "Pod",
			want: "extracting image at /spec/containers/0/image: invalid image 'Nginx:1' (repository name must be lowercase)",
		},
		{
			name: "image not a string",
			obj:  `{"spec": {"containers": [{"name": "a", "image": 42}]}}`,
			kind: "Pod",
			want: "extracting image at /spec/containers/0/image: expected a string, got a number",
		},
		{
			name: "containers not a list",
			obj:  `{"spec": {"containers": "nginx"}}`,
			kind: "Pod",
			want: "extracting images at /spec/containers: expected an array, got a string",
		},
		{
			name: "containers an object",
			obj:  `{"spec": {"template": {"spec": {"containers": {"a": {"name": "a", "image": "nginx"}}}}}}`,
			kind: "Deployment",
			want: "extracting images at /spec/template/spec/containers: expected an array, got an object",
		},
		{
			name: "element not an object",
			obj:  `{"spec": {"initContainers": ["nginx"]}}`,
			kind: "Pod",
			want: "extracting images at /spec/initContainers/0: expected an object, got a string",
		},
		{
			name: "spec not an object",
			obj:  `{"spec": [1]}`,
			kind: "Pod",
			want: "extracting images at /spec: expected an object, got an array",
		},
		{
			name: "container without a name",
			obj:  `{"spec": {"containers": [{"image": "nginx"}]}}`,
			kind: "Pod",
			want: `extracting image at /spec/containers/0/image: invalid key: field "name" is missing`,
		},
		{
			name:   "key not a string",
			obj:    `{"spec": {"steps": [{"name": 7, "image": "nginx"}]}}`,
			kind:   "Task",
			custom: task(Config{Path: "/spec/steps/*", Value: "image", Key: "name"}),
			want:   `extracting image at /spec/steps/0/image: invalid key: field "name" is a number, not a string`,
		},
		{
			name:   "custom star over a scalar",
			obj:    `{"spec": {"steps": true}}`,
			kind:   "Task",
			custom: task(Config{Path: "/spec/steps/*/image"}),
			want:   "extracting images at /spec/steps: expected an array or object, got a boolean",
		},
		{
			name:   "jmesPath result not a string",
			obj:    `{"spec": {"image": "nginx"}}`,
			kind:   "Task",
			custom: task(Config{Path: "/spec/image", JMESPath: "length(@)"}),
			want:   `extracting image at /spec/image: jmesPath "length(@)" must produce a string, but produced a number`,
		},
		{
			name:   "jmesPath unknown function",
			obj:    `{"spec": {"image": "nginx"}}`,
			kind:   "Task",
			custom: task(Config{Path: "/spec/image", JMESPath: "image_normalize(@)"}),
			want:   `extracting image at /spec/image: applying jmesPath "image_normalize(@)": unknown function: image_normalize`,
		},
		{
			name:   "jmesPath does not parse",
			obj:    `{}`,
			kind:   "Task",
			custom: task(Config{Path: "/spec/image"}, Config{Path: "/spec/image", JMESPath: "trim_prefix(@"}),
			want:   `imageExtractors.Task[1]: invalid jmesPath "trim_prefix(@" in image extractor: `,
		},
		{
			name:   "empty path",
			obj:    `{}`,
			kind:   "Task",
			custom: task(Config{Path: " / "}),
			want:   `imageExtractors.Task[0]: image extractor path " / " names no field`,
		},
		{
			name:   "star as the value field",
			obj:    `{}`,
			kind:   "Task",
			custom: task(Config{Path: "/spec/steps/*"}),
			want:   `imageExtractors.Task[0]: image extractor path "/spec/steps/*": the value field cannot be '*'`,
		},
		{
			name:   "no configs for the kind",
			obj:    `{}`,
			kind:   "Task",
			custom: task(),
			want:   `no image extractors configured for kind "Task"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Images(decode(t, tt.obj), tt.kind, tt.custom)
			if err == nil {
				t.Fatalf("Images = %v, want error %q", got, tt.want)
			}
			if msg := err.Error(); msg != tt.want && !(strings.HasSuffix(tt.want, ": ") && strings.HasPrefix(msg, tt.want)) {
				t.Errorf("error = %q\nwant    %q", msg, tt.want)
			}
		})
	}
}

func TestInvalidImageUnwraps(t *testing.T) {
	t.Parallel()
	_, err := Images(decode(t, `{"spec": {"containers": [{"name": "a", "image": "nginx@sha256:abc"}]}}`), "Pod", nil)
	var pe *imageref.ParseError
	if !errors.As(err, &pe) || !errors.Is(err, imageref.ErrInvalidFormat) {
		t.Errorf("error %v does not unwrap to the *imageref.ParseError", err)
	}
}

func TestImagesCap(t *testing.T) {
	t.Parallel()
	build := func(n int) map[string]any {
		containers := make([]any, n)
		for i := range containers {
			containers[i] = map[string]any{"name": fmt.Sprint("c", i), "image": "nginx"}
		}
		return map[string]any{"spec": map[string]any{"containers": containers}}
	}
	got, err := Images(build(MaxImages), "Pod", nil)
	if err != nil || len(got) != MaxImages {
		t.Fatalf("Images(%d containers) = %d images, %v", MaxImages, len(got), err)
	}
	_, err = Images(build(MaxImages+1), "Pod", nil)
	if want := fmt.Sprintf("extracting image at /spec/containers/%d/image: too many images: more than %d in one object", MaxImages, MaxImages); err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestPullSecretsNotShared(t *testing.T) {
	t.Parallel()
	got, err := Images(decode(t, `{"spec": `+podSpec+`}`), "Pod", nil)
	if err != nil {
		t.Fatal(err)
	}
	got[0].PullSecrets[0] = "changed"
	if got[1].PullSecrets[0] != "regcred" {
		t.Error("images share their PullSecrets backing array")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for c, ok := range map[Config]bool{
		{Path: "/spec/steps/*/image"}:                                true,
		{Path: "/spec/steps/*", Value: "image"}:                      true,
		{Path: "/spec/url", JMESPath: "trim_prefix(@, 'docker://')"}: true,
		{Path: ""}:        false,
		{Path: "/spec/*"}: false,
		{Path: "/spec/url", JMESPath: "trim_prefix("}: false,
	} {
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", c, err, ok)
		}
	}
}

// FuzzImages decodes arbitrary JSON and extracts images from it with the built-in and with
// custom extractors; nothing may panic and every image returned must be well-formed.
func FuzzImages(f *testing.F) {
	f.Add([]byte(`{"spec": ` + podSpec + `}`))
	f.Add([]byte(`{"spec": {"steps": {"a": {"image": "docker://nginx"}, "b": [1]}}}`))
	f.Add([]byte(`{"spec": {"containers": [{"name": "a", "image": "Nginx"}]}}`))
	custom := map[string][]Config{
		"Task":   {{Path: "/spec/steps/*/image", JMESPath: "trim_prefix(@, 'docker://')"}, {Path: "/spec/*/*", Value: "image", Key: "name"}},
		"Bundle": {{Path: "/*/*/*/image"}},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj map[string]any
		if json.Unmarshal(data, &obj) != nil {
			return
		}
		for _, kind := range []string{"Pod", "CronJob", "Task", "Bundle", "ConfigMap"} {
			images, err := Images(obj, kind, custom)
			if err != nil {
				continue
			}
			for _, img := range images {
				if !strings.HasPrefix(img.Pointer, "/") || img.Written == "" || img.Ref.Path == "" {
					t.Fatalf("malformed image %+v", img)
				}
			}
		}
	})
}
