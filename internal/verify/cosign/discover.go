package cosign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"

	"github.com/vouchproject/vouch/internal/verify"
)

// Artifact and media types of the layouts users' signing tools write (TOOLCHAIN.md).
const (
	// ArtifactCosignSignature is cosign v2's experimental OCI 1.1 signature referrer
	// (COSIGN_EXPERIMENTAL=1 --registry-referrers-mode=oci-1-1): simple-signing layers.
	ArtifactCosignSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// ArtifactCosignAttestation is cosign's experimental OCI 1.1 attestation referrer.
	ArtifactCosignAttestation = "application/vnd.dev.cosign.artifact.att.v1+json"
	// ArtifactInToto is cosign's attestation referrer (WriteAttestationsReferrer): DSSE layers.
	ArtifactInToto = "application/vnd.in-toto+json"
	// BundleMediaTypePrefix starts the artifact (and layer) type of a Sigstore bundle referrer,
	// cosign v3's default layout: application/vnd.dev.sigstore.bundle.v0.3+json, or
	// application/vnd.dev.sigstore.bundle+json;version=0.1 / 0.2.
	BundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// MediaTypeDSSE is the layer type of a DSSE envelope (cosign .att tags and referrers).
	MediaTypeDSSE = "application/vnd.dsse.envelope.v1+json"
	// mediaTypeEmpty is the OCI empty descriptor: some registries (go-containerregistry's)
	// report a referrer's config media type as its artifactType, which for cosign v3 bundles
	// is this.
	mediaTypeEmpty = "application/vnd.oci.empty.v1+json"
)

// Limits of discovery (DESIGN §6): every list, count and payload is capped, and more is an
// error, never a silent truncation.
const (
	// DefaultMaxReferrers is the most referrers read per image (Kyverno's limit, spec §3.11).
	DefaultMaxReferrers = 50
	// DefaultMaxPayloadBytes caps one signature layer, DSSE envelope or bundle (Kyverno's
	// bundle layer limit, spec §3.11).
	DefaultMaxPayloadBytes = 10_000_000
	// maxReferrerLayers caps the layers of one referrer manifest.
	maxReferrerLayers = 16
)

// referrerKind is what a referrer holds, by its artifact type.
type referrerKind int

const (
	kindOther       referrerKind = iota
	kindCosignSig                // simple-signing layers (cosign v2, OCI 1.1 layout)
	kindCosignAtt                // DSSE layers (cosign attestations as referrers)
	kindBundle                   // one Sigstore bundle layer (cosign v3)
	kindUnknownType              // the registry did not report an artifactType: read the manifest
)

func classify(artifactType string) referrerKind {
	switch {
	case strings.HasPrefix(artifactType, BundleMediaTypePrefix):
		return kindBundle
	case artifactType == ArtifactCosignSignature:
		return kindCosignSig
	case artifactType == ArtifactCosignAttestation, artifactType == ArtifactInToto, artifactType == MediaTypeDSSE:
		return kindCosignAtt
	case artifactType == "", artifactType == mediaTypeEmpty, artifactType == string(types.OCIConfigJSON):
		return kindUnknownType
	}
	return kindOther
}

// referrer is one manifest whose subject is the image, with the listing that named it.
type referrer struct {
	desc  v1.Descriptor
	kind  referrerKind
	route string // verify.RouteOCI11Referrer or verify.RouteReferrersTagSchema
	// artifactType as read from the manifest when the listing did not say.
	artifactType string
}

// referrerList is the referrers of one image in one repository, and why some could not be
// read (kept to explain a failure, never to pass one).
type referrerList struct {
	items    []referrer
	problems []string
}

// source is where a subject's signatures and attestations are read: the digest in the
// image's repository, the repository that holds the signatures (the attestor's or entry's
// repository override, for the cosign layouts), and the registry options.
type source struct {
	digest  name.Digest     // the image, in its own repository
	sigRepo name.Repository // where signatures are stored
	hash    v1.Hash
	remote  []remote.Option
	ropts   []ociremote.Option // remote, plus the target repository when overridden
}

// in returns the digest reference of the image in the signature repository.
func (src *source) in(repo name.Repository) name.Digest { return repo.Digest(src.digest.DigestStr()) }

// listReferrers lists the referrers of the image in repo once per evaluation (the subject's
// memo): the OCI 1.1 referrers API, else the sha256-<hex> referrers tag schema (ggcr's
// remote.Referrers). When the API answered, the tag-schema index is read too if it exists
// (tools that wrote it before the registry gained the API, or that always write it), and
// each referrer carries the listing that found it. Referrers with no artifactType are
// classified by their manifest.
func (v *Verifier) listReferrers(ctx context.Context, s verify.Subject, src *source, repo name.Repository) (*referrerList, error) {
	d := src.in(repo)
	got, err := s.Memo.Do("cosign-referrers:"+d.String(), func() (any, error) {
		idx, err := remote.Referrers(d, src.remote...)
		if err != nil {
			return nil, registryError("listing the referrers of "+d.String(), err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, registryError("reading the referrers of "+d.String(), err)
		}
		route := verify.RouteOCI11Referrer
		var extra []v1.Descriptor
		if len(im.Manifests) > 0 {
			// Which listing answered: the tag-schema index has the same digest as what
			// remote.Referrers returned exactly when it came from the tag.
			if route, extra, err = v.tagSchema(d, idx, src.remote); err != nil {
				return nil, err
			}
		}
		list := &referrerList{}
		seen := map[v1.Hash]bool{}
		add := func(descs []v1.Descriptor, route string) error {
			for _, desc := range descs {
				if seen[desc.Digest] {
					continue
				}
				seen[desc.Digest] = true
				if len(list.items) >= v.maxReferrers {
					return verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("failed to fetch referrers: too many referrers found for %s, max limit is %d", d, v.maxReferrers), nil)
				}
				list.items = append(list.items, referrer{desc: desc, kind: classify(desc.ArtifactType), route: route, artifactType: desc.ArtifactType})
			}
			return nil
		}
		if err := add(im.Manifests, route); err != nil {
			return nil, err
		}
		if err := add(extra, verify.RouteReferrersTagSchema); err != nil {
			return nil, err
		}
		for i := range list.items {
			if list.items[i].kind == kindUnknownType {
				v.readArtifactType(repo, &list.items[i], src.remote, list)
			}
		}
		return list, nil
	})
	if err != nil {
		return nil, err
	}
	return got.(*referrerList), nil
}

// tagSchema tells whether the referrers index came from the referrers API or from the
// tag-schema fallback, and returns the entries of a tag-schema index that exists beside an
// answering API.
func (v *Verifier) tagSchema(d name.Digest, fromReferrers v1.ImageIndex, ropts []remote.Option) (string, []v1.Descriptor, error) {
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1))
	desc, err := remote.Head(tag, ropts...)
	var terr *transport.Error
	switch {
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return verify.RouteOCI11Referrer, nil, nil
	case err != nil:
		return "", nil, registryError("reading the referrers tag "+tag.String(), err)
	}
	got, err := fromReferrers.Digest()
	if err != nil {
		return "", nil, registryError("reading the referrers of "+d.String(), err)
	}
	if got == desc.Digest {
		return verify.RouteReferrersTagSchema, nil, nil
	}
	idx, err := remote.Index(tag, ropts...)
	if err != nil {
		return "", nil, registryError("reading the referrers tag "+tag.String(), err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", nil, registryError("reading the referrers tag "+tag.String(), err)
	}
	return verify.RouteOCI11Referrer, im.Manifests, nil
}

// readArtifactType reads a referrer's manifest to learn its artifactType (the manifest's, else
// its config media type), for registries whose listing does not carry it.
func (v *Verifier) readArtifactType(repo name.Repository, r *referrer, ropts []remote.Option, list *referrerList) {
	raw, err := remote.Get(repo.Digest(r.desc.Digest.String()), ropts...)
	if err != nil {
		list.problems = append(list.problems, fmt.Sprintf("reading referrer %s: %v", r.desc.Digest, err))
		return
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw.Manifest))
	if err != nil {
		r.kind = kindOther // an index or something else: not a signature layout
		return
	}
	at := m.Config.MediaType
	if m.ArtifactType != "" {
		at = types.MediaType(m.ArtifactType)
	}
	r.artifactType, r.kind = string(at), classify(string(at))
	if r.kind == kindUnknownType {
		r.kind = kindOther
	}
}

// referrerSignatures reads the simple-signing signatures of cosign's OCI 1.1 signature
// referrers (each a manifest of signature layers), once per evaluation.
func (v *Verifier) referrerSignatures(ctx context.Context, s verify.Subject, src *source, repo name.Repository, list *referrerList) ([]*candidate, []string, error) {
	return v.referrerLayers(ctx, s, src, repo, list, kindCosignSig, "cosign-referrer-signatures:")
}

// referrerAttestations reads the DSSE envelopes of cosign's attestation referrers.
func (v *Verifier) referrerAttestations(ctx context.Context, s verify.Subject, src *source, repo name.Repository, list *referrerList) ([]*candidate, []string, error) {
	return v.referrerLayers(ctx, s, src, repo, list, kindCosignAtt, "cosign-referrer-attestations:")
}

type layersResult struct {
	found    []*candidate
	problems []string
}

func (v *Verifier) referrerLayers(_ context.Context, s verify.Subject, src *source, repo name.Repository, list *referrerList, kind referrerKind, key string) ([]*candidate, []string, error) {
	got, err := s.Memo.Do(key+src.in(repo).String(), func() (any, error) {
		out := &layersResult{}
		for _, r := range list.items {
			if r.kind != kind {
				continue
			}
			ref := repo.Digest(r.desc.Digest.String())
			read, err := v.readLayers(ref, src.remote)
			if err != nil {
				if verify.Undecided(err) {
					return nil, err
				}
				out.problems = append(out.problems, fmt.Sprintf("referrer %s: %v", r.desc.Digest, err))
				continue
			}
			out.problems = append(out.problems, read.problems...)
			for _, sig := range read.sigs {
				out.found = append(out.found, &candidate{route: r.route, sig: sig, referrer: r.desc.Digest.String(),
					detail: "cosign OCI 1.1 referrer " + r.desc.Digest.String() + " (" + routeName(r.route) + ")"})
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, nil, err
	}
	res := got.(*layersResult)
	return res.found, res.problems, nil
}

// readLayers reads the layers of a cosign signature or attestation manifest completely, each
// payload capped; layers that are malformed are problems.
func (v *Verifier) readLayers(ref name.Digest, ropts []remote.Option) (*layers, error) {
	sigs, err := ociremote.Signatures(ref, ociremote.WithRemoteOptions(ropts...))
	if err != nil {
		return nil, registryError("fetching "+ref.String(), err)
	}
	m, err := sigs.Manifest()
	if err != nil {
		return nil, registryError("reading "+ref.String(), err)
	}
	if limit := min(v.maxSignatures, maxReferrerLayers); len(m.Layers) > limit {
		return nil, verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("%s holds %d layers, more than the limit of %d", ref, len(m.Layers), limit), nil)
	}
	for _, l := range m.Layers {
		if l.Size > v.maxPayload {
			return nil, verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("layer size %d exceeds %d", l.Size, v.maxPayload), nil)
		}
	}
	list, err := sigs.Get()
	if err != nil {
		return nil, registryError("reading "+ref.String(), err)
	}
	return copyLayers(list, "referrer "+ref.DigestStr())
}

// readBlob reads one layer of a referrer, at most maxPayload bytes.
func (v *Verifier) readBlob(ref name.Digest, l v1.Descriptor, ropts []remote.Option) ([]byte, error) {
	if l.Size > v.maxPayload {
		return nil, verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("layer size %d exceeds %d", l.Size, v.maxPayload), nil)
	}
	layer, err := remote.Layer(ref.Context().Digest(l.Digest.String()), ropts...)
	if err != nil {
		return nil, registryError("fetching layer "+l.Digest.String(), err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, registryError("fetching layer "+l.Digest.String(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, v.maxPayload+1))
	if err != nil {
		return nil, registryError("reading layer "+l.Digest.String(), err)
	}
	if int64(len(b)) > v.maxPayload {
		return nil, verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("layer %s exceeds %d bytes", l.Digest, v.maxPayload), nil)
	}
	if h, _, err := v1.SHA256(bytes.NewReader(b)); err != nil || h != l.Digest {
		return nil, verify.Errorf(verify.CodeInvalid, "layer "+l.Digest.String()+" does not match its digest", nil)
	}
	return b, nil
}

// routeName names a listing for messages.
func routeName(route string) string {
	if route == verify.RouteReferrersTagSchema {
		return "referrers tag schema"
	}
	return "referrers API"
}
