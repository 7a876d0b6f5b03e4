package registry_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/registry"
)

// anonymous is a keychain with no credentials, so tests never read the docker config.
var anonymous = authn.NewMultiKeychain()

// staticKeychain serves one authenticator per registry host.
type staticKeychain map[string]authn.Authenticator

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[r.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

// quietRegistry is ggcr's in-process registry without its request log.
func quietRegistry(opts ...ggcrregistry.Option) http.Handler {
	opts = append(opts, ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	return ggcrregistry.New(opts...)
}

// serve starts an HTTP server on 127.0.0.1 and returns its host:port.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the https ping probe makes the server complain
	s.Start()
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// newClient returns a Client with anonymous credentials unless opts sets a keychain.
func newClient(t *testing.T, opts registry.Options) *registry.Client {
	t.Helper()
	if opts.Keychain == nil {
		opts.Keychain = anonymous
	}
	c, err := registry.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// push writes a random image to host/repo:tag with the given remote options and returns it
// and its digest reference.
func push(t *testing.T, host, repo, tag string, opts ...remote.Option) (v1.Image, name.Digest) {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := mustTag(t, host+"/"+repo+":"+tag)
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return img, ref.Context().Digest(d.String())
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	r, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	r, err := name.NewDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ctxTimeout returns a context that ends after d (and with the test).
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// countsOf keeps the requests of one kind, by method and status.
func countsOf(snap map[registry.RequestKey]int, kind registry.Kind) map[string]int {
	out := map[string]int{}
	for k, n := range snap {
		if k.Kind == kind {
			out[k.Method+" "+http.StatusText(k.Status)+statusSuffix(k.Status)] += n
		}
	}
	return out
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statusSuffix(s int) string {
	if s == 0 {
		return "error"
	}
	return ""
}
