package engine

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ggstatic "github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
	"github.com/vouchproject/vouch/internal/verify/notary"
	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

// Media types of what the malformed-data tests craft.
const (
	mtSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	mtDSSE          = "application/vnd.dsse.envelope.v1+json"
	mtInToto        = "application/vnd.in-toto+json"
	annSignature    = "dev.cosignproject.cosign/signature"
	annCertificate  = "dev.sigstore.cosign/certificate"
	annChain        = "dev.sigstore.cosign/chain"
	annBundle       = "dev.sigstore.cosign/bundle"
)

// malformedWorld is an in-process registry (with the referrers API) that serves crafted
// manifests under chosen paths, a signing key, and a PKI for Notary signatures.
type malformedWorld struct {
	reg    *fixture.Registry
	key    *fixture.Key
	served sync.Map // URL path -> servedManifest
	root   *notarytest.CA
	leaf   *notarytest.Leaf
}

// servedManifest is a manifest the registry answers with, whatever was pushed.
type servedManifest struct {
	mediaType string
	body      []byte
	cut       bool // announce the whole body (Content-Length, digest), send its first half
}

func newMalformedWorld(t *testing.T) *malformedWorld {
	t.Helper()
	m := &malformedWorld{}
	m.reg = fixture.StartRegistry(true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			v, ok := m.served.Load(r.URL.Path)
			if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
				h.ServeHTTP(rw, r)
				return
			}
			s := v.(servedManifest)
			rw.Header().Set("Content-Type", s.mediaType)
			rw.Header().Set("Docker-Content-Digest", digestOf(s.body))
			rw.Header().Set("Content-Length", strconv.Itoa(len(s.body)))
			rw.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				body := s.body
				if s.cut {
					body = body[:len(body)/2]
				}
				rw.Write(body)
			}
		})
	})
	t.Cleanup(m.reg.Close)
	var err error
	if m.key, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	if m.root, err = notarytest.NewRoot("root", notarytest.Around(-48*time.Hour, 48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	inter, err := m.root.NewIntermediate("intermediate", notarytest.Around(-24*time.Hour, 24*time.Hour), notarytest.Endpoints{})
	if err != nil {
		t.Fatal(err)
	}
	if m.leaf, err = inter.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return m
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// engine returns an engine enforcing entry with the Cosign, SigstoreBundle and Notary verifiers
// on vouch's registry client, as cmd/vouch wires them.
func (m *malformedWorld) engine(t *testing.T, entry string) *Engine {
	t.Helper()
	e := newEngine(t, policyYAML("  validationFailureAction: Enforce\n", entry))
	regs, err := registry.NewPair(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		t.Fatal(err)
	}
	nv, err := notary.New(notary.Options{Registry: regs.Client})
	if err != nil {
		t.Fatal(err)
	}
	e.registry, e.verifiers = regs, map[string]verify.Verifier{"Cosign": cv, "SigstoreBundle": cv, "Notary": nv}
	return e
}

// push pushes a well-formed image as app:<tag> and returns its digest.
func (m *malformedWorld) push(t *testing.T, tag string) string {
	t.Helper()
	d, err := m.reg.Push(context.Background(), "app:"+tag)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// serve makes the registry answer app:<tag> and app@<digest of body> with body.
func (m *malformedWorld) serve(tag string, s servedManifest) string {
	d := digestOf(s.body)
	m.served.Store("/v2/app/manifests/"+tag, s)
	m.served.Store("/v2/app/manifests/"+d, s)
	return d
}

func (m *malformedWorld) digestRef(t *testing.T, digest string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(m.reg.Host + "/app@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// layer is one layer of a crafted cosign signature or attestation manifest.
type layer struct {
	mediaType   string
	body        []byte
	annotations map[string]string
}

// writeTag stores the layers as an OCI image under app:sha256-<hex of digest>.<suffix> (cosign's
// .sig and .att tags).
func (m *malformedWorld) writeTag(t *testing.T, digest, suffix string, layers ...layer) {
	t.Helper()
	tag, err := name.NewTag(m.reg.Host + "/app:" + strings.Replace(digest, ":", "-", 1) + "." + suffix)
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, l := range layers {
		if img, err = mutate.Append(img, mutate.Addendum{Layer: ggstatic.NewLayer(l.body, types.MediaType(l.mediaType)), Annotations: l.annotations}); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

// simpleSigning returns a simple-signing layer over body, signed with the world's key, with the
// annotations given added.
func (m *malformedWorld) simpleSigning(t *testing.T, body []byte, ann map[string]string) layer {
	t.Helper()
	signer, err := signature.LoadECDSASigner(m.key.Private, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.SignMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{annSignature: base64.StdEncoding.EncodeToString(sig)}
	for k, v := range ann {
		all[k] = v
	}
	return layer{mediaType: mtSimpleSigning, body: body, annotations: all}
}

// payloadFor is cosign's simple-signing payload naming digest.
func (m *malformedWorld) payloadFor(t *testing.T, digest string) []byte {
	t.Helper()
	pl, err := payload.Cosign{Image: m.digestRef(t, digest)}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// envelope returns a DSSE envelope of statement signed with the world's key for payloadType,
// decoded as a JSON object so that a case can break it.
func (m *malformedWorld) envelope(t *testing.T, payloadType string, statement []byte) map[string]any {
	t.Helper()
	signer, err := signature.LoadECDSASigner(m.key.Private, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dsse.WrapSigner(signer, payloadType).SignMessage(bytes.NewReader(statement))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	return env
}

// attestation is a .att layer holding env.
func attestation(t *testing.T, env any) layer {
	t.Helper()
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return layer{mediaType: mtDSSE, body: raw, annotations: map[string]string{annSignature: "", "predicateType": slsaType}}
}

// statement is an in-toto statement of the SLSA type naming digest.
func statement(t *testing.T, digest string) []byte {
	t.Helper()
	alg, hexDigest, _ := strings.Cut(digest, ":")
	raw, err := json.Marshal(map[string]any{
		"_type": "https://in-toto.io/Statement/v0.1", "predicateType": slsaType, "predicate": provenance(builderID),
		"subject": []any{map[string]any{"name": "app", "digest": map[string]string{alg: hexDigest}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// writeBundle stores a Sigstore bundle (JSON, edited by edit) as a referrer of the image.
func (m *malformedWorld) writeBundle(t *testing.T, digest string, spec fixture.BundleSpec, edit func(raw []byte) []byte) {
	t.Helper()
	raw, mediaType, err := fixture.MakeBundle(digest, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.WriteBundle(context.Background(), m.digestRef(t, digest), edit(raw), mediaType, spec.PredicateTypeOrSign(), "", m.reg.Host, nil); err != nil {
		t.Fatal(err)
	}
}

// editJSON decodes a JSON object, lets edit change it and encodes it again.
func editJSON(t *testing.T, edit func(map[string]any)) func([]byte) []byte {
	return func(raw []byte) []byte {
		var v map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		edit(v)
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// notarySign signs the image as notation does (format jws or cose), then replaces the
// signature's envelope with edit(envelope): the registry keeps only the edited signature.
func (m *malformedWorld) notarySign(t *testing.T, digest, format string, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	d := m.digestRef(t, digest)
	h, err := notary.Sign(ctx, d, notary.SignOptions{Key: m.leaf.Key, Chain: m.leaf.Full(), Format: format})
	if err != nil {
		t.Fatal(err)
	}
	sigRef := d.Context().Digest(h.String())
	got, err := remote.Get(sigRef)
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	if err := json.Unmarshal(got.Manifest, &man); err != nil {
		t.Fatal(err)
	}
	l := man["layers"].([]any)[0].(map[string]any)
	old, err := v1.NewHash(l["digest"].(string))
	if err != nil {
		t.Fatal(err)
	}
	blob, err := remote.Layer(d.Context().Digest(old.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := blob.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	env, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	edited := ggstatic.NewLayer(edit(env), types.MediaType(l["mediaType"].(string)))
	if err := remote.WriteLayer(d.Context(), edited); err != nil {
		t.Fatal(err)
	}
	nd, _ := edited.Digest()
	ns, _ := edited.Size()
	l["digest"], l["size"] = nd.String(), ns
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(d.Context().Digest(digestOf(raw)), rawManifest{raw, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, "http://"+m.reg.Host+"/v2/app/manifests/"+h.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting the original signature: %s", resp.Status)
	}
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// notaryEntry is a type Notary entry trusting the world's root.
func (m *malformedWorld) notaryEntry() string {
	var b strings.Builder
	b.WriteString("    - type: Notary\n      imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - certificates:\n            cert: |-\n")
	for _, l := range strings.Split(strings.TrimSpace(notarytest.PEM(m.root.Cert)), "\n") {
		b.WriteString("              " + l + "\n")
	}
	return b.String()
}

// certPEMs is n copies of a certificate as PEM: a chain longer than any real one.
func (m *malformedWorld) certPEMs(n int) string {
	return strings.Repeat(notarytest.PEM(m.leaf.Cert), n)
}

// truncate keeps the first half of b.
func truncate(b []byte) []byte { return b[:len(b)/2] }
