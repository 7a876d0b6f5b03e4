package cosign_test

import (
	"context"
	"crypto/x509"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// pki is a test PKI: a root → intermediate CA issuing Fulcio-style certificates, Rekor and CT
// log keys, and a timestamp authority; and a registry to sign images in.
type pki struct {
	reg       *fixture.Registry
	root, ca  *fixture.CA
	rekor, ct *fixture.Key
	tsa       *fixture.TSA
	verifier  *cosign.Verifier
}

const (
	signer = "signer@example.com"
	issuer = "https://issuer.example.com"
)

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{reg: fixture.StartRegistry(false, nil)}
	t.Cleanup(p.reg.Close)
	var err error
	if p.root, err = fixture.NewRootCA("vouch test root", fixture.ValidAround(-48*time.Hour, 48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if p.ca, err = p.root.NewIntermediate("vouch test intermediate", fixture.ValidAround(-24*time.Hour, 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if p.rekor, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	if p.ct, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	if p.tsa, err = fixture.NewTSA("vouch test tsa", fixture.ValidAround(-24*time.Hour, 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	p.verifier, err = cosign.New(cosign.Options{Remote: func(ctx context.Context, _ bool) []remote.Option {
		return []remote.Option{remote.WithContext(ctx)}
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// leaf issues a certificate: signer's email, the issuer in both Fulcio extensions, valid for
// the last and next hour, with an SCT of the CT log — unless opts say otherwise.
func (p *pki) leaf(t *testing.T, edit func(*fixture.LeafOptions)) *fixture.Leaf {
	t.Helper()
	opts := fixture.LeafOptions{Emails: []string{signer}, Issuer: issuer, Validity: fixture.ValidAround(-time.Hour, time.Hour), SCTLog: p.ct.Private}
	if edit != nil {
		edit(&opts)
	}
	l, err := p.ca.IssueLeaf(opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// image pushes an image and signs it with each spec; it returns the subject to verify.
func (p *pki) image(t *testing.T, specs ...fixture.SignSpec) verify.Subject {
	t.Helper()
	ctx := context.Background()
	name := strings.Trim(repoChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	digest, err := p.reg.Push(ctx, name+":v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if err := p.reg.SignWith(ctx, name, digest, s); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := imageref.Parse(p.reg.Host + "/" + name + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	return verify.Subject{Ref: ref, Digest: digest}
}

// keyless returns a keyless attestor trusting the PKI's root, with the Rekor and CT keys.
func (p *pki) keyless(k verify.Keyless) *verify.Attestor {
	k.Roots = []*x509.Certificate{p.root.Cert}
	return &verify.Attestor{
		Path:    ".attestors[0].entries[0].keyless",
		Kind:    "keyless",
		Keyless: &k,
		Rekor:   &verify.Rekor{PubKey: pub(p.rekor)},
		CTLog:   &verify.CTLog{PubKey: pub(p.ct)},
	}
}

// certificates returns a certificates attestor (cert and/or chain), with the Rekor and CT keys.
func (p *pki) certificates(cert *x509.Certificate, chain []*x509.Certificate) *verify.Attestor {
	return &verify.Attestor{
		Path:             ".attestors[0].entries[0].certificates",
		Kind:             "certificates",
		Certificate:      cert,
		CertificateChain: chain,
		Rekor:            &verify.Rekor{PubKey: pub(p.rekor)},
		CTLog:            &verify.CTLog{PubKey: pub(p.ct)},
	}
}

// signed is a signature by the leaf with its chain, a Rekor bundle and a timestamp.
func (p *pki) signed(l *fixture.Leaf) fixture.SignSpec {
	return fixture.SignSpec{Leaf: l, Rekor: p.rekor}
}

func pub(k *fixture.Key) *verify.PublicKey {
	return &verify.PublicKey{Key: &k.Private.PublicKey, PEM: k.PEM}
}

// outcome is what a verification said: "pass", "fail: <message>" or "undecided: <message>".
func outcome(t *testing.T, p *pki, s verify.Subject, e *verify.Entry, a *verify.Attestor) string {
	t.Helper()
	if e == nil {
		e = &verify.Entry{Type: "Cosign"}
	}
	ev, err := p.verifier.Verify(context.Background(), s, e, a)
	switch {
	case err == nil:
		if ev == nil || ev.Digest != s.Digest {
			t.Fatalf("evidence %+v, want digest %s", ev, s.Digest)
		}
		return "pass"
	case verify.Undecided(err):
		return "undecided: " + err.Error()
	}
	var ve *verify.Error
	if !errors.As(err, &ve) {
		t.Fatalf("failure without a code: %v", err)
	}
	return "fail: " + err.Error()
}

// expect checks an outcome: want is "pass", or a prefix "fail: " / "undecided: " followed by
// a substring of the message.
func expect(t *testing.T, got, want string) {
	t.Helper()
	if want == "pass" {
		if got != "pass" {
			t.Fatalf("got %s, want pass", got)
		}
		return
	}
	kind, text, _ := strings.Cut(want, ": ")
	if !strings.HasPrefix(got, kind+": ") || !strings.Contains(got, text) {
		t.Fatalf("got %s\nwant %s: ...%s...", got, kind, text)
	}
}

var repoChars = regexp.MustCompile(`[^a-z0-9]+`)

func re(t *testing.T, expr string) *regexp.Regexp {
	t.Helper()
	return regexp.MustCompile(expr)
}
