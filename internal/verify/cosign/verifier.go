package cosign

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"github.com/sigstore/sigstore/pkg/tuf"

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
}

// Verifier verifies Cosign signatures.
type Verifier struct {
	remote        func(ctx context.Context, insecure bool) []remote.Option
	maxSignatures int
}

var _ verify.Verifier = (*Verifier)(nil)

// New returns a Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Remote == nil {
		return nil, errors.New("cosign: Options.Remote is required")
	}
	if opts.MaxSignatures < 0 {
		return nil, errors.New("cosign: MaxSignatures must not be negative")
	}
	v := &Verifier{remote: opts.Remote, maxSignatures: opts.MaxSignatures}
	if v.maxSignatures == 0 {
		v.maxSignatures = DefaultMaxSignatures
	}
	return v, nil
}

// Verify checks that the subject carries a signature made by the attestor's key, naming the
// subject's digest, with the required annotations (spec §3.3, §3.8).
func (v *Verifier) Verify(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor) (*verify.Evidence, error) {
	co, err := v.checkOpts(a)
	if err != nil {
		return nil, err
	}
	if e.Type != "" && e.Type != "Cosign" {
		return nil, unsupported(fmt.Sprintf("type %s is not supported yet", e.Type))
	}
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
	ropts := []ociremote.Option{ociremote.WithRemoteOptions(v.remote(ctx, e.Insecure)...)}
	if repo := a.EffectiveRepository(e); repo != "" {
		r, err := name.NewRepository(repo, nameOpts...)
		if err != nil {
			return nil, verify.Errorf(verify.CodeUnsupported, fmt.Sprintf("failed to parse signature repository %s", repo), err)
		}
		ropts = append(ropts, ociremote.WithTargetRepository(r))
	}
	co.RegistryClientOpts = ropts

	var verified []oci.Signature
	if e.CosignOCI11 {
		// cosign's experimental OCI 1.1 layout: referrers first, then the tag scheme.
		co.ExperimentalOCI11 = true
		verified, _, err = cosign.VerifyImageSignatures(ctx, digest, co)
		if err != nil {
			return nil, cosignError(err)
		}
	} else {
		sigs, err := v.signatures(ctx, s, digest, ropts)
		if err != nil {
			return nil, err
		}
		if verified, err = verifyEach(ctx, sigs, hash, co); err != nil {
			return nil, err
		}
	}
	return evidence(verified, a.EffectiveAnnotations(e))
}

// checkOpts builds cosign's options for a keys attestor.
func (v *Verifier) checkOpts(a *verify.Attestor) (*cosign.CheckOpts, error) {
	switch {
	case a.Kind != "keys":
		return nil, unsupported(fmt.Sprintf("%s attestors are not supported yet", a.Kind))
	case a.KeyRef != "" || a.Secret != nil:
		return nil, unsupported("public keys from k8s:// secrets, Secrets and KMS are not supported yet")
	case len(a.Keys) != 1:
		return nil, unsupported(fmt.Sprintf("an attestor needs exactly one public key, has %d", len(a.Keys)))
	}
	hash, err := hashFor(a.SignatureAlgorithm)
	if err != nil {
		return nil, err
	}
	sv, err := signature.LoadVerifier(a.Keys[0].Key, hash)
	if err != nil {
		return nil, verify.Errorf(verify.CodeUnsupported, "failed to load public key", err)
	}
	co := &cosign.CheckOpts{
		SigVerifier:   sv,
		ClaimVerifier: cosign.SimpleClaimVerifier,
		IgnoreTlog:    a.IgnoreTlog(),
		IgnoreSCT:     true, // a key attestor has no certificate, so no SCT to check
	}
	if !co.IgnoreTlog {
		if a.Rekor == nil || a.Rekor.PubKey == nil {
			return nil, unsupported("transparency-log verification needs rekor.pubkey (or rekor.ignoreTlog: true); TUF trust roots are not supported yet")
		}
		keys := cosign.NewTrustedTransparencyLogPubKeys()
		if err := keys.AddTransparencyLogPubKey([]byte(a.Rekor.PubKey.PEM), tuf.Active); err != nil {
			return nil, verify.Errorf(verify.CodeUnsupported, "failed to load Rekor public keys", err)
		}
		co.RekorPubKeys = &keys
	}
	return co, nil
}

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
// several attestors costs no further requests.
func (v *Verifier) signatures(ctx context.Context, s verify.Subject, digest name.Digest, ropts []ociremote.Option) ([]oci.Signature, error) {
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
		out := make([]oci.Signature, 0, len(list))
		for _, sig := range list {
			c, err := static.Copy(sig)
			if err != nil {
				return nil, registryError("reading signature layer of "+tag.String(), err)
			}
			out = append(out, c)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return got.([]oci.Signature), nil
}

// verifyEach returns the signatures that verify, or cosign's "no matching signatures" error
// listing why each failed.
func verifyEach(ctx context.Context, sigs []oci.Signature, h v1.Hash, co *cosign.CheckOpts) ([]oci.Signature, error) {
	if len(sigs) == 0 {
		return nil, verify.Errorf(verify.CodeNoSignatures, "no signatures found", nil)
	}
	var verified []oci.Signature
	var problems []string
	for _, sig := range sigs {
		if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		verified = append(verified, sig)
	}
	if len(verified) == 0 {
		return nil, verify.Errorf(verify.CodeNoMatch, "no matching signatures: "+strings.Join(problems, "\n "), nil)
	}
	return verified, nil
}

// evidence checks the required annotations (at least one verified payload must carry every
// key with exactly that string value, spec §3.8) and returns the digest the first payload names.
func evidence(verified []oci.Signature, want map[string]string) (*verify.Evidence, error) {
	var first string
	matched := len(want) == 0
	for _, sig := range verified {
		raw, err := sig.Payload()
		if err != nil {
			return nil, verify.Errorf(verify.CodeInvalid, "reading signature payload", err)
		}
		var p payload.SimpleContainerImage
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, verify.Errorf(verify.CodeInvalid, "decoding signature payload", err)
		}
		if first == "" {
			first = p.Critical.Image.DockerManifestDigest
		}
		if !matched && annotationsMatch(p.Optional, want) {
			matched = true
		}
	}
	if !matched {
		return nil, verify.Errorf(verify.CodeAnnotations, "no signature matched the required annotations", nil)
	}
	if first == "" {
		return nil, verify.Errorf(verify.CodeInvalid, "failed to extract image digest from signature payload", nil)
	}
	return &verify.Evidence{Digest: first}, nil
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

// cosignError maps an error of cosign.VerifyImageSignatures.
func cosignError(err error) error {
	var (
		noSigs  *cosign.ErrNoSignaturesFound
		noMatch *cosign.ErrNoMatchingSignatures
		noTag   *cosign.ErrImageTagNotFound
	)
	switch {
	case errors.As(err, &noSigs):
		return verify.Errorf(verify.CodeNoSignatures, "no signatures found", nil)
	case errors.As(err, &noMatch):
		return verify.Errorf(verify.CodeNoMatch, err.Error(), nil)
	case errors.As(err, &noTag):
		return verify.Errorf(verify.CodeNotFound, "image tag not found", err)
	}
	return registryError("verifying signatures", err)
}
