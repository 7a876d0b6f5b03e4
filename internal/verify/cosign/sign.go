package cosign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// SignOptions configures Sign.
type SignOptions struct {
	Annotations map[string]string // written to the payload's optional section (cosign sign -a)
	Repository  string            // store the signature in this repository (COSIGN_REPOSITORY)
	Hash        crypto.Hash       // 0 means SHA-256
	Remote      []remote.Option   // registry options (transport, auth, context)
	OCI11       bool              // store as an OCI 1.1 referrer (cosign's experimental layout) instead of the .sig tag
}

// Sign signs the image digest with key and appends the signature to the image's signature
// tag (sha256-<hex>.sig) in cosign's layout, without a transparency-log entry — what
// `cosign sign --key K --tlog-upload=false` produces.
func Sign(ctx context.Context, digest name.Digest, key crypto.Signer, opts SignOptions) error {
	if key == nil {
		return errors.New("cosign: no signing key")
	}
	hash := opts.Hash
	if hash == 0 {
		hash = crypto.SHA256
	}
	ann := map[string]any{}
	for k, v := range opts.Annotations {
		ann[k] = v
	}
	if len(ann) == 0 {
		ann = nil
	}
	pl, err := payload.Cosign{Image: digest, Annotations: ann}.MarshalJSON()
	if err != nil {
		return fmt.Errorf("building the signature payload: %w", err)
	}
	signer, err := signature.LoadSigner(key, hash)
	if err != nil {
		return fmt.Errorf("loading the signing key: %w", err)
	}
	raw, err := signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return err
	}
	ropts := []ociremote.Option{ociremote.WithRemoteOptions(append(opts.Remote, remote.WithContext(ctx))...)}
	if opts.Repository != "" {
		repo, err := name.NewRepository(opts.Repository, name.WeakValidation)
		if err != nil {
			return fmt.Errorf("parsing signature repository %s: %w", opts.Repository, err)
		}
		ropts = append(ropts, ociremote.WithTargetRepository(repo))
	}
	se, err := ociremote.SignedEntity(digest, ropts...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", digest, err)
	}
	signed, err := mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		return err
	}
	if opts.OCI11 {
		if err := ociremote.WriteSignaturesExperimentalOCI(digest, signed, ropts...); err != nil {
			return fmt.Errorf("writing the OCI 1.1 signature of %s: %w", digest, err)
		}
		return nil
	}
	if err := ociremote.WriteSignatures(digest.Repository, signed, ropts...); err != nil {
		return fmt.Errorf("writing the signature of %s: %w", digest, err)
	}
	return nil
}
