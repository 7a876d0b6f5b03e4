package notary

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
)

// mediaTypeArtifactManifest is the OCI artifact manifest of image-spec 1.1 release
// candidates, which notation before 1.0 could write.
const mediaTypeArtifactManifest = "application/vnd.oci.artifact.manifest.v1+json"

// sigEntry is one Notary signature of an artifact: its manifest and envelope, or why they
// could not be read.
type sigEntry struct {
	manifest  v1.Hash
	mediaType string // the envelope's: JWS or COSE
	envelope  []byte
	err       *verify.Error
}

// signatures lists and reads the Notary signatures of target, once per subject, insecure
// setting and artifact in an evaluation. A registry failure to list them is returned; a
// failure to read one signature is kept in it, so that the others can still verify.
func (v *Verifier) signatures(ctx context.Context, s verify.Subject, insecure bool, target *artifact) ([]*sigEntry, error) {
	got, err := s.Memo.Do(fmt.Sprintf("notary-signatures:%t:%s", insecure, target.ref), func() (any, error) {
		c := v.registry(insecure)
		descs, err := v.referrers(ctx, c, target, ArtifactTypeSignature)
		if err != nil {
			return nil, err
		}
		n := len(descs)
		if n > v.maxSignatures {
			descs = descs[:v.maxSignatures]
		}
		sigs := make([]*sigEntry, 0, len(descs)+1)
		for _, d := range descs {
			sigs = append(sigs, v.readSignature(ctx, c, target, d))
		}
		if n > v.maxSignatures {
			// Tried only when none of the first ones verifies: say why the rest were not.
			sigs = append(sigs, &sigEntry{err: verify.Errorf(verify.CodeTooLarge, fmt.Sprintf(
				"signature evaluation stopped: %d signatures, more than the limit of %d to verify per artifact", n, v.maxSignatures), nil)})
		}
		return sigs, nil
	})
	if err != nil {
		return nil, err
	}
	return got.([]*sigEntry), nil
}

// referrers lists the referrers of target of one artifact type: the OCI 1.1 referrers API,
// else the referrers tag schema; more than the client's MaxReferrers is a failure.
func (v *Verifier) referrers(ctx context.Context, c *registry.Client, target *artifact, artifactType string) ([]v1.Descriptor, error) {
	d, perr := parseDigest(target.ref, c)
	if perr != nil {
		return nil, perr
	}
	descs, err := c.Referrers(ctx, d, artifactType)
	if err != nil {
		return nil, registryError("failed to fetch referrers of "+target.ref, err)
	}
	return descs, nil
}

// readSignature fetches one signature manifest and its envelope layer.
func (v *Verifier) readSignature(ctx context.Context, c *registry.Client, target *artifact, d v1.Descriptor) *sigEntry {
	sig := &sigEntry{manifest: d.Digest}
	m, err := v.readManifest(ctx, c, target, d)
	if err != nil {
		sig.err = err
		return sig
	}
	what := "signature " + d.Digest.String()
	if len(m.Layers) != 1 {
		sig.err = verify.Errorf(verify.CodeInvalid, fmt.Sprintf("%s: the signature manifest must hold exactly one envelope, it holds %d", what, len(m.Layers)), nil)
		return sig
	}
	layer := m.Layers[0]
	if layer.MediaType != MediaTypeJWS && layer.MediaType != MediaTypeCOSE {
		sig.err = verify.Errorf(verify.CodeInvalid, fmt.Sprintf("%s: unsupported envelope media type %q", what, layer.MediaType), nil)
		return sig
	}
	sig.mediaType = layer.MediaType
	if sig.envelope, sig.err = v.readBlob(ctx, c, target, layer, v.maxEnvelopeBytes, what+" envelope"); sig.err != nil {
		return sig
	}
	n, perr := envelopeChainLength(sig.mediaType, sig.envelope)
	switch {
	case perr != nil:
		sig.err = verify.Errorf(verify.CodeInvalid, fmt.Sprintf("%s: unable to parse the digital signature", what), perr)
	case n > MaxChainCertificates:
		sig.err = verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("%s: the envelope's certificate chain holds %d certificates, more than the limit of %d", what, n, MaxChainCertificates), nil)
	}
	return sig
}

// readManifest fetches a referrer's manifest (an OCI image manifest, or the artifact
// manifest of image-spec 1.1 release candidates) and checks that its subject is target.
func (v *Verifier) readManifest(ctx context.Context, c *registry.Client, target *artifact, d v1.Descriptor) (*ocispec.Manifest, *verify.Error) {
	what := "referrer " + d.Digest.String()
	if mt := string(d.MediaType); mt != ocispec.MediaTypeImageManifest && mt != mediaTypeArtifactManifest {
		return nil, verify.Errorf(verify.CodeInvalid, fmt.Sprintf("%s: unsupported manifest media type %q", what, mt), nil)
	}
	ref, perr := parseDigest(target.repo+"@"+d.Digest.String(), c)
	if perr != nil {
		return nil, perr
	}
	rd, rerr := c.Manifest(ctx, ref)
	if rerr != nil {
		return nil, registryError("fetching "+what, rerr)
	}
	var m struct {
		ocispec.Manifest
		Blobs []ocispec.Descriptor `json:"blobs"` // artifact manifest
	}
	if err := json.Unmarshal(rd.Manifest, &m); err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "decoding "+what, err)
	}
	if string(rd.MediaType) == mediaTypeArtifactManifest {
		m.Layers = m.Blobs
	}
	if m.Subject == nil || m.Subject.Digest.String() != target.desc.Digest.String() {
		return nil, verify.Errorf(verify.CodeDigestMismatch, fmt.Sprintf("%s: its subject is not %s", what, target.ref), nil)
	}
	if m.ArtifactType == "" {
		m.ArtifactType = m.Config.MediaType // notation's signatures type their config instead
	}
	return &m.Manifest, nil
}

// readBlob fetches a layer of at most limit bytes.
func (v *Verifier) readBlob(ctx context.Context, c *registry.Client, target *artifact, layer ocispec.Descriptor, limit int64, what string) ([]byte, *verify.Error) {
	if layer.Size > limit || layer.Size < 0 {
		return nil, verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("%s is %d bytes, more than the limit of %d", what, layer.Size, limit), nil)
	}
	ref, perr := parseDigest(target.repo+"@"+layer.Digest.String(), c)
	if perr != nil {
		return nil, perr
	}
	b, berr := c.Blob(ctx, ref)
	if berr != nil {
		return nil, registryError("fetching "+what, berr)
	}
	if int64(len(b)) != layer.Size {
		return nil, verify.Errorf(verify.CodeInvalid, fmt.Sprintf("%s is %d bytes, its descriptor says %d", what, len(b), layer.Size), nil)
	}
	return b, nil
}

// parseDigest parses "<repository>@<digest>" with the client's name options.
func parseDigest(ref string, c *registry.Client) (name.Digest, *verify.Error) {
	d, err := name.NewDigest(ref, append([]name.Option{name.WeakValidation}, c.NameOptions()...)...)
	if err != nil {
		return name.Digest{}, verify.Errorf(verify.CodeInvalid, "parsing reference "+ref, err)
	}
	return d, nil
}

// toOCI converts a go-containerregistry descriptor to the image-spec one notation compares.
func toOCI(d v1.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}
}
