package notary

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/notaryproject/notation-core-go/signature"
	_ "github.com/notaryproject/notation-core-go/signature/cose" // registers the COSE envelope
	_ "github.com/notaryproject/notation-core-go/signature/jws"  // registers the JWS envelope
	"github.com/notaryproject/tspclient-go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// annotationThumbprints is notation's signature manifest annotation listing the SHA-256
// thumbprints of the signing chain.
const annotationThumbprints = "io.cncf.notary.x509chain.thumbprint#S256"

// SignOptions describes one Notary signature.
type SignOptions struct {
	Key   crypto.Signer       // the signing certificate's private key
	Chain []*x509.Certificate // the signing certificate first, the root last
	// Format is the envelope: "jws" (default) or "cose".
	Format string
	// SigningTime is the signature's signing time; zero means now. The chain must be valid then.
	SigningTime time.Time
	// Expiry, if set, is the signature's "best by" time.
	Expiry time.Time
	// SigningAuthority selects the notary.x509.signingAuthority scheme (default notary.x509).
	SigningAuthority bool
	// Timestamper, if set, countersigns the signature (RFC 3161); TSARoots verify its answer.
	Timestamper tspclient.Timestamper
	TSARoots    *x509.CertPool
	// Target, if set, is the descriptor the envelope names instead of the artifact's own (to
	// attach a signature made for another artifact, as a compromised registry could).
	Target *ocispec.Descriptor
}

// Sign signs the artifact ref names and stores the signature as notation does: an OCI image
// manifest whose config has the media type application/vnd.cncf.notary.signature, whose one
// layer is the envelope and whose subject is the artifact; ggcr adds it to the referrers tag
// schema index when the registry has no referrers API. It returns the signature manifest's
// digest. opts route the registry calls.
func Sign(ctx context.Context, ref name.Digest, so SignOptions, opts ...remote.Option) (v1.Hash, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	subject, err := remote.Head(ref, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	target := toOCI(*subject)
	if so.Target != nil {
		target = *so.Target
	}
	envelope, mediaType, err := signEnvelope(ctx, target, so)
	if err != nil {
		return v1.Hash{}, err
	}
	thumbs := make([]string, len(so.Chain))
	for i, c := range so.Chain {
		sum := sha256.Sum256(c.Raw)
		thumbs[i] = hex.EncodeToString(sum[:])
	}
	tj, err := json.Marshal(thumbs)
	if err != nil {
		return v1.Hash{}, err
	}
	at := so.SigningTime
	if at.IsZero() {
		at = time.Now()
	}
	annotations := map[string]string{annotationThumbprints: string(tj), ocispec.AnnotationCreated: at.UTC().Format(time.RFC3339)}
	return push(ref.Context(), *subject, ArtifactTypeSignature, "", []byte("{}"), mediaType, envelope, annotations, opts)
}

// signEnvelope signs notation's payload for target.
func signEnvelope(ctx context.Context, target ocispec.Descriptor, so SignOptions) ([]byte, string, error) {
	if so.Key == nil || len(so.Chain) == 0 {
		return nil, "", errors.New("notary: a key and its certificate chain are required")
	}
	mediaType := MediaTypeJWS
	switch so.Format {
	case "", "jws":
	case "cose":
		mediaType = MediaTypeCOSE
	default:
		return nil, "", fmt.Errorf("notary: unknown envelope format %q", so.Format)
	}
	payload, err := json.Marshal(map[string]any{"targetArtifact": target})
	if err != nil {
		return nil, "", err
	}
	signer, err := signature.NewLocalSigner(so.Chain, so.Key)
	if err != nil {
		return nil, "", fmt.Errorf("notary: %w", err)
	}
	env, err := signature.NewEnvelope(mediaType)
	if err != nil {
		return nil, "", err
	}
	at := so.SigningTime
	if at.IsZero() {
		at = time.Now()
	}
	scheme := signature.SigningSchemeX509
	if so.SigningAuthority {
		scheme = signature.SigningSchemeX509SigningAuthority
	}
	req := &signature.SignRequest{
		Payload:       signature.Payload{ContentType: mediaTypePayload, Content: payload},
		Signer:        signer,
		SigningTime:   at,
		Expiry:        so.Expiry,
		SigningScheme: scheme,
		SigningAgent:  "vouch",
		Timestamper:   so.Timestamper,
		TSARootCAs:    so.TSARoots,
	}
	sig, err := env.Sign(req.WithContext(ctx))
	if err != nil {
		return nil, "", fmt.Errorf("notary: signing: %w", err)
	}
	return sig, mediaType, nil
}

// Attach stores payload as a referrer artifact of the artifact ref names, of the given
// artifact type (in both the manifest's artifactType and its config media type, so that
// registries of either convention list it), and returns its digest: a Notary attestation once
// signed with Sign.
func Attach(ctx context.Context, ref name.Digest, artifactType string, payload []byte, opts ...remote.Option) (v1.Hash, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	subject, err := remote.Head(ref, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	return push(ref.Context(), *subject, artifactType, artifactType, []byte("{}"), "application/json", payload, nil, opts)
}

// push uploads a config and one layer, then a manifest referring to subject.
func push(repo name.Repository, subject v1.Descriptor, configType, artifactType string, config []byte, layerType string, layer []byte, annotations map[string]string, opts []remote.Option) (v1.Hash, error) {
	cl := static.NewLayer(config, types.MediaType(configType))
	ll := static.NewLayer(layer, types.MediaType(layerType))
	for _, l := range []v1.Layer{cl, ll} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("uploading to %s: %w", repo, err)
		}
	}
	desc := func(l v1.Layer, mt string) ocispec.Descriptor {
		d, _ := l.Digest()
		n, _ := l.Size()
		return ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(d.String()), Size: n}
	}
	sub := toOCI(subject)
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       desc(cl, configType),
		Layers:       []ocispec.Descriptor{desc(ll, layerType)},
		Subject:      &sub,
		Annotations:  annotations,
	}
	m.SchemaVersion = 2
	raw, err := json.Marshal(m)
	if err != nil {
		return v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Put(repo.Digest(h.String()), rawManifest{raw: raw, mt: types.OCIManifestSchema1}, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing the manifest to %s: %w", repo, err)
	}
	return h, nil
}

// rawManifest is a manifest to Put as it is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
