package cosign

import (
	"fmt"
	"strings"

	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/cosign/v3/pkg/oci/static"

	"github.com/vouchproject/vouch/internal/verify"
)

// MaxChainCertificates caps the certificates of a signature's own chain: cosign's
// dev.sigstore.cosign/chain annotation and a Sigstore bundle's X.509 certificate chain
// (DESIGN §6: every count is capped). Real chains have one to three. More is a failure, found
// before any of them is parsed.
const MaxChainCertificates = 10

// Annotation keys of a cosign signature or attestation layer (cosign's pkg/oci/static).
const (
	annotationSignature   = static.SignatureAnnotationKey   // dev.cosignproject.cosign/signature
	annotationCertificate = static.CertificateAnnotationKey // dev.sigstore.cosign/certificate
	annotationChain       = static.ChainAnnotationKey       // dev.sigstore.cosign/chain
)

// pemBlocks returns an upper bound of the PEM blocks in text, without decoding them.
func pemBlocks(text string) int { return strings.Count(text, "-----BEGIN") }

// chainTooLarge is the failure of a chain of n certificates, more than MaxChainCertificates.
func chainTooLarge(what string, n int) error {
	return verify.Errorf(verify.CodeTooLarge, fmt.Sprintf("%s: the certificate chain holds %d certificates, more than the limit of %d", what, n, MaxChainCertificates), nil)
}

// checkLayer checks what cosign will parse from a signature or attestation layer's
// annotations, before it does: the chain's length (MaxChainCertificates), then the signature,
// certificate, chain, Rekor bundle and RFC 3161 timestamp, each of which must parse. These come
// from the manifest, which the registry served and its digest binds: a layer that does not
// parse is a failure of the signature (CodeInvalid), never "could not verify" as the registry
// errors of reading the layer's payload are.
func checkLayer(sig oci.Signature, what string) error {
	ann, err := sig.Annotations()
	if err != nil {
		return verify.Errorf(verify.CodeInvalid, what+": reading the layer annotations", err)
	}
	for _, key := range []string{annotationCertificate, annotationChain} {
		if n := pemBlocks(ann[key]); n > MaxChainCertificates {
			return chainTooLarge(what, n)
		}
	}
	invalid := func(part string, err error) error {
		return verify.Errorf(verify.CodeInvalid, fmt.Sprintf("%s: malformed %s", what, part), err)
	}
	if _, ok := ann[annotationSignature]; !ok {
		return invalid("layer", fmt.Errorf("missing the %s annotation", annotationSignature))
	}
	if _, err := sig.Cert(); err != nil {
		return invalid("certificate", err)
	}
	if _, err := sig.Chain(); err != nil {
		return invalid("certificate chain", err)
	}
	if _, err := sig.Bundle(); err != nil {
		return invalid("Rekor bundle", err)
	}
	if _, err := sig.RFC3161Timestamp(); err != nil {
		return invalid("RFC 3161 timestamp", err)
	}
	return nil
}

// copyLayer checks a layer (checkLayer) and reads it completely (its payload from the
// registry), so that checking several attestors against it costs no further request.
func copyLayer(sig oci.Signature, what string) (oci.Signature, error) {
	if err := checkLayer(sig, what); err != nil {
		return nil, err
	}
	c, err := static.Copy(sig)
	if err != nil {
		return nil, registryError("reading "+what, err)
	}
	return c, nil
}

// layers is what was read of the layers of one signature or attestation manifest: the layers
// that could be read, and why the others could not (kept to explain a failure, never to pass
// one).
type layers struct {
	sigs     []oci.Signature
	problems []string
}

// copyLayers reads each layer with copyLayer. A layer that is malformed or over a cap is a
// problem and does not hide the others; a registry error reading one (undecided) is returned.
func copyLayers(list []oci.Signature, what string) (*layers, error) {
	out := &layers{sigs: make([]oci.Signature, 0, len(list))}
	for i, sig := range list {
		name := fmt.Sprintf("%s layer %d", what, i)
		if d, err := sig.Digest(); err == nil {
			name = what + " layer " + d.String()
		}
		c, err := copyLayer(sig, name)
		switch {
		case err == nil:
			out.sigs = append(out.sigs, c)
		case verify.Undecided(err):
			return nil, err
		default:
			out.problems = append(out.problems, err.Error())
		}
	}
	return out, nil
}
