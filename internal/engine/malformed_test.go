package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
	"github.com/vouchproject/vouch/internal/verify/notary"
)

// TestMalformedDataNeverPassesNorPins (landscape §4.4 groups 1, 6, 9, 14 and 15; DESIGN §6
// "parse errors deny"): manifests, indexes, signatures, Sigstore bundles, DSSE envelopes,
// in-toto statements and Notary envelopes that are truncated, malformed or over a cap, served
// by the in-process registry, make the image fail (or, cut in transit, "could not verify"),
// with a message naming the problem; the admission is denied, and the image is never pinned
// to a digest whose bytes do not parse as the manifest they claim to be. Signatures that do
// verify cryptographically — over garbage, another digest, a statement without a subject —
// change nothing.
func TestMalformedDataNeverPassesNorPins(t *testing.T) {
	t.Parallel()
	// manifestBody is a well-formed image manifest (Docker v2, as random.Image makes them).
	manifestBody := func(t *testing.T, m *malformedWorld) []byte {
		d := m.push(t, "template")
		got, err := remote.Get(m.digestRef(t, d))
		if err != nil {
			t.Fatal(err)
		}
		if got.MediaType != types.DockerManifestSchema2 {
			t.Fatalf("template manifest is %s", got.MediaType)
		}
		return got.Manifest
	}
	const (
		ociManifest    = string(types.OCIManifestSchema1)
		ociIndex       = string(types.OCIImageIndex)
		dockerManifest = string(types.DockerManifestSchema2)
	)
	// A bad manifest under app:bad, signed with a valid signature over its digest.
	signedBad := func(s func(t *testing.T, m *malformedWorld) servedManifest) func(t *testing.T, m *malformedWorld) (string, string) {
		return func(t *testing.T, m *malformedWorld) (string, string) {
			d := m.serve("bad", s(t, m))
			m.writeTag(t, d, "sig", m.simpleSigning(t, m.payloadFor(t, d), nil))
			return "app:bad", keyEntry(m.key.PEM)
		}
	}
	// A well-formed image app:good whose .sig tag holds the layers.
	goodWithSig := func(layers func(t *testing.T, m *malformedWorld, d string) []layer) func(t *testing.T, m *malformedWorld) (string, string) {
		return func(t *testing.T, m *malformedWorld) (string, string) {
			d := m.push(t, "good")
			m.writeTag(t, d, "sig", layers(t, m, d)...)
			return "app:good", keyEntry(m.key.PEM)
		}
	}
	bundleEntry := func(m *malformedWorld) string {
		return strings.Replace(keyEntry(m.key.PEM), "    - imageReferences", "    - type: SigstoreBundle\n      imageReferences", 1)
	}
	goodWithBundle := func(spec func(m *malformedWorld) fixture.BundleSpec, edit func(t *testing.T) func([]byte) []byte) func(t *testing.T, m *malformedWorld) (string, string) {
		return func(t *testing.T, m *malformedWorld) (string, string) {
			d := m.push(t, "good")
			m.writeBundle(t, d, spec(m), edit(t))
			return "app:good", bundleEntry(m)
		}
	}
	keyBundle := func(version string) func(m *malformedWorld) fixture.BundleSpec {
		return func(m *malformedWorld) fixture.BundleSpec {
			return fixture.BundleSpec{Key: m.key.Private, Version: version}
		}
	}
	attestEntryFor := func(m *malformedWorld) string {
		return attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(m.key.PEM)}, "")
	}
	goodWithAttestation := func(env func(t *testing.T, m *malformedWorld, d string) any) func(t *testing.T, m *malformedWorld) (string, string) {
		return func(t *testing.T, m *malformedWorld) (string, string) {
			d := m.push(t, "good")
			m.writeTag(t, d, "att", attestation(t, env(t, m, d)))
			return "app:good", attestEntryFor(m)
		}
	}
	goodWithNotary := func(format string, edit func(t *testing.T, m *malformedWorld) func([]byte) []byte) func(t *testing.T, m *malformedWorld) (string, string) {
		return func(t *testing.T, m *malformedWorld) (string, string) {
			d := m.push(t, "good")
			m.notarySign(t, d, format, edit(t, m))
			return "app:good", m.notaryEntry()
		}
	}
	keep := func(t *testing.T, _ *malformedWorld) func([]byte) []byte { return func(b []byte) []byte { return b } }
	cut := func(t *testing.T, _ *malformedWorld) func([]byte) []byte { return truncate }

	tests := []struct {
		name  string
		setup func(t *testing.T, m *malformedWorld) (image, entry string)
		want  Status
		msg   string // in the image's message
		// pinnable: the image's manifest is well-formed, so a pin (Kyverno pins whatever the
		// verification outcome; the denial discards it) may name its digest.
		pinnable bool
	}{
		// The image's own manifest or index (groups 1 and 15).
		{name: "Group15ManifestNotJSON", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			return servedManifest{mediaType: ociManifest, body: []byte("this is not a manifest")}
		}), want: Fail, msg: "does not parse: not a JSON object"},
		{name: "Group15ManifestTruncated", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			return servedManifest{mediaType: dockerManifest, body: truncate(manifestBody(t, m))}
		}), want: Fail, msg: "does not parse: not a JSON manifest: unexpected end of JSON input"},
		{name: "Group15IndexTruncated", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			d := m.push(t, "child")
			idx := `{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[{"mediaType":"` + ociManifest + `","digest":"` + d + `","size":100}]}`
			return servedManifest{mediaType: ociIndex, body: truncate([]byte(idx))}
		}), want: Fail, msg: "does not parse: not a JSON manifest"},
		{name: "Group15IndexDescriptorWithoutDigest", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			idx := `{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[{"mediaType":"` + ociManifest + `","size":100}]}`
			return servedManifest{mediaType: ociIndex, body: []byte(idx)}
		}), want: Fail, msg: "manifests[0]: descriptor without digest"},
		{name: "Group15ManifestClaimsToBeAnIndex", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			return servedManifest{mediaType: ociIndex, body: manifestBody(t, m)}
		}), want: Fail, msg: "served as " + ociIndex + ", its mediaType says " + dockerManifest},
		{name: "Group15ManifestWithoutConfig", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			return servedManifest{mediaType: ociManifest, body: []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","layers":[]}`)}
		}), want: Fail, msg: "config: descriptor without mediaType"},
		{name: "Group15ManifestSchemaVersion1", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			return servedManifest{mediaType: dockerManifest, body: bytes.Replace(manifestBody(t, m), []byte(`"schemaVersion":2`), []byte(`"schemaVersion":1`), 1)}
		}), want: Fail, msg: "schemaVersion must be 2"},
		{name: "Group9ManifestCutInTransit", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			return servedManifest{mediaType: dockerManifest, body: manifestBody(t, m), cut: true}
		}), want: Error, msg: "reading manifest response from http://"},

		// Simple-signing signatures (group 15): signed correctly, but not what they must be.
		{name: "Group15SimpleSigningPayloadNotJSON", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			return []layer{m.simpleSigning(t, []byte("not json"), nil)}
		}), want: Fail, msg: "no matching signatures: invalid character", pinnable: true},
		{name: "Group1SimpleSigningWrongDigest", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			other := m.push(t, "other")
			return []layer{m.simpleSigning(t, m.payloadFor(t, other), nil)}
		}), want: Fail, msg: "invalid or missing digest in claim", pinnable: true},
		{name: "Group15SimpleSigningMissingFields", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			return []layer{m.simpleSigning(t, []byte(`{"optional":{"a":"b"}}`), nil)}
		}), want: Fail, msg: "invalid or missing digest in claim", pinnable: true},
		{name: "Group15SignatureManifestNotJSON", setup: func(t *testing.T, m *malformedWorld) (string, string) {
			d := m.push(t, "good")
			m.served.Store("/v2/app/manifests/"+strings.Replace(d, ":", "-", 1)+".sig", servedManifest{mediaType: ociManifest, body: []byte("{\"schemaVersion\":2,")})
			return "app:good", keyEntry(m.key.PEM)
		}, want: Fail, msg: "no matching signatures: reading signatures", pinnable: true},
		{name: "Group15SignatureLayerWithoutSignature", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			l := m.simpleSigning(t, m.payloadFor(t, d), nil)
			delete(l.annotations, annSignature)
			return []layer{l}
		}), want: Fail, msg: "malformed layer: missing the dev.cosignproject.cosign/signature annotation", pinnable: true},
		{name: "Group15SignatureChainNotPEM", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			return []layer{m.simpleSigning(t, m.payloadFor(t, d), map[string]string{annChain: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})}
		}), want: Fail, msg: "malformed certificate chain", pinnable: true},
		{name: "Group15SignatureCertificateNotPEM", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			return []layer{m.simpleSigning(t, m.payloadFor(t, d), map[string]string{annCertificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})}
		}), want: Fail, msg: "malformed certificate", pinnable: true},
		{name: "Group15SignatureRekorBundleNotJSON", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			return []layer{m.simpleSigning(t, m.payloadFor(t, d), map[string]string{annBundle: "{"})}
		}), want: Fail, msg: "malformed Rekor bundle", pinnable: true},
		{name: "Group9SignatureChainOverCap", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			return []layer{m.simpleSigning(t, m.payloadFor(t, d), map[string]string{annChain: m.certPEMs(cosign.MaxChainCertificates + 1)})}
		}), want: Fail, msg: "the certificate chain holds 11 certificates, more than the limit of 10", pinnable: true},

		// Sigstore bundles (groups 6 and 15).
		{name: "Group15BundleTruncated", setup: goodWithBundle(keyBundle(""), func(t *testing.T) func([]byte) []byte { return truncate }),
			want: Fail, msg: "parsing the Sigstore bundle", pinnable: true},
		{name: "Group15BundleWrongMediaType", setup: goodWithBundle(keyBundle(""), func(t *testing.T) func([]byte) []byte {
			return editJSON(t, func(b map[string]any) { b["mediaType"] = "application/json" })
		}), want: Fail, msg: "invalid Sigstore bundle: error getting bundle version: validation error: unsupported media type: application/json", pinnable: true},
		{name: "Group15BundleWithoutVerificationMaterial", setup: goodWithBundle(keyBundle(""), func(t *testing.T) func([]byte) []byte {
			return editJSON(t, func(b map[string]any) { delete(b, "verificationMaterial") })
		}), want: Fail, msg: "invalid Sigstore bundle: invalid bundle: validation error: missing verification material", pinnable: true},
		{name: "Group6BundleForAnotherDigest", setup: func(t *testing.T, m *malformedWorld) (string, string) {
			d, other := m.push(t, "good"), m.push(t, "other")
			m.writeBundle(t, d, fixture.BundleSpec{Key: m.key.Private, Digest: other}, func(b []byte) []byte { return b })
			return "app:good", bundleEntry(m)
		}, want: Fail, msg: "provided artifact digest does not match any digest in statement", pinnable: true},
		{name: "Group9BundleChainOverCap", setup: goodWithBundle(keyBundle("v0.1"), func(t *testing.T) func([]byte) []byte {
			return editJSON(t, func(b map[string]any) {
				var certs []any
				for range cosign.MaxChainCertificates + 1 {
					certs = append(certs, map[string]any{"rawBytes": base64.StdEncoding.EncodeToString([]byte("not even DER"))})
				}
				b["verificationMaterial"] = map[string]any{"x509CertificateChain": map[string]any{"certificates": certs}}
			})
		}), want: Fail, msg: "the certificate chain holds 11 certificates, more than the limit of 10", pinnable: true},

		// DSSE envelopes and in-toto statements in the .att tag (group 15; group 5 for a
		// statement that names no subject).
		{name: "Group15DSSEPayloadNotBase64", setup: goodWithAttestation(func(t *testing.T, m *malformedWorld, d string) any {
			env := m.envelope(t, mtInToto, statement(t, d))
			env["payload"] = "%%% not base64 %%%"
			return env
		}), want: Fail, msg: "no matching attestations: unable to base64 decode payload", pinnable: true},
		{name: "Group15DSSEPayloadTypeNotSigned", setup: goodWithAttestation(func(t *testing.T, m *malformedWorld, d string) any {
			env := m.envelope(t, mtInToto, statement(t, d))
			env["payloadType"] = "application/json"
			return env
		}), want: Fail, msg: "no matching attestations: invalid payloadType application/json on envelope", pinnable: true},
		{name: "Group15DSSEPayloadTypeNotInToto", setup: goodWithAttestation(func(t *testing.T, m *malformedWorld, d string) any {
			return m.envelope(t, "application/json", statement(t, d))
		}), want: Fail, msg: "no matching attestations: invalid payloadType application/json on envelope", pinnable: true},
		{name: "Group15DSSENoSignatures", setup: goodWithAttestation(func(t *testing.T, m *malformedWorld, d string) any {
			env := m.envelope(t, mtInToto, statement(t, d))
			env["signatures"] = []any{}
			return env
		}), want: Fail, msg: "no matching attestations: no signature found", pinnable: true},
		{name: "Group15DSSEEnvelopeTruncated", setup: func(t *testing.T, m *malformedWorld) (string, string) {
			d := m.push(t, "good")
			l := attestation(t, m.envelope(t, mtInToto, statement(t, d)))
			l.body = truncate(l.body)
			m.writeTag(t, d, "att", l)
			return "app:good", attestEntryFor(m)
		}, want: Fail, msg: "no matching attestations: unexpected end of JSON input", pinnable: true},
		{name: "Group5InTotoStatementWithoutSubject", setup: goodWithAttestation(func(t *testing.T, m *malformedWorld, d string) any {
			return m.envelope(t, mtInToto, []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"`+slsaType+`","predicate":{}}`))
		}), want: Fail, msg: "no matching attestations: no matching subject digest found", pinnable: true},
		{name: "Group15InTotoSubjectDigestMalformed", setup: goodWithAttestation(func(t *testing.T, m *malformedWorld, d string) any {
			return m.envelope(t, mtInToto, []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"`+slsaType+
				`","subject":[{"name":"app","digest":{"sha256":"`+strings.ToUpper(strings.TrimPrefix(d, "sha256:"))+`zz"}}],"predicate":{}}`))
		}), want: Fail, msg: "no matching attestations: no matching subject digest found", pinnable: true},

		// Notary envelopes (group 14).
		{name: "Group14NotaryJWSTruncated", setup: goodWithNotary("jws", cut), want: Fail, msg: "unable to parse the digital signature: decoding the JWS envelope: unexpected end of JSON input", pinnable: true},
		{name: "Group14NotaryCOSETruncated", setup: goodWithNotary("cose", cut), want: Fail, msg: "unable to parse the digital signature: decoding the COSE envelope", pinnable: true},
		{name: "Group14NotaryJWSNotJSON", setup: goodWithNotary("jws", func(t *testing.T, _ *malformedWorld) func([]byte) []byte {
			return func([]byte) []byte { return []byte("garbage") }
		}), want: Fail, msg: "unable to parse the digital signature: decoding the JWS envelope: invalid character", pinnable: true},
		{name: "Group9NotaryChainOverCap", setup: goodWithNotary("jws", func(t *testing.T, m *malformedWorld) func([]byte) []byte {
			return editJSON(t, func(env map[string]any) {
				header := env["header"].(map[string]any)
				var chain []any
				for range notary.MaxChainCertificates + 1 {
					chain = append(chain, base64.StdEncoding.EncodeToString(m.leaf.Cert.Raw))
				}
				header["x5c"] = chain
			})
		}), want: Fail, msg: "the envelope's certificate chain holds 11 certificates, more than the limit of 10", pinnable: true},
		// The controls: each setup, untouched, passes.
		{name: "ControlServedManifest", setup: signedBad(func(t *testing.T, m *malformedWorld) servedManifest {
			return servedManifest{mediaType: dockerManifest, body: manifestBody(t, m)}
		}), want: Pass, pinnable: true},
		{name: "ControlSimpleSigningUntouched", setup: goodWithSig(func(t *testing.T, m *malformedWorld, d string) []layer {
			return []layer{m.simpleSigning(t, m.payloadFor(t, d), nil)}
		}), want: Pass, pinnable: true},
		{name: "ControlBundleUntouched", setup: goodWithBundle(keyBundle(""), func(t *testing.T) func([]byte) []byte { return func(b []byte) []byte { return b } }),
			want: Pass, pinnable: true},
		{name: "ControlAttestationUntouched", setup: goodWithAttestation(func(t *testing.T, m *malformedWorld, d string) any {
			return m.envelope(t, mtInToto, statement(t, d))
		}), want: Pass, pinnable: true},
		{name: "ControlNotaryUntouched", setup: goodWithNotary("cose", keep), want: Pass, pinnable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMalformedWorld(t)
			image, entry := tt.setup(t, m)
			img := m.reg.Host + "/" + image
			e := m.engine(t, entry)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", img)})
			if err != nil {
				t.Fatal(err)
			}
			im, ok := imageResults(t, resp)[img]
			if !ok {
				t.Fatalf("no result for %s: %+v", img, resp.Results)
			}
			t.Logf("%s: %s %q", img, im.Status, im.Message)
			if im.Status != tt.want || !strings.Contains(im.Message, tt.msg) {
				t.Errorf("%s: %s %q, want %s with %q", img, im.Status, im.Message, tt.want, tt.msg)
			}
			if d := resp.Decide(); d.Allowed != (tt.want == Pass) {
				t.Errorf("decision allowed = %v (%q), want %v", d.Allowed, d.Message, tt.want == Pass)
			}
			pins := 0
			defer func() {
				if tt.want == Pass && pins != 1 {
					t.Errorf("a passing image was pinned %d times, want once: %+v", pins, resp.Patches)
				}
			}()
			for _, op := range resp.Patches {
				if op.Path != "/spec/containers/0/image" {
					continue
				}
				pins++
				pinned, _ := op.Value.(string)
				_, digest, _ := strings.Cut(pinned, "@")
				if !tt.pinnable {
					t.Errorf("pinned %q: the manifest does not parse", pinned)
					continue
				}
				checkPinnedManifest(t, m, digest)
			}
		})
	}
}

// checkPinnedManifest fails unless the registry's manifest at digest parses as what its media
// type says.
func checkPinnedManifest(t *testing.T, m *malformedWorld, digest string) {
	t.Helper()
	got, err := remote.Get(m.digestRef(t, digest))
	if err != nil {
		t.Fatalf("reading the pinned manifest %s: %v", digest, err)
	}
	if err := registry.CheckManifest(got.MediaType, got.Manifest); err != nil {
		t.Errorf("pinned %s, whose manifest does not parse: %v", digest, err)
	}
}

// panickingVerifier panics, as a library reading hostile registry data might.
type panickingVerifier struct{}

func (panickingVerifier) Verify(context.Context, verify.Subject, *verify.Entry, *verify.Attestor) (*verify.Evidence, error) {
	panic("index out of range reading a hostile envelope")
}

// TestVerifierPanicIsCouldNotVerify (found reviewing where the fuzzed parsers run): images are verified on goroutines of
// their own, out of reach of the admission handler's recover, so a verifier that panics —
// without the cache, whose flights recover — crashed the process. It now makes the image
// "could not verify" and the other images of the request are still decided.
func TestVerifierPanicIsCouldNotVerify(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.engine(t, keyEntry(w.k1.PEM))
	e.verifiers = map[string]verify.Verifier{"Cosign": panickingVerifier{}}
	img := w.reg.Host + "/app:signed"
	resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", img, w.reg.Host+"/app@"+w.signed)})
	if err != nil {
		t.Fatal(err)
	}
	for ref, im := range imageResults(t, resp) {
		if im.Status != Error || !strings.HasPrefix(im.Message, "could not verify image "+ref+": internal error: index out of range") {
			t.Errorf("%s: %s %q, want error \"could not verify image %s: internal error: ...\"", ref, im.Status, im.Message, ref)
		}
	}
	if d := resp.Decide(); d.Allowed {
		t.Errorf("decision %+v, want a denial", d)
	}
}
