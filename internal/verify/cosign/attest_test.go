package cosign_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

const slsa = fixture.SLSAProvenanceV02

// attested pushes an image, signs the given attestations of it and returns the subject.
func (p *pki) attested(t *testing.T, specs ...fixture.AttestSpec) verify.Subject {
	t.Helper()
	s := p.image(t)
	for _, spec := range specs {
		if err := p.reg.Attest(context.Background(), s.Ref.Path, s.Digest, spec); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// keyAttestor is a keys attestor of an attestation, offline (no tlog, no SCT).
func keyAttestor(k *fixture.Key) *verify.Attestor {
	return &verify.Attestor{Path: ".attestations[0].attestors[0].entries[0].keys", Kind: "keys",
		Keys:  []verify.PublicKey{{Key: &k.Private.PublicKey, PEM: k.PEM}},
		Rekor: &verify.Rekor{IgnoreTlog: true}, CTLog: &verify.CTLog{IgnoreSCT: true}}
}

// attestations asks the verifier and renders the outcome as outcome does: "pass: <types and
// builders>" listing each statement's type, "fail: <message>" or "undecided: <message>".
func attestations(t *testing.T, p *pki, s verify.Subject, a *verify.Attestor, typ string) string {
	t.Helper()
	sts, _, err := p.verifier.Attestations(context.Background(), s, &verify.Entry{Type: "Cosign"}, a, typ)
	switch {
	case err == nil:
		var types []string
		for _, st := range sts {
			if st["type"] != typ {
				t.Fatalf("statement of type %v returned for %s", st["type"], typ)
			}
			pred, _ := st["predicate"].(map[string]any)
			types = append(types, st["type"].(string)+" "+stringOf(pred["builder"]))
		}
		return "pass: " + strings.Join(types, ", ")
	case verify.Undecided(err):
		return "undecided: " + err.Error()
	}
	var ve *verify.Error
	if !errors.As(err, &ve) {
		t.Fatalf("failure without a code: %v", err)
	}
	return "fail: " + err.Error()
}

func stringOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["id"].(string)
	return s
}

func builder(id string) map[string]any {
	return map[string]any{"builder": map[string]any{"id": id}, "buildType": "https://example.com/build/v1"}
}

func TestAttestations(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	k1, k2 := mustKey(t), mustKey(t)
	leaf := p.leaf(t, nil)
	other := p.leaf(t, func(o *fixture.LeafOptions) { o.Emails = []string{"mallory@example.com"} })
	ignoreTlog := func(a *verify.Attestor) *verify.Attestor { a.Rekor = &verify.Rekor{IgnoreTlog: true}; return a }

	t.Run("key, SLSA provenance", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Key: k1.Private, PredicateType: slsa, Predicate: builder("https://ci.example.com")})
		if got := attestations(t, p, s, keyAttestor(k1), slsa); got != "pass: "+slsa+" https://ci.example.com" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("every statement of the type is returned", func(t *testing.T) {
		s := p.attested(t,
			fixture.AttestSpec{Key: k1.Private, PredicateType: slsa, Predicate: builder("a")},
			fixture.AttestSpec{Key: k1.Private, PredicateType: fixture.CosignVuln, Predicate: map[string]any{}},
			fixture.AttestSpec{Key: k1.Private, PredicateType: slsa, Predicate: builder("b")})
		if got := attestations(t, p, s, keyAttestor(k1), slsa); got != "pass: "+slsa+" a, "+slsa+" b" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Key: k2.Private, PredicateType: slsa})
		expect(t, attestations(t, p, s, keyAttestor(k1), slsa), "fail: no matching attestations: ")
	})
	t.Run("no attestations", func(t *testing.T) {
		s := p.attested(t)
		got := attestations(t, p, s, keyAttestor(k1), slsa)
		if got != "fail: no matching attestations: no attestations found" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("statement for another digest copied to this image", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Key: k1.Private, PredicateType: slsa,
			SubjectDigest: "sha256:" + strings.Repeat("ab", 32)})
		expect(t, attestations(t, p, s, keyAttestor(k1), slsa), "fail: no matching attestations: no matching subject digest found")
	})
	t.Run("keyless, identity matches", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Leaf: leaf, PredicateType: slsa, Predicate: builder("x")})
		expectPass(t, attestations(t, p, s, ignoreTlog(p.keyless(verify.Keyless{Subject: signer, Issuer: issuer})), slsa))
	})
	t.Run("keyless, another identity", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Leaf: other, PredicateType: slsa})
		expect(t, attestations(t, p, s, ignoreTlog(p.keyless(verify.Keyless{Subject: signer, Issuer: issuer})), slsa),
			"fail: subject mismatch: expected signer@example.com, received mallory@example.com")
	})
	t.Run("keyless, the statement by another identity is ignored", func(t *testing.T) {
		s := p.attested(t,
			fixture.AttestSpec{Leaf: other, PredicateType: slsa, Predicate: builder("evil")},
			fixture.AttestSpec{Leaf: leaf, PredicateType: slsa, Predicate: builder("good")})
		if got := attestations(t, p, s, ignoreTlog(p.keyless(verify.Keyless{Subject: signer})), slsa); got != "pass: "+slsa+" good" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("keyless needs a tlog bundle unless ignoreTlog", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Leaf: leaf, PredicateType: slsa})
		expect(t, attestations(t, p, s, p.keyless(verify.Keyless{Subject: signer}), slsa), "fail: no Rekor bundle on the attestation")
	})
	t.Run("certificates with chain", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Leaf: leaf, PredicateType: slsa})
		a := ignoreTlog(p.certificates(nil, []*x509.Certificate{p.ca.Cert, p.root.Cert}))
		expectPass(t, attestations(t, p, s, a, slsa))
	})
	t.Run("annotations are read from the in-toto subject", func(t *testing.T) {
		s := p.attested(t, fixture.AttestSpec{Key: k1.Private, PredicateType: slsa})
		a := keyAttestor(k1)
		a.Annotations = map[string]string{"env": "prod"}
		expect(t, attestations(t, p, s, a, slsa), "fail: no matching attestations: missing or incorrect annotation")
	})
	t.Run("registry down is undecided", func(t *testing.T) {
		reg := fixture.StartRegistry(false, nil)
		host := reg.Host
		reg.Close()
		ref, err := imageref.Parse(host + "/app:v1")
		if err != nil {
			t.Fatal(err)
		}
		s := verify.Subject{Ref: ref, Digest: "sha256:" + strings.Repeat("0", 64)}
		expect(t, attestations(t, p, s, keyAttestor(k1), slsa), "undecided: fetching attestations")
	})
	t.Run("other verification types are not read here", func(t *testing.T) {
		s := p.attested(t)
		_, _, err := p.verifier.Attestations(context.Background(), s, &verify.Entry{Type: "Notary"}, keyAttestor(k1), slsa)
		if !errors.Is(err, verify.ErrUnsupported) {
			t.Errorf("err = %v, want unsupported", err)
		}
	})
}

// TestAttestationsFetchedOncePerSubject: attestors of one subject share the fetch of the
// attestation tag (the Subject's memo), as signatures do.
func TestAttestationsFetchedOncePerSubject(t *testing.T) {
	t.Parallel()
	var manifests atomic.Int64
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, ".att") {
				manifests.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	defer reg.Close()
	k1, k2 := mustKey(t), mustKey(t)
	ctx := context.Background()
	digest, err := reg.Push(ctx, "app:v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*fixture.Key{k1, k2} {
		if err := reg.Attest(ctx, "app", digest, fixture.AttestSpec{Key: k.Private, PredicateType: slsa}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := cosign.New(cosign.Options{Remote: func(ctx context.Context, _ bool) []remote.Option { return []remote.Option{remote.WithContext(ctx)} }})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := imageref.Parse(reg.Host + "/app:v1")
	s := verify.Subject{Ref: ref, Digest: digest, Memo: &verify.Memo{}}
	manifests.Store(0)
	for _, k := range []*fixture.Key{k1, k2} {
		sts, _, err := v.Attestations(ctx, s, &verify.Entry{}, keyAttestor(k), slsa)
		if err != nil || len(sts) != 1 {
			t.Fatalf("statements %v, err %v", sts, err)
		}
	}
	if n := manifests.Load(); n != 1 {
		t.Errorf("the attestation tag was read %d times, want once", n)
	}
}

// TestLandscapeGroup5PredicateType covers landscape §4.4 group 5: the predicate type a policy
// requires is matched exactly against the SIGNED statement — never the layer's unsigned
// annotation, a prefix, a substring, another case or a pattern — and its absence fails even
// when other signed attestations exist.
func TestLandscapeGroup5PredicateType(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	k1, k2 := mustKey(t), mustKey(t)
	none := "pass: " // verified attestations exist, none of the type: the caller reports the absence
	tests := []struct {
		name  string
		specs []fixture.AttestSpec
		typ   string
		want  string
	}{
		{"required type absent while other signed attestations exist",
			[]fixture.AttestSpec{{Key: k1.Private, PredicateType: fixture.CosignVuln}, {Key: k1.Private, PredicateType: fixture.CosignCustom}},
			slsa, none},
		{"a prefix of the required type", []fixture.AttestSpec{{Key: k1.Private, PredicateType: "https://slsa.dev/provenance/v0"}}, slsa, none},
		{"the required type with a suffix", []fixture.AttestSpec{{Key: k1.Private, PredicateType: slsa + "-evil"}}, slsa, none},
		{"the required type inside another", []fixture.AttestSpec{{Key: k1.Private, PredicateType: "https://evil.example/" + slsa}}, slsa, none},
		{"another case", []fixture.AttestSpec{{Key: k1.Private, PredicateType: strings.ToUpper(slsa)}}, slsa, none},
		{"the policy type is not a pattern", []fixture.AttestSpec{{Key: k1.Private, PredicateType: slsa}}, "https://slsa.dev/*", none},
		{"scheme-less type is another type", []fixture.AttestSpec{{Key: k1.Private, PredicateType: fixture.CosignCustom}},
			"cosign.sigstore.dev/attestation/v1", none},
		{"the annotation claims the type, the signed statement does not",
			[]fixture.AttestSpec{{Key: k1.Private, PredicateType: fixture.CosignCustom, AnnotationType: slsa}}, slsa, none},
		{"the annotation denies the type, the signed statement has it",
			[]fixture.AttestSpec{{Key: k1.Private, PredicateType: slsa, AnnotationType: fixture.CosignCustom, Predicate: builder("ci")}},
			slsa, "pass: " + slsa + " ci"},
		{"an envelope that is not an in-toto statement",
			[]fixture.AttestSpec{{Key: k1.Private, PredicateType: slsa, PayloadType: "application/vnd.example+json"}},
			slsa, "fail: no matching attestations: invalid payloadType application/vnd.example+json"},
		{"the type signed by an untrusted key next to another type by the trusted key",
			[]fixture.AttestSpec{{Key: k2.Private, PredicateType: slsa}, {Key: k1.Private, PredicateType: fixture.CosignVuln}}, slsa, none},
		{"a statement without a predicate type",
			[]fixture.AttestSpec{{Key: k1.Private, Statement: []byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"x","digest":{"sha256":"SUBJECT"}}],"predicate":{}}`)}},
			slsa, none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := p.image(t)
			for _, spec := range tt.specs {
				if spec.Statement != nil {
					spec.Statement = []byte(strings.ReplaceAll(string(spec.Statement), "SUBJECT", strings.TrimPrefix(s.Digest, "sha256:")))
				}
				if err := p.reg.Attest(context.Background(), s.Ref.Path, s.Digest, spec); err != nil {
					t.Fatal(err)
				}
			}
			got := attestations(t, p, s, keyAttestor(k1), tt.typ)
			if tt.want == none && got != none || !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func expectPass(t *testing.T, got string) {
	t.Helper()
	if !strings.HasPrefix(got, "pass: ") || got == "pass: " {
		t.Fatalf("got %s, want statements", got)
	}
}

func mustKey(t *testing.T) *fixture.Key {
	t.Helper()
	k, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
