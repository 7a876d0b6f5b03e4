package cosign_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	sgcosign "github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// fuzzKeyPEM is a fixed test key, so that committed corpus entries signed with it (bundles)
// stay meaningful. It signs nothing outside these tests.
const fuzzKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglDN9UzFwQKrD49K7
aQMaofP1dUqWUL5PTiVgs9hehSehRANCAATphq9JZSTNaPuKYBF8Fyu3jgFalnCU
LszVQg0RMn6RUpUScEJvXLcEASzBFQwLKm4XyjTa8hK+oO2e5c0Xv2fl
-----END PRIVATE KEY-----
`

// fuzzDigest is the image digest the fuzz targets verify against.
var fuzzDigest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("5e", 32)}

func fuzzKey(tb testing.TB) *fixture.Key {
	tb.Helper()
	block, _ := pem.Decode([]byte(fuzzKeyPEM))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	priv := k.(*ecdsa.PrivateKey)
	pemKey, err := fixture.PublicKeyPEM(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture.Key{Private: priv, PEM: pemKey}
}

// keyCheckOpts are the cosign checks of an offline keys attestor (ignoreTlog, ignoreSCT).
func keyCheckOpts(tb testing.TB, k *fixture.Key, claims func(oci.Signature, v1.Hash, map[string]any) error) *sgcosign.CheckOpts {
	tb.Helper()
	v, err := signature.LoadECDSAVerifier(&k.Private.PublicKey, crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	return &sgcosign.CheckOpts{SigVerifier: v, ClaimVerifier: claims, IgnoreTlog: true, IgnoreSCT: true, Offline: true}
}

func fuzzImage(tb testing.TB) name.Digest {
	tb.Helper()
	d, err := name.NewDigest("registry.example/app@" + fuzzDigest.String())
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// FuzzSimpleSigning (landscape §4.4 groups 1 and 15): any payload, correctly signed with the
// attestor's key, passes cosign's checks only if it is a simple-signing payload naming the
// image's digest, and the digest vouch then reports (and pins) is that digest. Never a panic.
func FuzzSimpleSigning(f *testing.F) {
	key := fuzzKey(f)
	good, err := payload.Cosign{Image: fuzzImage(f), Annotations: map[string]any{"env": "prod"}}.MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	other := fuzzDigest
	other.Hex = strings.Repeat("0f", 32)
	f.Add(bytes.ReplaceAll(good, []byte(fuzzDigest.Hex), []byte(other.Hex)))
	f.Add(bytes.ReplaceAll(good, []byte(fuzzDigest.String()), []byte(strings.ToUpper(fuzzDigest.String()))))
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"` + fuzzDigest.String() + `"}}}`))
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"` + fuzzDigest.String() + `","docker-manifest-digest":"sha256:00"}}}`))
	f.Add([]byte(`{"critical":null,"optional":{"a":1}}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	signer, err := signature.LoadECDSASigner(key.Private, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	co := keyCheckOpts(f, key, sgcosign.SimpleClaimVerifier)
	f.Fuzz(func(t *testing.T, pl []byte) {
		raw, err := signer.SignMessage(bytes.NewReader(pl))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
		if err != nil {
			t.Fatal(err)
		}
		verr := cosign.VerifySimpleForFuzz(context.Background(), sig, fuzzDigest, co)
		digest, everr := cosign.EvidenceDigestForFuzz(sig, fuzzDigest)
		if verr != nil {
			return
		}
		var ss payload.SimpleContainerImage
		if err := json.Unmarshal(pl, &ss); err != nil || ss.Critical.Image.DockerManifestDigest != fuzzDigest.String() {
			t.Fatalf("payload %q passed, but does not name %s (%v)", pl, fuzzDigest, err)
		}
		if everr != nil || digest != fuzzDigest.String() {
			t.Fatalf("payload %q passed, evidence digest %q (%v), want %s", pl, digest, everr, fuzzDigest)
		}
	})
}

// memRegistry answers registry requests from memory, without a socket: the ping, and the
// manifests and blobs it holds by URL path.
type memRegistry map[string]memObject

type memObject struct {
	mediaType string
	body      []byte
}

func (m memRegistry) RoundTrip(r *http.Request) (*http.Response, error) {
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	body := []byte("{}")
	if r.URL.Path != "/v2/" {
		o, ok := m[r.URL.Path]
		if !ok {
			resp.StatusCode = http.StatusNotFound
			o = memObject{mediaType: "application/json", body: []byte(`{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`)}
		}
		sum := sha256.Sum256(o.body)
		resp.Header.Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		resp.Header.Set("Content-Type", o.mediaType)
		body = o.body
	}
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.ContentLength = int64(len(body))
	if r.Method == http.MethodHead {
		body = nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FuzzSignatureLayer: cosign reads a signature layer's certificate, chain, Rekor bundle and
// RFC 3161 timestamp from annotations a registry controls. Whatever they hold, vouch's check
// of a layer (checkLayer) never panics and never answers "could not verify": a layer is
// well-formed or it fails (invalid, or too large — a chain of more than
// cosign.MaxChainCertificates is refused before any is parsed); and a layer it accepts is read
// by cosign without a parse error, so no later step misreports malformed data as a registry
// failure. The layers are real cosign remote layers, served from memory.
func FuzzSignatureLayer(f *testing.F) {
	key := fuzzKey(f)
	root, err := fixture.NewRootCA("root", fixture.ValidAround(-time.Hour, time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	inter, err := root.NewIntermediate("intermediate", fixture.ValidAround(-time.Hour, time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	leaf, err := inter.IssueLeaf(fixture.LeafOptions{Emails: []string{"a@example.com"}, Validity: fixture.ValidAround(-time.Hour, time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	signer, err := signature.LoadECDSASigner(key.Private, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	pl, err := payload.Cosign{Image: fuzzImage(f)}.MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	raw, err := signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		f.Fatal(err)
	}
	rekor, err := fixture.RekorBundle(key, pl, raw, []byte(key.PEM), time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	rekorJSON, err := json.Marshal(rekor)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(leaf.PEM(), leaf.ChainPEM(), string(rekorJSON), "", false)
	f.Add("", "", "", "", false)
	f.Add("", "", "", "", true)
	f.Add(leaf.PEM(), strings.Repeat(leaf.ChainPEM(), 6), "", "", false)
	f.Add(strings.Repeat(leaf.PEM(), 11), "", "", "", false)
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "", "", "", false)
	f.Add("", "-----BEGIN PUBLIC KEY-----\n"+base64.StdEncoding.EncodeToString([]byte("x"))+"\n-----END PUBLIC KEY-----\n", "", "", false)
	f.Add("", "", "{", `{"SignedRFC3161Timestamp":"AAAA"}`, false)
	f.Add("", "", `{"SignedEntryTimestamp":null,"Payload":{"body":null,"integratedTime":0,"logIndex":0,"logID":""}}`, "[]", false)

	b64sig := base64.StdEncoding.EncodeToString(raw)
	config := []byte("{}")
	tag := "registry.example/app:" + strings.Replace(fuzzDigest.String(), ":", "-", 1) + ".sig"
	ref, err := name.NewTag(tag)
	if err != nil {
		f.Fatal(err)
	}
	// One in-memory registry and puller (its ping and token cache) for every input: each
	// input replaces the manifest.
	reg := memRegistry{
		"/v2/app/blobs/" + sha256Digest(pl):     {mediaType: "application/octet-stream", body: pl},
		"/v2/app/blobs/" + sha256Digest(config): {mediaType: "application/octet-stream", body: config},
	}
	puller, err := remote.NewPuller(remote.WithTransport(reg))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cert, chain, rekorBundle, timestamp string, unsigned bool) {
		ann := map[string]string{}
		if !unsigned {
			ann["dev.cosignproject.cosign/signature"] = b64sig
		}
		for k, v := range map[string]string{
			"dev.sigstore.cosign/certificate":      cert,
			"dev.sigstore.cosign/chain":            chain,
			"dev.sigstore.cosign/bundle":           rekorBundle,
			"dev.sigstore.cosign/rfc3161timestamp": timestamp,
		} {
			if v != "" {
				ann[k] = v
			}
		}
		manifest, err := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256Digest(config), "size": len(config)},
			"layers": []any{map[string]any{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sha256Digest(pl), "size": len(pl), "annotations": ann}},
		})
		if err != nil {
			t.Fatal(err)
		}
		reg["/v2/app/manifests/"+ref.TagStr()] = memObject{mediaType: "application/vnd.oci.image.manifest.v1+json", body: manifest}
		sigs, err := ociremote.Signatures(ref, ociremote.WithRemoteOptions(remote.Reuse(puller)))
		if err != nil {
			t.Fatal(err)
		}
		list, err := sigs.Get()
		if err != nil || len(list) != 1 {
			t.Fatalf("reading the layer: %d layers, %v", len(list), err)
		}
		err = cosign.CheckLayerForFuzz(list[0])
		// The layer's annotations as cosign read them back (JSON turned invalid UTF-8 into U+FFFD).
		got, _ := list[0].Annotations()
		overCap := strings.Count(got["dev.sigstore.cosign/certificate"], "-----BEGIN") > cosign.MaxChainCertificates ||
			strings.Count(got["dev.sigstore.cosign/chain"], "-----BEGIN") > cosign.MaxChainCertificates
		switch {
		case overCap && !errors.Is(err, verify.ErrTooLarge):
			t.Fatalf("a chain over the cap was not refused as too large: %v", err)
		case err != nil && verify.Undecided(err):
			t.Fatalf("a malformed layer is undecided, want a failure: %v", err)
		case err != nil:
			return
		}
		c, err := cosign.CopyLayerForFuzz(list[0])
		if err != nil {
			t.Fatalf("a layer checkLayer accepted does not read: %v", err)
		}
		if _, err := static.Copy(c); err != nil {
			t.Fatalf("copying a checked layer: %v", err)
		}
	})
}
