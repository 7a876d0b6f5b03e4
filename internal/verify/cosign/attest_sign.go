package cosign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/cosign/v3/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// StatementTypeV01 is the in-toto statement type cosign v2 writes (`_type`).
const StatementTypeV01 = "https://in-toto.io/Statement/v0.1"

// AttestOptions configures Attest.
type AttestOptions struct {
	// PredicateType is the statement's predicateType (cosign attest --type, expanded:
	// slsaprovenance is https://slsa.dev/provenance/v0.2). Required unless Statement is set.
	PredicateType string
	// Predicate is the statement's predicate, any JSON value (cosign attest --predicate).
	Predicate any
	// SubjectDigest is the digest the statement names; "" means the attested image's. Tests
	// use it to make an envelope for another image.
	SubjectDigest string
	// Statement, if set, is signed as it is instead of a statement built from the fields above.
	Statement []byte
	// AnnotationPredicateType is the layer's (unsigned) predicateType annotation; "" means
	// PredicateType.
	AnnotationPredicateType string
	// PayloadType is the DSSE payloadType; "" means application/vnd.in-toto+json.
	PayloadType string

	Repository string          // store in this repository (COSIGN_REPOSITORY)
	Hash       crypto.Hash     // 0 means SHA-256
	Remote     []remote.Option // registry options (transport, auth, context)
	// Certificate is the signer's PEM certificate stored with the attestation (its key must be
	// the signing key); Chain its PEM issuing chain, intermediates first, root last.
	Certificate []byte
	Chain       []byte
}

// Attest signs an in-toto statement about the image digest with key as a DSSE envelope and
// appends it to the image's attestation tag (sha256-<hex>.att) in cosign's layout: layer media
// type application/vnd.dsse.envelope.v1+json, annotation predicateType — what
// `cosign attest --key K --type T --predicate P --tlog-upload=false` produces.
func Attest(ctx context.Context, digest name.Digest, key crypto.Signer, opts AttestOptions) error {
	if key == nil {
		return errors.New("cosign: no signing key")
	}
	statement, err := opts.statement(digest)
	if err != nil {
		return err
	}
	hash := opts.Hash
	if hash == 0 {
		hash = crypto.SHA256
	}
	signer, err := signature.LoadSigner(key, hash)
	if err != nil {
		return fmt.Errorf("loading the signing key: %w", err)
	}
	payloadType := opts.PayloadType
	if payloadType == "" {
		payloadType = types.IntotoPayloadType
	}
	envelope, err := dsse.WrapSigner(signer, payloadType).SignMessage(bytes.NewReader(statement))
	if err != nil {
		return fmt.Errorf("signing the statement: %w", err)
	}
	annotation := opts.AnnotationPredicateType
	if annotation == "" {
		annotation = opts.PredicateType
	}
	sopts := []static.Option{
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(map[string]string{"predicateType": annotation}),
	}
	if len(opts.Certificate) > 0 {
		sopts = append(sopts, static.WithCertChain(opts.Certificate, opts.Chain))
	}
	att, err := static.NewAttestation(envelope, sopts...)
	if err != nil {
		return err
	}
	ropts := []ociremote.Option{ociremote.WithRemoteOptions(append(opts.Remote, remote.WithContext(ctx))...)}
	if opts.Repository != "" {
		repo, err := name.NewRepository(opts.Repository, name.WeakValidation)
		if err != nil {
			return fmt.Errorf("parsing attestation repository %s: %w", opts.Repository, err)
		}
		ropts = append(ropts, ociremote.WithTargetRepository(repo))
	}
	se, err := mutate.AttachAttestationToEntity(ociremote.SignedUnknown(digest, ropts...), att)
	if err != nil {
		return fmt.Errorf("attaching the attestation to %s: %w", digest, err)
	}
	if err := ociremote.WriteAttestations(digest.Repository, se, ropts...); err != nil {
		return fmt.Errorf("writing the attestation of %s: %w", digest, err)
	}
	return nil
}

// statement returns the in-toto statement to sign: cosign v2's layout, the subject named by
// repository and sha256 digest.
func (o AttestOptions) statement(digest name.Digest) ([]byte, error) {
	if o.Statement != nil {
		return o.Statement, nil
	}
	if o.PredicateType == "" {
		return nil, errors.New("cosign: an attestation needs a predicate type")
	}
	subject := o.SubjectDigest
	if subject == "" {
		subject = digest.DigestStr()
	}
	alg, hex, ok := strings.Cut(subject, ":")
	if !ok {
		return nil, fmt.Errorf("cosign: subject digest %q has no algorithm", subject)
	}
	predicate := o.Predicate
	if predicate == nil {
		predicate = map[string]any{}
	}
	return json.Marshal(map[string]any{
		"_type":         StatementTypeV01,
		"predicateType": o.PredicateType,
		"subject":       []any{map[string]any{"name": digest.Repository.String(), "digest": map[string]string{alg: hex}}},
		"predicate":     predicate,
	})
}
