package registry_test

import (
	"context"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/registry"
)

// TestImageData: an imageRegistry context entry's data — the image's manifest and config, or
// for an index those of its linux/amd64 image, with resolvedImage naming the digest the
// reference resolves to — and an index without that platform or a missing image is an error.
func TestImageData(t *testing.T) {
	host := serve(t, quietRegistry())
	img, d := push(t, host, "app", "v1")
	p, err := registry.NewPair(registry.Options{Keychain: anonymous})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	parse := func(s string) imageref.Ref {
		r, err := imageref.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	data, err := p.ImageData(ctx, parse(host+"/app:v1"), true)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	if data["resolvedImage"] != d.String() || data["repository"] != "app" || data["identifier"] != "v1" || data["registry"] != host ||
		data["manifest"].(map[string]any)["config"].(map[string]any)["digest"] != cfg.String() || data["configData"].(map[string]any)["rootfs"] == nil {
		t.Fatalf("image data %v", data)
	}

	other, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	amd64, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	tag := mustTag(t, host+"/multi:v1")
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	amdCfg, _ := amd64.ConfigName()
	data, err = p.ImageData(ctx, parse(host+"/multi:v1"), true)
	if err != nil {
		t.Fatal(err)
	}
	if data["resolvedImage"] != host+"/multi@"+idxDigest.String() ||
		data["manifest"].(map[string]any)["config"].(map[string]any)["digest"] != amdCfg.String() {
		t.Fatalf("index: image data %v, want the index digest and the amd64 image's manifest", data)
	}

	armOnly := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if err := remote.WriteIndex(mustTag(t, host+"/arm:v1"), armOnly); err != nil {
		t.Fatal(err)
	}
	var rerr *registry.Error
	if _, err := p.ImageData(ctx, parse(host+"/arm:v1"), true); !errors.As(err, &rerr) || rerr.Code != registry.CodeInvalid {
		t.Errorf("index without linux/amd64: %v, want an invalid error", err)
	}
	if _, err := p.ImageData(ctx, parse(host+"/app:absent"), true); err == nil {
		t.Error("a missing image has data")
	}
}
