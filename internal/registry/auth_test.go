package registry_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/registry"
)

const (
	canaryUser     = "vouch-canary-user"
	canaryPassword = "canary-Pa55w0rd-7f3e9c1d"
	registryToken  = "canary-registry-token-5b2a"
)

// echo401 refuses a request and, like a careless or hostile server, echoes the credentials it
// received in the error body.
func echo401(w http.ResponseWriter, r *http.Request, challenge string) {
	user, pass, _ := r.BasicAuth()
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	msg := fmt.Sprintf("bad credentials: header %q user %q password %q pair %s:%s", r.Header.Get("Authorization"), user, pass, user, pass)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": msg}}})
}

// basicAuthRegistry guards the in-process registry with HTTP basic auth for user:password.
func basicAuthRegistry(password string) http.Handler {
	reg := quietRegistry()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != canaryUser || p != password {
			echo401(w, r, `Basic realm="vouch-test"`)
			return
		}
		reg.ServeHTTP(w, r)
	})
}

// tokenRegistry guards the in-process registry with the Docker token flow: /token exchanges
// basic credentials for registryToken, which /v2/ requests must bear.
func tokenRegistry(password string) http.Handler {
	reg := quietRegistry()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != canaryUser || p != password {
				echo401(w, r, `Basic realm="token"`)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"token": registryToken})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+registryToken {
			echo401(w, r, fmt.Sprintf(`Bearer realm="http://%s/token",service="vouch-test"`, r.Host))
			return
		}
		reg.ServeHTTP(w, r)
	})
}

// TestCredentials: a static keychain authenticates against basic and token registries, and the
// password never appears in an error, even when the server echoes it back.
func TestCredentials(t *testing.T) {
	t.Parallel()
	for _, kind := range []struct {
		name    string
		handler func(password string) http.Handler
	}{{"basic", basicAuthRegistry}, {"token", tokenRegistry}} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			good := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
			host := serve(t, kind.handler(canaryPassword))
			_, dig := push(t, host, "app", "v1", remote.WithAuth(good))
			ctx := ctxTimeout(t, 10*time.Second)

			c := newClient(t, registry.Options{Keychain: staticKeychain{host: good}})
			if _, err := c.Resolve(ctx, mustTag(t, host+"/app:v1")); err != nil {
				t.Fatalf("Resolve with credentials: %v", err)
			}
			if _, err := c.Manifest(ctx, dig); err != nil {
				t.Fatalf("Manifest with credentials: %v", err)
			}

			// The registry now expects another password; the client still sends the canary.
			other := serve(t, kind.handler("another-password"))
			wrong := newClient(t, registry.Options{Keychain: staticKeychain{other: good}})
			anon := newClient(t, registry.Options{})
			for _, tc := range []struct {
				name string
				c    *registry.Client
				call string
			}{
				{"wrong password, Resolve", wrong, "resolve"},
				{"wrong password, Manifest", wrong, "manifest"},
				{"wrong password, Blob", wrong, "blob"},
				{"no credentials, Manifest", anon, "manifest"},
			} {
				_, err := call(ctx, t, tc.c, tc.call, other, dig.DigestStr())
				if registry.Classify(err) != registry.CodeAuth {
					t.Errorf("%s: error %v, want auth", tc.name, err)
					continue
				}
				assertNoSecret(t, tc.name, err)
			}
		})
	}
}

// TestTokenResponseScrubbed: a token server that answers 200 without a token but with the
// password in its body gets an error without the password (ggcr quotes the body).
func TestTokenResponseScrubbed(t *testing.T) {
	t.Parallel()
	good := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			_, p, _ := r.BasicAuth()
			fmt.Fprintf(w, `{"detail":"no token for password %s (%s)"}`, p, r.Header.Get("Authorization"))
			return
		}
		echo401(w, r, fmt.Sprintf(`Bearer realm="http://%s/token",service="vouch-test"`, r.Host))
	}))
	c := newClient(t, registry.Options{Keychain: staticKeychain{host: good}})
	_, err := c.Resolve(ctxTimeout(t, 10*time.Second), mustTag(t, host+"/app:v1"))
	if err == nil || !strings.Contains(err.Error(), "REDACTED") {
		t.Fatalf("error %v, want one quoting the scrubbed token response", err)
	}
	assertNoSecret(t, "token response", err)
}

// TestTokenExchangeCounts: with a token registry, the first call on a repository pings and
// exchanges a token; later calls on it do neither.
func TestTokenExchangeCounts(t *testing.T) {
	t.Parallel()
	good := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
	host := serve(t, tokenRegistry(canaryPassword))
	push(t, host, "app", "v1", remote.WithAuth(good))
	m := &registry.Counter{}
	c := newClient(t, registry.Options{Keychain: staticKeychain{host: good}, Metrics: m})
	ctx := ctxTimeout(t, 10*time.Second)
	kinds := func() map[string]int {
		out := map[string]int{}
		for k, n := range m.Snapshot() {
			out[fmt.Sprintf("%s %s %d", k.Kind, k.Method, k.Status)] += n
		}
		return out
	}
	for i := range 3 {
		if _, err := c.Resolve(ctx, mustTag(t, host+"/app:v1")); err != nil {
			t.Fatalf("Resolve %d: %v", i, err)
		}
	}
	want := map[string]int{
		"ping GET 0":        1, // the https probe
		"ping GET 401":      1,
		"token GET 200":     1,
		"manifest HEAD 200": 3,
	}
	if diff := cmp.Diff(want, kinds()); diff != "" {
		t.Errorf("requests for 3 Resolves (-want +got):\n%s", diff)
	}
}

func assertNoSecret(t *testing.T, what string, err error) {
	t.Helper()
	basic := base64.StdEncoding.EncodeToString([]byte(canaryUser + ":" + canaryPassword))
	for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%q", err)} {
		for _, secret := range []string{canaryPassword, basic, registryToken} {
			if strings.Contains(s, secret) {
				t.Errorf("%s: error text contains a credential: %s", what, s)
			}
		}
	}
	if testing.Verbose() {
		t.Logf("%s: %v", what, err)
	}
}
