package patch

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func pod(annotations map[string]any) map[string]any {
	meta := map[string]any{"name": "p"}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta,
		"spec": map[string]any{"containers": []any{map[string]any{"name": "a", "image": "nginx"}}}}
}

func TestAnnotationsInKyvernoFormat(t *testing.T) {
	var m Metadata
	m.Record("/pol", "rule", "ghcr.io/b@sha256:1", Pass)
	m.Record("/pol", "rule", "docker.io/nginx:latest", Fail)
	m.Record("ns/other", "r2", "docker.io/nginx:latest", Pass) // worse status wins in the flat map
	ops, err := m.Operations(pod(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []Operation{
		{Op: "add", Path: "/metadata/annotations", Value: map[string]any{}},
		{Op: "add", Path: "/metadata/annotations/kyverno.io~1verify-images", Value: `{"docker.io/nginx:latest":"fail","ghcr.io/b@sha256:1":"pass"}`},
		{Op: "add", Path: "/metadata/annotations/kyverno.io~1verify-images-scoped", Value: `{"version":1,"policies":{"/pol":{"rule":{"docker.io/nginx:latest":"fail","ghcr.io/b@sha256:1":"pass"}},"ns/other":{"r2":{"docker.io/nginx:latest":"pass"}}}}`},
	}
	if diff := cmp.Diff(want, ops); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	// An object that has annotations gets no "add annotations map" op; forged values are overwritten.
	forged := pod(map[string]any{AnnotationVerified: `{"docker.io/nginx:latest":"pass"}`})
	ops, err = m.Operations(forged)
	if err != nil || len(ops) != 2 {
		t.Fatalf("ops = %v, %v", ops, err)
	}
	out, err := Apply(forged, append(ops, PinDigest("/spec/containers/0/image", "docker.io/nginx:latest@sha256:1")))
	if err != nil {
		t.Fatal(err)
	}
	ann := out["metadata"].(map[string]any)["annotations"].(map[string]any)
	if ann[AnnotationVerified] != want[1].Value {
		t.Errorf("forged annotation not overwritten: %v", ann[AnnotationVerified])
	}
	if img := out["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]; img != "docker.io/nginx:latest@sha256:1" {
		t.Errorf("image = %v", img)
	}
	if forged["metadata"].(map[string]any)["annotations"].(map[string]any)[AnnotationVerified] != `{"docker.io/nginx:latest":"pass"}` {
		t.Error("Apply modified its input")
	}
	if m.Status("/pol", "rule", "docker.io/nginx:latest") != Fail || m.Status("/pol", "x", "y") != "" {
		t.Error("Status lookup wrong")
	}
}

func TestEmptyMetadataAndEscape(t *testing.T) {
	var m Metadata
	if ops, err := m.Operations(pod(nil)); err != nil || ops != nil {
		t.Errorf("empty metadata gave %v, %v", ops, err)
	}
	if got := Escape("a/b~c"); got != "a~1b~0c" {
		t.Errorf("Escape = %q", got)
	}
	if _, err := Apply(pod(nil), []Operation{{Op: "replace", Path: "/spec/nope/0", Value: "x"}}); err == nil {
		t.Error("applying a patch to a missing path succeeded")
	}
}
