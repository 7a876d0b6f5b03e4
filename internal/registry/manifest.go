package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// CheckManifest reports whether body is the manifest its media type says it is (DESIGN §6:
// the digest pinned names bytes that parse as what they claim to be). An OCI or Docker v2
// image manifest needs schemaVersion 2, a config descriptor and well-formed layer
// descriptors; an OCI index or Docker manifest list needs schemaVersion 2 and well-formed
// descriptors. A mediaType field in the body must agree with the claimed media type. Bodies
// of other media types (schema 1, artifact manifests of image-spec release candidates) must be
// a JSON object.
func CheckManifest(mediaType types.MediaType, body []byte) error {
	var head struct {
		SchemaVersion *int64          `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("not a JSON manifest: %w", err)
	}
	if !mediaType.IsImage() && !mediaType.IsIndex() {
		return nil
	}
	if head.MediaType != "" && head.MediaType != mediaType {
		return fmt.Errorf("served as %s, its mediaType says %s", mediaType, head.MediaType)
	}
	if head.SchemaVersion == nil || *head.SchemaVersion != 2 {
		return fmt.Errorf("%s: schemaVersion must be 2", mediaType)
	}
	if mediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("%s: %w", mediaType, err)
		}
		for i, d := range idx.Manifests {
			if err := checkDescriptor(d); err != nil {
				return fmt.Errorf("%s: manifests[%d]: %w", mediaType, i, err)
			}
		}
		return nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", mediaType, err)
	}
	if err := checkDescriptor(m.Config); err != nil {
		return fmt.Errorf("%s: config: %w", mediaType, err)
	}
	for i, d := range m.Layers {
		if err := checkDescriptor(d); err != nil {
			return fmt.Errorf("%s: layers[%d]: %w", mediaType, i, err)
		}
	}
	return nil
}

// checkDescriptor checks the fields of a descriptor every client relies on.
func checkDescriptor(d v1.Descriptor) error {
	switch {
	case d.MediaType == "":
		return errors.New("descriptor without mediaType")
	case d.Digest == (v1.Hash{}):
		return errors.New("descriptor without digest")
	case d.Size < 0:
		return fmt.Errorf("descriptor size %d", d.Size)
	}
	return nil
}

// maxCheckedManifests bounds the digests a Pair remembers as checked manifests.
const maxCheckedManifests = 4096

// checkedManifests remembers the digests whose manifest passed CheckManifest. Validity is a
// property of the bytes, and a digest names one sequence of bytes, so one check per digest
// serves every later resolution, whatever the repository or credentials; resolutions of one
// digest at the same time share one check.
type checkedManifests struct {
	seen   *lru.Cache[v1.Hash, struct{}]
	flight singleflight.Group
}

func newCheckedManifests() *checkedManifests {
	c, _ := lru.New[v1.Hash, struct{}](maxCheckedManifests) // only a size ≤ 0 fails
	return &checkedManifests{seen: c}
}

// check fetches the manifest desc names in ref's repository (capped, verified against its
// digest) and checks it with CheckManifest, once per digest. A manifest that is not what it
// claims to be is an invalid error: the registry proved the image unusable.
func (m *checkedManifests) check(ctx context.Context, c *Client, ref name.Reference, desc v1.Descriptor) error {
	if m == nil || m.seen.Contains(desc.Digest) {
		return nil
	}
	_, err, shared := m.flight.Do(desc.Digest.String(), func() (any, error) { return nil, m.fetch(ctx, c, ref, desc) })
	if err != nil && shared && !errors.Is(err, ErrInvalid) {
		// Another caller's fetch failed under its credentials and deadline: try with ours.
		err = m.fetch(ctx, c, ref, desc)
	}
	return err
}

func (m *checkedManifests) fetch(ctx context.Context, c *Client, ref name.Reference, desc v1.Descriptor) error {
	rd, err := c.Manifest(ctx, ref.Context().Digest(desc.Digest.String()))
	if err != nil {
		return err
	}
	if err := CheckManifest(rd.MediaType, rd.Manifest); err != nil {
		return &Error{Code: CodeInvalid, Op: "resolve", Ref: ref.String(), Err: fmt.Errorf("manifest %s does not parse: %w", desc.Digest, err)}
	}
	m.seen.Add(desc.Digest, struct{}{})
	return nil
}
