package cosign_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// FuzzParseBundle (landscape §4.4 groups 6 and 15): any bytes found in a bundle referrer are
// parsed by ParseBundle without a panic, a certificate chain of more than
// cosign.MaxChainCertificates is refused as too large before any certificate is parsed, a
// parsed bundle can be read every way discovery and messages read it, and a bundle passes the
// verification of a keys attestor (the fixed fuzz key, offline) only if it is bound to the
// image's digest: a message signature over it, or a DSSE in-toto statement naming it.
func FuzzParseBundle(f *testing.F) {
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
	other := fuzzDigest
	other.Hex = "0f" + other.Hex[2:]
	for _, spec := range []fixture.BundleSpec{
		{Key: key.Private},
		{Key: key.Private, Message: true},
		{Key: key.Private, Version: "v0.1"},
		{Key: key.Private, Version: "v0.2", Message: true},
		{Key: key.Private, Annotations: map[string]string{"env": "prod"}},
		{Key: key.Private, PredicateType: "https://slsa.dev/provenance/v0.2", Predicate: map[string]any{"builder": map[string]any{"id": "x"}}},
		{Key: key.Private, Digest: other.String()},
		{Leaf: leaf, Version: "v0.1"},
		{Leaf: leaf},
	} {
		raw, _, err := fixture.MakeBundle(fuzzDigest.String(), spec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1","verificationMaterial":{"x509CertificateChain":{"certificates":[{"rawBytes":"AA=="},{"rawBytes":"AA=="}]}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{"payload":"bnVsbA==","payloadType":"application/vnd.in-toto+json","signatures":[]}}`))
	f.Add([]byte(`{`))
	attestor := &verify.Attestor{Path: ".attestors[0].entries[0].keys", Kind: "keys", Keys: []verify.PublicKey{{Key: &key.Private.PublicKey, PEM: key.PEM}},
		Rekor: &verify.Rekor{IgnoreTlog: true}, CTLog: &verify.CTLog{IgnoreSCT: true}}
	want, err := hex.DecodeString(fuzzDigest.Hex)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := cosign.ParseBundle(raw)
		pb := &protobundle.Bundle{}
		if protojson.Unmarshal(raw, pb) == nil && len(pb.GetVerificationMaterial().GetX509CertificateChain().GetCertificates()) > cosign.MaxChainCertificates {
			if !errors.Is(err, verify.ErrTooLarge) {
				t.Fatalf("a chain of %d certificates was not refused as too large: %v", len(pb.GetVerificationMaterial().GetX509CertificateChain().GetCertificates()), err)
			}
		}
		if err != nil {
			if verify.Undecided(err) {
				t.Fatalf("a malformed bundle is undecided, want a failure: %v", err)
			}
			return
		}
		cosign.BundleViewsForFuzz(b, fuzzDigest)
		if cosign.VerifyBundleForFuzz(attestor, b, fuzzDigest) != nil {
			return
		}
		if ms := pb.GetMessageSignature(); ms != nil {
			if !bytes.Equal(ms.GetMessageDigest().GetDigest(), want) {
				t.Fatalf("a message signature over %x verified for %s", ms.GetMessageDigest().GetDigest(), fuzzDigest)
			}
			return
		}
		if b.Statement == nil {
			t.Fatalf("a DSSE bundle of payload type %q verified without an in-toto statement", b.PayloadType)
		}
		for _, s := range b.Statement.Subject {
			if s.Digest["sha256"] == fuzzDigest.Hex {
				return
			}
		}
		t.Fatalf("a statement whose subjects %v do not name %s verified", b.Statement.Subject, fuzzDigest)
	})
}

// TestFuzzBundleSeedsVerify: the seeds FuzzParseBundle starts from include bundles that verify
// (a DSSE statement and a message signature by the fuzz key), so that its property — a
// verified bundle is bound to the digest — is exercised, and one for another digest that does
// not.
func TestFuzzBundleSeedsVerify(t *testing.T) {
	key := fuzzKey(t)
	attestor := &verify.Attestor{Path: ".attestors[0].entries[0].keys", Kind: "keys", Keys: []verify.PublicKey{{Key: &key.Private.PublicKey, PEM: key.PEM}},
		Rekor: &verify.Rekor{IgnoreTlog: true}, CTLog: &verify.CTLog{IgnoreSCT: true}}
	other := fuzzDigest
	other.Hex = "0f" + other.Hex[2:]
	for _, tc := range []struct {
		spec fixture.BundleSpec
		pass bool
	}{
		{fixture.BundleSpec{Key: key.Private}, true},
		{fixture.BundleSpec{Key: key.Private, Message: true}, true},
		{fixture.BundleSpec{Key: key.Private, Version: "v0.1"}, true},
		{fixture.BundleSpec{Key: key.Private, Digest: other.String()}, false},
	} {
		raw, _, err := fixture.MakeBundle(fuzzDigest.String(), tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cosign.ParseBundle(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := cosign.VerifyBundleForFuzz(attestor, b, fuzzDigest); (err == nil) != tc.pass {
			t.Errorf("%+v: verification error %v, want pass %v", tc.spec, err, tc.pass)
		}
	}
}
