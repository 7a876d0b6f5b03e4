package registry_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vouchproject/vouch/internal/registry"
)

// Manifests as registries serve them: an OCI image manifest with a subject (a referrer), a
// Docker v2 manifest, an OCI index, a referrers list, cosign's signature manifest.
const (
	seedOCIManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cncf.notary.signature",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
		`"layers":[{"mediaType":"application/jose+json","digest":"sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e","size":2048}],` +
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f","size":512},"annotations":{"a":"b"}}`
	seedDockerManifest = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"}]}`
	seedIndex = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e","size":512,"platform":{"architecture":"amd64","os":"linux"}},` +
		`{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f","size":300}]}`
	seedReferrers = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e","size":700,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","annotations":{"dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}}]}`
	seedCosignSignature = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"},` +
		`"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":253,"digest":"sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",` +
		`"annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ=="}}]}`
)

// TestCheckManifest: what a pinned digest may name (DESIGN §6).
func TestCheckManifest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mediaType types.MediaType
		body      string
		err       string // "" means accepted
	}{
		{"OCI manifest", types.OCIManifestSchema1, seedOCIManifest, ""},
		{"Docker manifest", types.DockerManifestSchema2, seedDockerManifest, ""},
		{"index", types.OCIImageIndex, seedIndex, ""},
		{"referrers list", types.OCIImageIndex, seedReferrers, ""},
		{"Docker list without mediaType field", types.DockerManifestList, `{"schemaVersion":2,"manifests":[]}`, ""},
		{"schema 1", types.DockerManifestSchema1Signed, `{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}`, ""},
		{"unknown type, JSON", "application/vnd.example+json", `{"a":1}`, ""},
		{"unknown type, not JSON", "application/vnd.example+json", `hello`, "not a JSON object"},
		{"JSON null", types.OCIManifestSchema1, `null`, "not a JSON object"},
		{"JSON array", types.OCIImageIndex, `[]`, "not a JSON object"},
		{"empty", types.OCIManifestSchema1, ``, "not a JSON object"},
		{"truncated", types.OCIManifestSchema1, seedOCIManifest[:100], "not a JSON manifest: unexpected end of JSON input"},
		{"trailing garbage", types.OCIManifestSchema1, seedOCIManifest + "x", "not a JSON manifest"},
		{"manifest served as index", types.OCIImageIndex, seedOCIManifest, "served as application/vnd.oci.image.index.v1+json, its mediaType says application/vnd.oci.image.manifest.v1+json"},
		{"index served as manifest", types.OCIManifestSchema1, seedIndex, "its mediaType says application/vnd.oci.image.index.v1+json"},
		{"no schemaVersion", types.OCIManifestSchema1, strings.Replace(seedOCIManifest, `"schemaVersion":2,`, "", 1), "schemaVersion must be 2"},
		{"schemaVersion 3", types.OCIImageIndex, strings.Replace(seedIndex, `"schemaVersion":2`, `"schemaVersion":3`, 1), "schemaVersion must be 2"},
		{"no config", types.OCIManifestSchema1, `{"schemaVersion":2,"layers":[]}`, "config: descriptor without mediaType"},
		{"config without digest", types.OCIManifestSchema1, `{"schemaVersion":2,"config":{"mediaType":"a","size":2}}`, "config: descriptor without digest"},
		{"bad digest", types.OCIManifestSchema1, strings.Replace(seedOCIManifest, "sha256:44136f", "sha256:zz136f", 1), "application/vnd.oci.image.manifest.v1+json"},
		{"negative size", types.OCIImageIndex, strings.Replace(seedIndex, `"size":300`, `"size":-1`, 1), "manifests[1]: descriptor size -1"},
		{"layer without mediaType", types.DockerManifestSchema2, strings.Replace(seedDockerManifest, `"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",`, "", 1), "layers[0]: descriptor without mediaType"},
	}
	for _, tc := range tests {
		err := registry.CheckManifest(tc.mediaType, []byte(tc.body))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}

// FuzzCheckManifest: the check of a manifest a pinned digest names never panics on any body
// and media type a registry sends, and a manifest or index it accepts is one go-containerregistry
// (what vouch, cosign and notation read manifests with) parses, whose descriptors all have a
// media type, a digest and a size that is not negative — so no later reader meets a malformed
// descriptor in it.
func FuzzCheckManifest(f *testing.F) {
	for _, s := range []struct {
		mt   types.MediaType
		body string
	}{
		{types.OCIManifestSchema1, seedOCIManifest},
		{types.DockerManifestSchema2, seedDockerManifest},
		{types.OCIImageIndex, seedIndex},
		{types.OCIImageIndex, seedReferrers},
		{types.OCIManifestSchema1, seedCosignSignature},
		{types.DockerManifestList, `{"schemaVersion":2,"manifests":[]}`},
		{types.OCIManifestSchema1, seedOCIManifest[:200]},
		{"application/vnd.example+json", `{"a":1}`},
		{types.DockerManifestSchema1Signed, `{"schemaVersion":1}`},
		{types.OCIManifestSchema1, `{"schemaVersion":2.0,"config":{}}`},
		{types.OCIImageIndex, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}`},
	} {
		f.Add(string(s.mt), []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, mediaType string, body []byte) {
		mt := types.MediaType(mediaType)
		if err := registry.CheckManifest(mt, body); err != nil {
			if errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("CheckManifest returned a registry error itself: %v", err)
			}
			return
		}
		var descs []v1.Descriptor
		switch {
		case mt.IsIndex():
			idx, err := v1.ParseIndexManifest(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("accepted index does not parse: %v", err)
			}
			descs = idx.Manifests
		case mt.IsImage():
			m, err := v1.ParseManifest(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("accepted manifest does not parse: %v", err)
			}
			descs = append([]v1.Descriptor{m.Config}, m.Layers...)
		default:
			if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
				t.Fatalf("accepted %q, not a JSON object", body)
			}
			return
		}
		for i, d := range descs {
			if d.MediaType == "" || d.Size < 0 {
				t.Fatalf("accepted descriptor %d: %+v", i, d)
			}
			if _, err := v1.NewHash(d.Digest.String()); err != nil {
				t.Fatalf("accepted descriptor %d with digest %q: %v", i, d.Digest, err)
			}
		}
	})
}
