package notary

import (
	"context"
	"crypto/x509"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

// world is one test's registry, PKI and verifier.
type world struct {
	t        *testing.T
	reg      *fixture.Registry
	client   *registry.Client
	verifier *Verifier
	requests atomic.Int64

	root  *notarytest.CA
	inter *notarytest.CA
	leaf  *notarytest.Leaf
}

// newWorld starts a registry (with or without the referrers API) and a PKI root →
// intermediate → leaf, all valid now.
func newWorld(t *testing.T, referrers bool) *world {
	t.Helper()
	w := &world{t: t}
	w.reg = fixture.StartRegistry(referrers, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.requests.Add(1)
			h.ServeHTTP(rw, r)
		})
	})
	t.Cleanup(w.reg.Close)
	c, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.client = c
	w.verifier = w.newVerifier(Options{})
	w.root = mustCA(t)(notarytest.NewRoot("root", notarytest.Around(-48*time.Hour, 48*time.Hour)))
	w.inter = mustCA(t)(w.root.NewIntermediate("intermediate", notarytest.Around(-24*time.Hour, 24*time.Hour), notarytest.Endpoints{}))
	w.leaf = w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)})
	return w
}

func (w *world) newVerifier(o Options) *Verifier {
	o.Registry = func(bool) *registry.Client { return w.client }
	v, err := New(o)
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

func mustCA(t *testing.T) func(*notarytest.CA, error) *notarytest.CA {
	return func(v *notarytest.CA, err error) *notarytest.CA { check0(t, err); return v }
}

func mustLeaf(t *testing.T) func(*notarytest.Leaf, error) *notarytest.Leaf {
	return func(v *notarytest.Leaf, err error) *notarytest.Leaf { check0(t, err); return v }
}

func mustTSA(t *testing.T) func(*notarytest.TSA, error) *notarytest.TSA {
	return func(v *notarytest.TSA, err error) *notarytest.TSA { check0(t, err); return v }
}

func check0(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) issue(o notarytest.LeafOptions) *notarytest.Leaf {
	return mustLeaf(w.t)(w.inter.IssueLeaf(o))
}

// push pushes an image and returns its subject.
func (w *world) push(repoTag string) verify.Subject {
	w.t.Helper()
	d, err := w.reg.Push(context.Background(), repoTag)
	if err != nil {
		w.t.Fatal(err)
	}
	ref, err := imageref.Parse(w.reg.Host + "/" + repoTag)
	if err != nil {
		w.t.Fatal(err)
	}
	return verify.Subject{Ref: ref, Digest: d, Memo: &verify.Memo{}}
}

func (w *world) digestRef(s verify.Subject, digest string) name.Digest {
	w.t.Helper()
	d, err := name.NewDigest(s.Ref.Repository() + "@" + digest)
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// sign signs the subject (or the artifact of digest, when given) with leaf.
func (w *world) sign(s verify.Subject, leaf *notarytest.Leaf, so SignOptions, digest ...string) v1.Hash {
	w.t.Helper()
	d := s.Digest
	if len(digest) > 0 {
		d = digest[0]
	}
	so.Key, so.Chain = leaf.Key, leaf.Full()
	h, err := Sign(context.Background(), w.digestRef(s, d), so)
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

// fresh returns the subject with a new memo, as a new evaluation sees it.
func fresh(s verify.Subject) verify.Subject {
	s.Memo = &verify.Memo{}
	return s
}

func entry() *verify.Entry { return &verify.Entry{Type: "Notary"} }

// trusting returns a certificates attestor trusting certs (the first as cert, the rest as
// certChain).
func trusting(certs ...*x509.Certificate) *verify.Attestor {
	a := &verify.Attestor{Kind: "certificates", Path: ".attestors[0].entries[0]"}
	if len(certs) > 0 {
		a.Certificate, a.CertificateChain = certs[0], certs[1:]
	}
	return a
}

func withTSA(a *verify.Attestor, tsa *notarytest.TSA) *verify.Attestor {
	a.CTLog = &verify.CTLog{TSACertChain: []*x509.Certificate{tsa.Leaf, tsa.Root.Cert}}
	return a
}
