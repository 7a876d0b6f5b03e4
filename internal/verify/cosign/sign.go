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
	"github.com/sigstore/cosign/v3/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v3/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
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

	// Certificate is the signer's PEM certificate, stored with the signature (cosign sign
	// --certificate, or Fulcio's certificate in keyless signing); its key must be the signing
	// key. Chain is its PEM issuing chain, intermediates first, root last (--certificate-chain).
	Certificate []byte
	Chain       []byte
	// TransparencyLog, if set, returns the Rekor bundle stored with the signature — what cosign
	// writes after uploading to Rekor — given the signed payload, the raw signature and the
	// signer's PEM (the certificate, else the public key).
	TransparencyLog func(payload, signature, signer []byte) (*bundle.RekorBundle, error)
	// Timestamp, if set, returns an RFC 3161 timestamp response over the raw signature, stored
	// with the signature (cosign sign --timestamp-server-url).
	Timestamp func(signature []byte) ([]byte, error)
}

// attachments returns what is stored beside the signature: certificate and chain, Rekor
// bundle and RFC 3161 timestamp, as cosign stores them (layer annotations).
func attachments(payload, raw []byte, key crypto.Signer, opts SignOptions) ([]static.Option, error) {
	var out []static.Option
	signer := opts.Certificate
	if len(signer) > 0 {
		out = append(out, static.WithCertChain(opts.Certificate, opts.Chain))
	} else {
		pemKey, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
		if err != nil {
			return nil, err
		}
		signer = pemKey
	}
	if opts.TransparencyLog != nil {
		b, err := opts.TransparencyLog(payload, raw, signer)
		if err != nil {
			return nil, fmt.Errorf("transparency log: %w", err)
		}
		out = append(out, static.WithBundle(b))
	}
	if opts.Timestamp != nil {
		ts, err := opts.Timestamp(raw)
		if err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
		out = append(out, static.WithRFC3161Timestamp(bundle.TimestampToRFC3161Timestamp(ts)))
	}
	return out, nil
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
	sopts, err := attachments(pl, raw, key, opts)
	if err != nil {
		return err
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw), sopts...)
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
