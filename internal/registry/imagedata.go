package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vouchproject/vouch/internal/imageref"
)

// defaultPlatform is the platform whose manifest an index stands for in image data, as
// go-containerregistry's remote.Image (and so Kyverno) picks it.
var defaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// ImageData returns what Kyverno's imageRegistry context entry holds for a reference: image
// (as given), resolvedImage (<repository>@<digest the reference resolves to>), registry,
// repository, identifier (the tag or digest given), manifest (of the image; for an index, of
// its linux/amd64 image) and configData (that image's config). Every body is read through the
// client's caps and checked against its digest; the manifest and the config must be JSON.
func (p *Pair) ImageData(ctx context.Context, ref imageref.Ref, insecure bool) (map[string]any, error) {
	c := p.Client(insecure)
	r, err := ref.Reference(c.NameOptions()...)
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Op: "image data", Ref: ref.String(), Err: err}
	}
	top, err := c.Manifest(ctx, r)
	if err != nil {
		return nil, err
	}
	desc := top
	if top.MediaType.IsIndex() {
		idx, err := top.ImageIndex()
		if err != nil {
			return nil, wrapErr("image data", ref.String(), err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, wrapErr("image data", ref.String(), err)
		}
		var chosen *v1.Descriptor
		for i := range im.Manifests {
			if m := &im.Manifests[i]; m.Platform != nil && m.Platform.Satisfies(defaultPlatform) {
				chosen = m
				break
			}
		}
		if chosen == nil {
			return nil, &Error{Code: CodeInvalid, Op: "image data", Ref: ref.String(), Err: fmt.Errorf("the index has no %s image", defaultPlatform.String())}
		}
		if desc, err = c.Manifest(ctx, r.Context().Digest(chosen.Digest.String())); err != nil {
			return nil, err
		}
	}
	var manifest map[string]any
	if err := json.Unmarshal(desc.Manifest, &manifest); err != nil {
		return nil, &Error{Code: CodeInvalid, Op: "image data", Ref: ref.String(), Err: fmt.Errorf("the manifest is not a JSON object: %w", err)}
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Op: "image data", Ref: ref.String(), Err: fmt.Errorf("not an image manifest: %w", err)}
	}
	cfg, err := c.Blob(ctx, r.Context().Digest(m.Config.Digest.String()))
	if err != nil {
		return nil, err
	}
	var config any
	if err := json.Unmarshal(cfg, &config); err != nil {
		return nil, &Error{Code: CodeInvalid, Op: "image data", Ref: ref.String(), Err: fmt.Errorf("the config is not JSON: %w", err)}
	}
	return map[string]any{
		"image":         ref.Original,
		"resolvedImage": r.Context().Name() + "@" + top.Digest.String(),
		"registry":      r.Context().RegistryStr(),
		"repository":    r.Context().RepositoryStr(),
		"identifier":    r.Identifier(),
		"manifest":      manifest,
		"configData":    config,
	}, nil
}
