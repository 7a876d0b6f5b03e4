package registry

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestTokenRealmRule(t *testing.T) {
	p, err := newRealmPolicy([]string{"auth.example.com", "*.tokens.example.org:8443"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		realm, registry string
		want            bool
	}{
		{"https://reg.example.com/token", "https://reg.example.com/v2/", true},            // own host
		{"https://reg.example.com:443/token", "https://reg.example.com/v2/", true},        // own host, explicit port
		{"http://127.0.0.1:5000/token", "http://127.0.0.1:5000/v2/", true},                // plain-HTTP registry, own host
		{"http://reg.example.com/token", "https://reg.example.com/v2/", false},            // downgrade
		{"https://reg.example.com:8443/token", "https://reg.example.com/v2/", false},      // own host, other port
		{"https://evil.reg.example.com/token", "https://reg.example.com/v2/", false},      // subdomain
		{"https://auth.docker.io/token", "https://registry-1.docker.io/v2/", true},        // default list
		{"https://gitlab.com/jwt/auth", "https://registry.gitlab.com/v2/", true},          // default list
		{"https://us-docker.pkg.dev/v2/token", "https://us-docker.pkg.dev/v2/", true},     // own host
		{"https://a.b.pkg.dev/v2/token", "https://x.example.com/v2/", false},              // "*" is one label
		{"https://1.dkr.ecr.eu-west-1.amazonaws.com/", "https://x.example.com/v2/", true}, // middle "*"
		{"https://auth.example.com/token", "https://x.example.com/v2/", true},             // extra
		{"http://auth.example.com/token", "http://x.example.com/v2/", false},              // extra, plain HTTP
		{"https://auth.example.com:8443/token", "https://x.example.com/v2/", false},       // extra, other port
		{"https://a.tokens.example.org:8443/t", "https://x.example.com/v2/", true},        // extra with port
		{"https://a.tokens.example.org/t", "https://x.example.com/v2/", false},            // extra with port, 443
		{"https://user:pw@auth.example.com/token", "https://x.example.com/v2/", false},    // userinfo
	}
	for _, tc := range tests {
		realm, _ := url.Parse(tc.realm)
		reg, _ := url.Parse(tc.registry)
		if got := p.allowed(realm, reg); got != tc.want {
			t.Errorf("allowed(%s for %s) = %v, want %v", tc.realm, tc.registry, got, tc.want)
		}
	}
	for _, bad := range []string{"", "*", "*.*", "a.*", "https://a.example.com", "a.example.com/token", "a*.example.com", "a..b", "a.example.com:0", "a.example.com:x"} {
		if _, err := newRealmPolicy([]string{bad}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// TestChallengeRewrite: only the realm of a Bearer challenge changes; other challenges and
// params are kept.
func TestChallengeRewrite(t *testing.T) {
	p, _ := newRealmPolicy(nil)
	req, _ := http.NewRequest(http.MethodGet, "https://reg.example.com/v2/", nil)
	resp := &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}}
	resp.Header.Add("WWW-Authenticate", `Basic realm="reg"`)
	resp.Header.Add("WWW-Authenticate", `Bearer realm="https://evil.example.net/token?x=\"1\"",service="reg.example.com",scope="repository:a:pull"`)
	p.guard(req, resp)
	got := resp.Header.Values("WWW-Authenticate")
	if got[0] != `Basic realm="reg"` {
		t.Errorf("basic challenge changed: %q", got[0])
	}
	scheme, params := parseChallenge(got[1])
	realm, _ := params.get("realm")
	service, _ := params.get("service")
	scope, _ := params.get("scope")
	u, err := url.Parse(realm)
	if scheme != "Bearer" || err != nil || u.Host != refusedRealmHost || service != "reg.example.com" || scope != "repository:a:pull" {
		t.Fatalf("rewritten challenge %q", got[1])
	}
	if q := u.Query(); q.Get(qRealm) != `https://evil.example.net/token?x="1"` || q.Get(qRegistry) != "reg.example.com" || q.Get(qScheme) != "https" {
		t.Errorf("substitute realm %s", realm)
	}
}

// FuzzChallengeRewrite: whatever a registry sends as WWW-Authenticate, guard does not panic and
// afterwards every Bearer realm a client would parse is allowed or the refused substitute.
func FuzzChallengeRewrite(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`,
		`Bearer realm=https://evil.example.net/token`,
		`bearer realm="http://x\"y",realm="https://evil.example.net"`,
		`Basic realm="x", Bearer realm="https://evil.example.net"`,
		`Bearer realm="`,
		`Bearer realm="https://reg.example.com/token",realm="https://evil.example.net/"`,
	} {
		f.Add(s)
	}
	p, _ := newRealmPolicy(nil)
	f.Fuzz(func(t *testing.T, h string) {
		if strings.ContainsAny(h, "\r\n") {
			return
		}
		req, _ := http.NewRequest(http.MethodGet, "https://reg.example.com/v2/", nil)
		resp := &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{"Www-Authenticate": {h}}}
		p.guard(req, resp)
		for _, v := range resp.Header.Values("WWW-Authenticate") {
			scheme, params := parseChallenge(v)
			if !strings.EqualFold(scheme, "bearer") {
				continue
			}
			for _, kv := range params {
				if kv.key != "realm" {
					continue
				}
				u, err := url.Parse(kv.value)
				if err != nil || !(u.Host == refusedRealmHost || p.allowed(u, req.URL)) {
					t.Fatalf("header %q became %q: realm %q neither allowed nor refused", h, v, kv.value)
				}
			}
		}
	})
}
