package notary

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

// fuzzEnvelopes signs one target in both envelope formats with a fresh chain (leaf,
// intermediate, root), for seeds.
func fuzzEnvelopes(tb testing.TB) (jws, cose []byte, leaf *notarytest.Leaf) {
	tb.Helper()
	root, err := notarytest.NewRoot("root", notarytest.Around(-48*time.Hour, 48*time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	inter, err := root.NewIntermediate("intermediate", notarytest.Around(-24*time.Hour, 24*time.Hour), notarytest.Endpoints{})
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err = inter.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 512}
	so := SignOptions{Key: leaf.Key, Chain: leaf.Full()}
	if jws, _, err = signEnvelope(context.Background(), target, so); err != nil {
		tb.Fatal(err)
	}
	so.Format = "cose"
	if cose, _, err = signEnvelope(context.Background(), target, so); err != nil {
		tb.Fatal(err)
	}
	return jws, cose, leaf
}

// TestEnvelopeChainLength counts the chain of real envelopes, and refuses what does not decode.
func TestEnvelopeChainLength(t *testing.T) {
	jws, cose, leaf := fuzzEnvelopes(t)
	for _, tc := range []struct {
		name, mediaType string
		envelope        []byte
		want            int
		err             bool
	}{
		{"jws", MediaTypeJWS, jws, len(leaf.Full()), false},
		{"cose", MediaTypeCOSE, cose, len(leaf.Full()), false},
		{"jws truncated", MediaTypeJWS, jws[:len(jws)/2], 0, true},
		{"cose truncated", MediaTypeCOSE, cose[:len(cose)/2], 0, true},
		{"cose as jws", MediaTypeJWS, cose, 0, true},
		{"unknown media type", "application/octet-stream", jws, 0, true},
	} {
		got, err := envelopeChainLength(tc.mediaType, tc.envelope)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// FuzzEnvelopeChain (landscape §4.4 group 14): vouch counts the certificates of any JWS or COSE
// envelope a registry serves (envelopeChainLength, to refuse more than MaxChainCertificates
// before notation parses them) without a panic, and agrees with notation-core-go: an envelope
// whose content notation reads has exactly the chain vouch counted, and one vouch cannot
// decode is one notation cannot read either (vouch's early refusal never rejects a signature
// notation would have verified). notation-core-go's parse and verify of the same bytes must
// not panic either: they run on registry-controlled bytes in the webhook.
func FuzzEnvelopeChain(f *testing.F) {
	jws, cose, leaf := fuzzEnvelopes(f)
	f.Add(false, jws)
	f.Add(true, cose)
	f.Add(false, jws[:len(jws)-7])
	f.Add(true, cose[:len(cose)/2])
	var env map[string]any
	if err := json.Unmarshal(jws, &env); err != nil {
		f.Fatal(err)
	}
	var chain []any
	for range MaxChainCertificates + 1 {
		chain = append(chain, base64.StdEncoding.EncodeToString(leaf.Cert.Raw))
	}
	env["header"].(map[string]any)["x5c"] = chain
	long, err := json.Marshal(env)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(false, long)
	env["header"].(map[string]any)["x5c"] = []any{1, "%%", nil}
	odd, err := json.Marshal(env)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(false, odd)
	f.Add(false, []byte(`{"header":{"x5c":"AA=="}}`))
	f.Add(true, []byte{0xd2, 0x84, 0x40, 0xa1, 0x18, 0x21, 0x80, 0xf6, 0x40})
	f.Fuzz(func(t *testing.T, isCOSE bool, raw []byte) {
		mediaType := MediaTypeJWS
		if isCOSE {
			mediaType = MediaTypeCOSE
		}
		n, err := envelopeChainLength(mediaType, raw)
		if n < 0 || (err != nil && n != 0) {
			t.Fatalf("envelopeChainLength = %d, %v", n, err)
		}
		parsed, perr := signature.ParseEnvelope(mediaType, raw)
		if perr != nil {
			return
		}
		content, cerr := parsed.Content()
		_, _ = parsed.Verify()
		if cerr != nil {
			return
		}
		if err != nil {
			t.Fatalf("notation reads the envelope (a chain of %d), vouch refuses it: %v", len(content.SignerInfo.CertificateChain), err)
		}
		if got := len(content.SignerInfo.CertificateChain); got != n {
			t.Fatalf("notation reads a chain of %d certificates, vouch counted %d", got, n)
		}
	})
}
