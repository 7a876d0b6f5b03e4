package cosign

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"

	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
)

// DefaultMaxSignatures caps the signatures read for one image from one repository.
const DefaultMaxSignatures = 64

// Options configures a Verifier.
type Options struct {
	// Remote returns the go-containerregistry options for registry calls (vouch's transport
	// with deadlines, caps and credentials, and the context); insecure is the entry's
	// imageRegistryCredentials.allowInsecureRegistry. Required.
	Remote func(ctx context.Context, insecure bool) []remote.Option
	// MaxSignatures caps the signatures read per image and repository; 0 means
	// DefaultMaxSignatures. More is a failure, never a silent truncation.
	MaxSignatures int
	// MaxReferrers caps the OCI 1.1 referrers read per image (both listings together); 0
	// means DefaultMaxReferrers. More is a failure.
	MaxReferrers int
	// MaxPayloadBytes caps one signature layer, DSSE envelope or Sigstore bundle; 0 means
	// DefaultMaxPayloadBytes.
	MaxPayloadBytes int64
	// KMS resolves keys.kms and KMS publicKeys references (awskms://, gcpkms://, azurekms://,
	// hashivault://, and <plugin>:// for a sigstore-kms-<plugin> program on PATH) to public
	// keys; nil means NewKMS(KMSOptions{}).
	KMS *KMS
}

// Verifier verifies Cosign signatures.
type Verifier struct {
	remote        func(ctx context.Context, insecure bool) []remote.Option
	maxSignatures int
	maxReferrers  int
	maxPayload    int64
	kms           *KMS
	roots         trustRoots
}

var _ verify.Verifier = (*Verifier)(nil)

// New returns a Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Remote == nil {
		return nil, errors.New("cosign: Options.Remote is required")
	}
	if opts.MaxSignatures < 0 || opts.MaxReferrers < 0 || opts.MaxPayloadBytes < 0 {
		return nil, errors.New("cosign: MaxSignatures, MaxReferrers and MaxPayloadBytes must not be negative")
	}
	v := &Verifier{remote: opts.Remote, maxSignatures: opts.MaxSignatures, maxReferrers: opts.MaxReferrers, maxPayload: opts.MaxPayloadBytes, kms: opts.KMS}
	if v.maxSignatures == 0 {
		v.maxSignatures = DefaultMaxSignatures
	}
	if v.maxReferrers == 0 {
		v.maxReferrers = DefaultMaxReferrers
	}
	if v.maxPayload == 0 {
		v.maxPayload = DefaultMaxPayloadBytes
	}
	if v.kms == nil {
		v.kms = NewKMS(KMSOptions{})
	}
	return v, nil
}

// Verify checks that the subject carries a signature by the attestor's authority (key, KMS
// key, certificate or keyless identity), naming the subject's digest, with the
// transparency-log, SCT and timestamp proofs the attestor requires, and the required
// annotations (spec §3.3, §3.5, §3.8). Everything is checked offline, from the signature and
// the trust material of the policy.
//
// type Cosign reads every layout (discover_signatures.go): cosign's sha256-<hex>.sig tag, its
// OCI 1.1 signature referrers and Sigstore bundle referrers (cosign v3), by the referrers API
// and the referrers tag schema. type SigstoreBundle reads the bundle referrers only (spec
// §3.11).
func (v *Verifier) Verify(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor) (*verify.Evidence, error) {
	switch e.Type {
	case "", "Cosign", "SigstoreBundle":
	default:
		return nil, unsupported(fmt.Sprintf("type %s is not supported yet", e.Type))
	}
	tr, err := v.roots.get(e.TrustedRoot)
	if err != nil {
		return nil, err
	}
	a, err = v.resolveKey(ctx, s, a)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(a, tr)
	if err != nil {
		return nil, err
	}
	src, err := v.locate(ctx, s, e, a)
	if err != nil {
		return nil, err
	}
	p.co.RegistryClientOpts = src.ropts
	if e.Type == "SigstoreBundle" {
		return v.verifyBundles(ctx, s, e, a, p, tr, src)
	}
	return v.verifyCosign(ctx, s, e, a, p, tr, src)
}

func (v *Verifier) locate(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor) (*source, error) {
	nameOpts := []name.Option{name.WeakValidation}
	if e.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	digest, err := name.NewDigest(s.DigestRef(), nameOpts...)
	if err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "parsing image reference "+s.DigestRef(), err)
	}
	hash, err := v1.NewHash(s.Digest)
	if err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "parsing digest "+s.Digest, err)
	}
	ropts := v.remote(ctx, e.Insecure)
	src := &source{digest: digest, sigRepo: digest.Context(), hash: hash, remote: ropts,
		ropts: []ociremote.Option{ociremote.WithRemoteOptions(ropts...)}}
	if repo := a.EffectiveRepository(e); repo != "" {
		r, err := name.NewRepository(repo, nameOpts...)
		if err != nil {
			return nil, verify.Errorf(verify.CodeUnsupported, fmt.Sprintf("failed to parse signature repository %s", repo), err)
		}
		src.sigRepo = r
		src.ropts = append(src.ropts, ociremote.WithTargetRepository(r))
	}
	return src, nil
}

// hashFor returns the hash of a signatureAlgorithm ("" is sha256).
func hashFor(alg string) (crypto.Hash, error) {
	switch alg {
	case "", "sha256":
		return crypto.SHA256, nil
	case "sha224":
		return crypto.SHA224, nil
	case "sha384":
		return crypto.SHA384, nil
	case "sha512":
		return crypto.SHA512, nil
	}
	return 0, unsupported("invalid signature algorithm provided " + alg)
}

// signatures fetches the signatures of the subject once per signature repository and
// evaluation, and reads each completely (payload, signature, certificates) so that checking
// several attestors costs no further requests. Layers that are malformed are problems.
func (v *Verifier) signatures(ctx context.Context, s verify.Subject, digest name.Digest, ropts []ociremote.Option) (*layers, error) {
	tag, err := ociremote.SignatureTag(digest, ropts...)
	if err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "computing the signature tag", err)
	}
	got, err := s.Memo.Do("cosign-signatures:"+tag.String(), func() (any, error) {
		sigs, err := ociremote.Signatures(tag, ropts...)
		if err != nil {
			return nil, registryError("fetching signatures "+tag.String(), err)
		}
		list, err := sigs.Get()
		if err != nil {
			return nil, registryError("reading signatures "+tag.String(), err)
		}
		if len(list) > v.maxSignatures {
			return nil, verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("%s holds %d signatures, more than the limit of %d", tag, len(list), v.maxSignatures), nil)
		}
		return copyLayers(list, "signature "+tag.String())
	})
	if err != nil {
		return nil, err
	}
	return got.(*layers), nil
}

func annotationsMatch(have map[string]any, want map[string]string) bool {
	for k, v := range want {
		got, ok := have[k].(string)
		if !ok || got != v {
			return false
		}
	}
	return true
}

func unsupported(msg string) error { return verify.Errorf(verify.CodeUnsupported, msg, nil) }

// registryError classifies a registry failure into vouch's codes.
func registryError(op string, err error) error {
	return verify.FromRegistry(string(registry.Classify(err)), op, err)
}
