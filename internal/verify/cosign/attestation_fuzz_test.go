package cosign_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"testing"

	sgcosign "github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/cosign/v3/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// FuzzAttestationEnvelope (landscape §4.4 groups 5 and 15): a DSSE envelope of any payload type
// and statement, correctly signed with the attestor's key, passes cosign's attestation checks
// only if it is an in-toto statement with a subject naming the image's digest; the statement
// vouch then hands to conditions (decodeEnvelope) is that statement, its "type" its
// predicateType. Raw envelope bytes (unsigned, malformed) never make decodeEnvelope panic, and
// whatever it returns has a non-empty "type" equal to the predicateType.
func FuzzAttestationEnvelope(f *testing.F) {
	key := fuzzKey(f)
	statement := func(digest string) []byte {
		raw, err := json.Marshal(map[string]any{
			"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
			"subject":   []any{map[string]any{"name": "registry.example/app", "digest": map[string]string{"sha256": digest}}},
			"predicate": map[string]any{"builder": map[string]any{"id": "https://example.com/builder"}},
		})
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	good := statement(fuzzDigest.Hex)
	f.Add(types.IntotoPayloadType, good, []byte(nil))
	f.Add(types.IntotoPayloadType, statement("0f0f"), []byte(nil))
	f.Add("application/json", good, []byte(nil))
	f.Add(types.IntotoPayloadType, []byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","predicate":{}}`), []byte(nil))
	f.Add(types.IntotoPayloadType, []byte(`{"predicateType":"x","subject":[null,{"digest":{"sha256":"`+fuzzDigest.Hex+`"}}]}`), []byte(nil))
	f.Add(types.IntotoPayloadType, []byte(`{"predicate_type":"x","subject":[{"digest":{"sha256":"`+fuzzDigest.Hex+`"}}]}`), []byte(nil))
	f.Add(types.IntotoPayloadType, []byte(`not json`), []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add("", []byte{}, []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"%%%","signatures":[{"sig":"AA=="}]}`))
	f.Add("", []byte{}, []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"eyJwcmVkaWNhdGVUeXBlIjoxfQ=="}`))
	signer, err := signature.LoadECDSASigner(key.Private, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	co := keyCheckOpts(f, key, sgcosign.IntotoSubjectClaimVerifier)
	f.Fuzz(func(t *testing.T, payloadType string, st, rawEnvelope []byte) {
		if got, ok := cosign.DecodeEnvelopeForFuzz(rawEnvelope); ok {
			if pt, _ := got["type"].(string); pt == "" || got["predicateType"] != pt {
				t.Fatalf("decodeEnvelope(%q) = %v: type must be the non-empty predicateType", rawEnvelope, got)
			}
		}
		env, err := dsse.WrapSigner(signer, payloadType).SignMessage(bytes.NewReader(st))
		if err != nil {
			t.Fatal(err)
		}
		att, err := static.NewAttestation(env, static.WithLayerMediaType(types.DssePayloadType))
		if err != nil {
			t.Fatal(err)
		}
		verified, _ := cosign.VerifyAttestationLayersForFuzz(context.Background(), []oci.Signature{att}, fuzzDigest, co)
		statement, ok := cosign.DecodeEnvelopeForFuzz(env)
		if len(verified) == 0 {
			return
		}
		if payloadType != types.IntotoPayloadType {
			t.Fatalf("an envelope of payload type %q verified", payloadType)
		}
		if !ok {
			return // verified, but not a statement with a predicate type: ignored, never a pass
		}
		if !namesDigest(statement["subject"], fuzzDigest.Hex) {
			t.Fatalf("statement %s verified and decoded, but its subjects %v do not name %s", st, statement["subject"], fuzzDigest)
		}
	})
}

// namesDigest reports whether an in-toto subject list, as decoded for conditions, has an entry
// whose sha256 digest is hex.
func namesDigest(subjects any, hex string) bool {
	list, _ := subjects.([]any)
	for _, s := range list {
		m, _ := s.(map[string]any)
		d, _ := m["digest"].(map[string]any)
		if d["sha256"] == hex {
			return true
		}
	}
	return false
}

// TestFuzzSignatureSeedsVerify: the well-formed seeds of FuzzSimpleSigning and
// FuzzAttestationEnvelope pass the checks their properties are about, so that the properties
// are exercised.
func TestFuzzSignatureSeedsVerify(t *testing.T) {
	key := fuzzKey(t)
	signer, err := signature.LoadECDSASigner(key.Private, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	st, err := json.Marshal(map[string]any{"predicateType": "x", "subject": []any{map[string]any{"digest": map[string]string{"sha256": fuzzDigest.Hex}}}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := dsse.WrapSigner(signer, types.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		t.Fatal(err)
	}
	att, err := static.NewAttestation(env, static.WithLayerMediaType(types.DssePayloadType))
	if err != nil {
		t.Fatal(err)
	}
	if verified, problems := cosign.VerifyAttestationLayersForFuzz(context.Background(), []oci.Signature{att}, fuzzDigest, keyCheckOpts(t, key, sgcosign.IntotoSubjectClaimVerifier)); len(verified) != 1 {
		t.Errorf("the well-formed attestation does not verify: %v", problems)
	}
	pl, err := payload.Cosign{Image: fuzzImage(t)}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := cosign.VerifySimpleForFuzz(context.Background(), sig, fuzzDigest, keyCheckOpts(t, key, sgcosign.SimpleClaimVerifier)); err != nil {
		t.Errorf("the well-formed signature does not verify: %v", err)
	}
}
