package registry_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/vouchproject/vouch/internal/registry"
)

// serveManifest answers a manifest request with manifestJSON and the headers ggcr needs.
func serveManifest(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	w.Header().Set("Docker-Content-Digest", sha256Of(manifestJSON))
	w.Header().Set("Content-Length", fmt.Sprint(len(manifestJSON)))
	if r.Method != http.MethodHead {
		io.WriteString(w, manifestJSON)
	}
}

// recorder is a server that records the Authorization header of every request it gets and
// answers manifest requests with manifestJSON.
type recorder struct {
	mu   sync.Mutex
	auth []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.auth = append(rec.auth, r.Header.Get("Authorization"))
	rec.mu.Unlock()
	serveManifest(w, r)
}

func (rec *recorder) seen() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.auth...)
}

// TestLandscapeGroup9RedirectCredentials (landscape §4.3, oras-go GHSA-vh4v-2xq2-g5cg): a
// registry that redirects a manifest to another port of the same host — which net/http treats
// as the same host and sends the Authorization header to — or to another host gets the
// manifest from there, and the other server never sees the credentials (Basic password or the
// registry's Bearer token).
func TestLandscapeGroup9RedirectCredentials(t *testing.T) {
	t.Parallel()
	good := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
	for _, auth := range []string{"basic", "bearer"} {
		for _, target := range []string{"127.0.0.1", "localhost"} {
			t.Run(auth+" to "+target, func(t *testing.T) {
				t.Parallel()
				other := &recorder{}
				otherHost := serve(t, other)
				_, otherPort, _ := strings.Cut(otherHost, ":")
				redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "http://"+target+":"+otherPort+r.URL.Path, http.StatusTemporaryRedirect)
				})
				host := serve(t, guarded(auth, redirect))
				c := newClient(t, registry.Options{Keychain: staticKeychain{host: good}})
				d, err := c.Manifest(ctxTimeout(t, 5*time.Second), mustDigest(t, host+"/app@"+sha256Of(manifestJSON)))
				if err != nil {
					t.Fatalf("Manifest through the redirect: %v", err)
				}
				if d.Digest.String() != sha256Of(manifestJSON) {
					t.Errorf("digest %s", d.Digest)
				}
				seen := other.seen()
				if len(seen) == 0 {
					t.Fatal("the redirect target got no request")
				}
				for _, a := range seen {
					if a != "" {
						t.Errorf("the redirect target got Authorization %q", a)
					}
				}
			})
		}
	}
}

// TestLandscapeGroup9RedirectCredentialsOwnClient: a library that sets the Authorization
// header itself and sends through Client.Transport with its own http.Client (oras-go, for
// notation) gets it dropped on a redirect to another port of the same host, which net/http
// would forward it to (it compares host names only).
func TestLandscapeGroup9RedirectCredentialsOwnClient(t *testing.T) {
	t.Parallel()
	other := &recorder{}
	otherHost := serve(t, other)
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+otherHost+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	hc := &http.Client{Transport: newClient(t, registry.Options{}).Transport()}
	req, err := http.NewRequestWithContext(ctxTimeout(t, 5*time.Second), http.MethodGet, "http://"+host+"/v2/app/manifests/"+sha256Of(manifestJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+registryToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp.Body); string(b) != manifestJSON {
		t.Errorf("body %q", b)
	}
	if seen := other.seen(); len(seen) != 1 || seen[0] != "" {
		t.Errorf("the redirect target got Authorization %q, want none", seen)
	}
}

// guarded puts h behind basic auth (canaryUser:canaryPassword) or the Docker token flow with
// a realm on the registry's own host.
func guarded(auth string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth == "basic" {
			if u, p, ok := r.BasicAuth(); !ok || u != canaryUser || p != canaryPassword {
				echo401(w, r, `Basic realm="vouch-test"`)
				return
			}
		} else {
			if r.URL.Path == "/token" {
				if u, p, ok := r.BasicAuth(); !ok || u != canaryUser || p != canaryPassword {
					echo401(w, r, `Basic realm="token"`)
					return
				}
				fmt.Fprintf(w, `{"token":%q}`, registryToken)
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+registryToken {
				echo401(w, r, fmt.Sprintf(`Bearer realm="http://%s/token",service="vouch-test"`, r.Host))
				return
			}
		}
		if r.URL.Path == "/v2/" {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// TestLandscapeGroup9RedirectDowngrade: an HTTPS registry that redirects to plain HTTP is
// refused before anything is sent over plain HTTP: "could not verify" (unavailable), at once.
func TestLandscapeGroup9RedirectDowngrade(t *testing.T) {
	t.Parallel()
	plain := &recorder{}
	plainHost := serve(t, plain)
	tlsSrv := httptest.NewUnstartedServer(guarded("basic", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+plainHost+r.URL.Path, http.StatusFound)
	})))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	host := strings.TrimPrefix(tlsSrv.URL, "https://")
	base := tlsSrv.Client().Transport.(*http.Transport).Clone()
	good := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
	c := newClient(t, registry.Options{Base: base, Keychain: staticKeychain{host: good}})
	for _, what := range []string{"resolve", "manifest"} {
		start := time.Now()
		_, err := call(ctxTimeout(t, 5*time.Second), t, c, what, host, "")
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "refusing redirect from https://"+host) {
			t.Fatalf("%s: error %v, want unavailable refusing the redirect", what, err)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s took %v", what, elapsed)
		}
		assertNoSecret(t, what, err)
	}
	if seen := plain.seen(); len(seen) != 0 {
		t.Errorf("the plain-HTTP target got %d requests (Authorization %q)", len(seen), seen)
	}
}

// TestLandscapeGroup9RedirectPingPong: two registries redirecting to each other without end
// cost MaxRedirects+1 requests, and the call ends at once with "stopped after N redirects".
func TestLandscapeGroup9RedirectPingPong(t *testing.T) {
	t.Parallel()
	var a, b string
	pingPong := func(to *string) http.Handler {
		return fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+*to+r.URL.Path, http.StatusFound)
		})
	}
	a = serve(t, pingPong(&b))
	b = serve(t, pingPong(&a))
	m := &registry.Counter{}
	c := newClient(t, registry.Options{Metrics: m, MaxRedirects: 3})
	start := time.Now()
	_, err := c.Manifest(ctxTimeout(t, 5*time.Second), mustTag(t, a+"/app:v1"))
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "stopped after 3 redirects from http://"+a+"/v2/app/manifests/v1") {
		t.Fatalf("error %v, want unavailable after 3 redirects", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v", elapsed)
	}
	if got := countsOf(m.Snapshot(), registry.KindManifest)["GET Found"]; got != 4 {
		t.Errorf("%d manifest requests, want 4 (the first and 3 redirects)", got)
	}
}
