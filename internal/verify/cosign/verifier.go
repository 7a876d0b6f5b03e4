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
	"github.com/sigstore/sigstore/pkg/signature/payload"

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
	roots         trustRoots
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

// Verify checks that the subject carries a signature by the attestor's authority (key,
// certificate or keyless identity), naming the subject's digest, with the transparency-log,
// SCT and timestamp proofs the attestor requires, and the required annotations (spec §3.3,
// §3.5, §3.8). Everything is checked offline, from the signature and the trust material of
// the policy.
func (v *Verifier) Verify(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor) (*verify.Evidence, error) {
	if e.Type != "" && e.Type != "Cosign" {
		return nil, unsupported(fmt.Sprintf("type %s is not supported yet", e.Type))
	}
	tr, err := v.roots.get(e.TrustedRoot)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(a, tr)
	if err != nil {
		return nil, err
	}
	co := p.co
	tg, err := v.locate(ctx, s, e, a)
	if err != nil {
		return nil, err
	}
	co.RegistryClientOpts = tg.ropts

	var verified []oci.Signature
	if e.CosignOCI11 {
		// cosign's experimental OCI 1.1 layout: referrers first, then the tag scheme.
		co.ExperimentalOCI11 = true
		verified, _, err = cosign.VerifyImageSignatures(ctx, tg.digest, co)
		if err != nil {
			return nil, cosignError(err)
		}
	} else {
		sigs, err := v.signatures(ctx, s, tg.digest, tg.ropts)
		if err != nil {
			return nil, err
		}
		if verified, err = verifyEach(ctx, sigs, tg.hash, co); err != nil {
			return nil, err
		}
	}
	if verified, err = p.accept(verified); err != nil {
		return nil, err
	}
	return evidence(verified, a.EffectiveAnnotations(e))
}

// target is where a subject's signatures are read: its digest reference and hash, and the
// registry options (in the attestor's or entry's signature repository, if any).
type target struct {
	digest name.Digest
	hash   v1.Hash
	ropts  []ociremote.Option
}

func (v *Verifier) locate(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor) (*target, error) {
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
	tg := &target{digest: digest, hash: hash, ropts: []ociremote.Option{ociremote.WithRemoteOptions(v.remote(ctx, e.Insecure)...)}}
	if repo := a.EffectiveRepository(e); repo != "" {
		r, err := name.NewRepository(repo, nameOpts...)
		if err != nil {
			return nil, verify.Errorf(verify.CodeUnsupported, fmt.Sprintf("failed to parse signature repository %s", repo), err)
		}
		tg.ropts = append(tg.ropts, ociremote.WithTargetRepository(r))
	}
	return tg, nil
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
		if !co.IgnoreTlog {
			if b, err := sig.Bundle(); err == nil && b == nil {
				problems = append(problems, "no Rekor bundle on the signature: transparency-log inclusion is verified offline, from the bundle")
				continue
			}
		}
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
