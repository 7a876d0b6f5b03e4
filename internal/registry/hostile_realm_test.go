package registry_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/vouchproject/vouch/internal/registry"
)

// loginServer is an in-process token service that records what it receives and hands out
// registryToken to anyone.
type loginServer struct {
	mu       sync.Mutex
	requests []string // "METHOD Authorization form"
}

func (l *loginServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	l.mu.Lock()
	l.requests = append(l.requests, fmt.Sprintf("%s %q %s", r.Method, r.Header.Get("Authorization"), r.PostForm.Encode()))
	l.mu.Unlock()
	fmt.Fprintf(w, `{"token":%q}`, registryToken)
}

func (l *loginServer) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.requests...)
}

// startTLS starts h on 127.0.0.1 over TLS and returns its address.
func startTLS(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// namedNetwork is a Base transport that dials made-up host names (reg.test, login.test) to
// servers on 127.0.0.1, and trusts any certificate (the names are made up).
func namedNetwork(addrs map[string]string) http.RoundTripper {
	d := &net.Dialer{Timeout: time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			to, ok := addrs[addr]
			if !ok {
				return nil, fmt.Errorf("no route to %s in the test network", addr)
			}
			return d.DialContext(ctx, network, to)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test certificates for made-up names
	}
}

// TestLandscapeGroup9TokenRealm (landscape §4.3, oras-go GHSA-xf85-363p-868w): a registry
// whose Bearer realm points at another host, or another port of its own host, never makes
// vouch send the password there — the call is "could not verify" (auth) naming the realm and
// the registry, at once, and the login server records no request. Anonymous token requests
// still go to any realm; a realm on the registry's own host, or on the allow-list
// (Options.TokenRealms), gets the credentials.
func TestLandscapeGroup9TokenRealm(t *testing.T) {
	t.Parallel()
	password := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
	identity := authn.FromConfig(authn.AuthConfig{Username: "<token>", IdentityToken: canaryPassword})
	tests := []struct {
		name    string
		realm   string // the realm the registry names
		auth    authn.Authenticator
		allow   []string
		refused bool   // the call fails with the realm error
		login   string // what the login server must have seen: "", "anonymous", "password"
	}{
		{name: "foreign host, password", realm: "https://login.test/token", auth: password, refused: true},
		{name: "foreign host, identity token", realm: "https://login.test/token", auth: identity, refused: true},
		{name: "own host, other port, password", realm: "https://reg.test:8443/token", auth: password, refused: true},
		{name: "foreign host, anonymous", realm: "https://login.test/token", auth: authn.Anonymous, login: "anonymous"},
		{name: "foreign host on the allow-list, password", realm: "https://login.test/token", auth: password, allow: []string{"login.test"}, login: "password"},
		{name: "allow-list entry for another port, password", realm: "https://login.test:8443/token", auth: password, allow: []string{"login.test"}, refused: true},
		{name: "own host, password", realm: "https://reg.test/token", auth: password},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			login := &loginServer{}
			loginAddr := startTLS(t, login)
			regAddr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/token":
					fmt.Fprintf(w, `{"token":%q}`, registryToken)
				case r.Header.Get("Authorization") != "Bearer "+registryToken:
					echo401(w, r, fmt.Sprintf(`Bearer realm=%q,service="reg.test"`, tc.realm))
				case r.URL.Path == "/v2/":
				default:
					serveManifest(w, r)
				}
			}))
			base := namedNetwork(map[string]string{"reg.test:443": regAddr, "login.test:443": loginAddr, "login.test:8443": loginAddr, "reg.test:8443": loginAddr})
			c := newClient(t, registry.Options{Base: base, Keychain: staticKeychain{"reg.test": tc.auth}, TokenRealms: tc.allow})
			start := time.Now()
			desc, err := c.Resolve(ctxTimeout(t, 5*time.Second), mustTag(t, "reg.test/app:v1"))
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %v", elapsed)
			}
			seen := login.seen()
			t.Logf("error: %v; login server saw %q", err, seen)
			if tc.refused {
				want := fmt.Sprintf("token realm %s not allowed for registry reg.test", tc.realm)
				if !errors.Is(err, registry.ErrAuth) || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want auth error containing %q", err, want)
				}
				assertNoSecret(t, tc.name, err)
				if len(seen) != 0 {
					t.Errorf("the login server got %q", seen)
				}
				return
			}
			if err != nil || desc.Digest.String() != sha256Of(manifestJSON) {
				t.Fatalf("Resolve = %v, %v", desc.Digest, err)
			}
			switch tc.login {
			case "anonymous":
				if len(seen) == 0 || strings.Contains(strings.Join(seen, " "), canaryPassword) || !strings.HasPrefix(seen[0], `GET ""`) {
					t.Errorf("the login server saw %q, want anonymous requests", seen)
				}
			case "password":
				if len(seen) == 0 || !strings.Contains(seen[0], "Basic ") {
					t.Errorf("the login server saw %q, want the credentials", seen)
				}
			default:
				if len(seen) != 0 {
					t.Errorf("the login server saw %q", seen)
				}
			}
		})
	}
}
