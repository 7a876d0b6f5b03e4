package cosign

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"

	"github.com/vouchproject/vouch/internal/verify"
)

// Hooks for the fuzz targets of package cosign_test (which seed them from internal/fixture,
// itself an importer of this package).

// CheckLayerForFuzz is checkLayer.
func CheckLayerForFuzz(sig oci.Signature) error { return checkLayer(sig, "layer") }

// CopyLayerForFuzz is copyLayer.
func CopyLayerForFuzz(sig oci.Signature) (oci.Signature, error) { return copyLayer(sig, "layer") }

// VerifySimpleForFuzz is verifySimple.
func VerifySimpleForFuzz(ctx context.Context, sig oci.Signature, h v1.Hash, co *cosign.CheckOpts) error {
	return verifySimple(ctx, sig, h, co)
}

// EvidenceDigestForFuzz is the digest evidenceOf reports for one simple-signing signature.
func EvidenceDigestForFuzz(sig oci.Signature, h v1.Hash) (string, error) {
	ev, err := evidenceOf([]*candidate{{route: verify.RouteLegacyTag, sig: sig}}, h, nil)
	if err != nil {
		return "", err
	}
	return ev.Digest, nil
}

// DecodeEnvelopeForFuzz is decodeEnvelope.
func DecodeEnvelopeForFuzz(raw []byte) (verify.Statement, bool) { return decodeEnvelope(raw) }

// VerifyAttestationLayersForFuzz is verifyAttestationsEach.
func VerifyAttestationLayersForFuzz(ctx context.Context, atts []oci.Signature, h v1.Hash, co *cosign.CheckOpts) ([]oci.Signature, []string) {
	return verifyAttestationsEach(ctx, atts, h, co)
}

// VerifyBundleForFuzz verifies a bundle for the attestor (no trusted root) as check does.
func VerifyBundleForFuzz(a *verify.Attestor, b *Bundle, h v1.Hash) error {
	p, err := newPlan(a, nil)
	if err != nil {
		return err
	}
	bt, err := newBundleTrust(a, nil, p.co.SigVerifier)
	if err != nil {
		return err
	}
	res, err := bt.verifyBundle(b, h)
	if err != nil {
		return err
	}
	return bt.accept(leafOf(b), res)
}

// BundleViewsForFuzz reads a parsed bundle every way discovery and messages do.
func BundleViewsForFuzz(b *Bundle, h v1.Hash) (signature bool, detail string, annotations map[string]any, envelope []byte) {
	_ = leafOf(b)
	return b.IsSignature(), b.detail(), b.annotations(h), b.envelopeJSON()
}
