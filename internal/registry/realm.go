package registry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// DefaultTokenRealms are the token services, besides a registry's own host, that may receive a
// registry's credentials when its WWW-Authenticate Bearer challenge names them as realm: those
// of the well-known registries, whose token endpoint is not the registry host (Docker Hub's
// auth.docker.io, GitLab's gitlab.com/jwt/auth…) or is one of a family of hosts run by the
// same operator. A pattern is a host, or host:port (without a port it matches port 443 only),
// in which a "*" label matches exactly one DNS label. Options.TokenRealms adds to them.
var DefaultTokenRealms = []string{
	"auth.docker.io",            // Docker Hub (docker.io, registry-1.docker.io)
	"ghcr.io",                   // GitHub Container Registry
	"gcr.io",                    // Google Container Registry
	"*.gcr.io",                  // Google Container Registry, regional
	"*.pkg.dev",                 // Google Artifact Registry
	"quay.io",                   // Quay
	"*.azurecr.io",              // Azure Container Registry
	"public.ecr.aws",            // Amazon ECR Public
	"*.dkr.ecr.*.amazonaws.com", // Amazon ECR (which answers Basic challenges itself)
	"gitlab.com",                // registry.gitlab.com: realm https://gitlab.com/jwt/auth
}

// refusedRealmHost is the host the transport substitutes for a realm that may not receive
// credentials (see realmPolicy.guard). It is under .invalid (RFC 2606), so nothing resolves it;
// the transport answers every request to it itself.
const refusedRealmHost = "token-realm-not-allowed.vouch.invalid"

// Query parameters of a refused realm's substitute URL.
const (
	qRealm    = "vouch-realm"
	qRegistry = "vouch-registry"
	qScheme   = "vouch-scheme"
)

// realmPolicy is the rule for where a registry's credentials may go in the Docker token flow
// (landscape §4.3, oras-go GHSA-xf85-363p-868w): to a realm on the registry's own host and port
// (over HTTPS, or plain HTTP when the registry itself is spoken to over plain HTTP), or to an
// HTTPS realm whose host matches one of patterns. Any other realm still serves anonymous
// token requests, but a token request that carries credentials — an Authorization header, or
// the password or identity token of an OAuth2 form — is never sent to it.
type realmPolicy struct {
	patterns []hostPattern
}

// hostPattern is one parsed entry of a realm allow-list.
type hostPattern struct {
	labels []string // lower case; "*" matches one label
	port   string   // "443" when the entry has none
}

// newRealmPolicy parses the allow-list: DefaultTokenRealms and extra.
func newRealmPolicy(extra []string) (*realmPolicy, error) {
	p := &realmPolicy{}
	var errs []error
	for _, s := range append(append([]string(nil), DefaultTokenRealms...), extra...) {
		hp, err := parseHostPattern(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.patterns = append(p.patterns, hp)
	}
	return p, errors.Join(errs...)
}

func parseHostPattern(s string) (hostPattern, error) {
	bad := func(why string) (hostPattern, error) {
		return hostPattern{}, fmt.Errorf("token realm %q: %s (want host or host:port, \"*\" for one DNS label)", s, why)
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || strings.ContainsAny(s, "/?#@ \t") {
		return bad("not a host")
	}
	host, port := s, "443"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if n, ok := atoiPort(p); !ok || n == 0 {
			return bad("invalid port")
		}
	} else if strings.Contains(s, ":") && !strings.HasPrefix(s, "[") {
		return bad("invalid port")
	}
	host = strings.Trim(host, "[]")
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if l == "" {
			return bad("empty label")
		}
		if l != "*" && strings.Contains(l, "*") {
			return bad("\"*\" must be a whole label")
		}
	}
	if labels[len(labels)-1] == "*" {
		return bad("a top-level \"*\" would match any host")
	}
	return hostPattern{labels: labels, port: port}, nil
}

func atoiPort(s string) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 65535 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, s != "" && n <= 65535
}

func (hp hostPattern) match(host, port string) bool {
	labels := strings.Split(strings.ToLower(host), ".")
	if port != hp.port || len(labels) != len(hp.labels) {
		return false
	}
	for i, l := range hp.labels {
		if l != "*" && l != labels[i] {
			return false
		}
	}
	return true
}

// allowed reports whether realm may receive the credentials of the registry spoken to at
// registry (the URL of the request that was challenged).
func (p *realmPolicy) allowed(realm, registry *url.URL) bool {
	if sameHostPort(realm, registry) {
		return realm.Scheme == "https" || (realm.Scheme == "http" && registry.Scheme == "http")
	}
	if realm.Scheme != "https" || realm.User != nil {
		return false
	}
	port := realm.Port()
	if port == "" {
		port = "443"
	}
	for _, hp := range p.patterns {
		if hp.match(realm.Hostname(), port) {
			return true
		}
	}
	return false
}

// hostPort returns u's host and port, with the scheme's default port when u has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func sameHostPort(a, b *url.URL) bool { return hostPort(a) == hostPort(b) }

// guard replaces, in a 401 answer to req, the realm of every Bearer challenge that may not
// receive credentials by a URL on refusedRealmHost that records it. Clients (ggcr, oras-go)
// then send their token requests there, and the transport decides (forwardRefused): without
// credentials the request goes on to the real realm; with them it ends in an auth error, and
// the credentials never leave the process.
func (p *realmPolicy) guard(req *http.Request, resp *http.Response) {
	if resp.StatusCode != http.StatusUnauthorized {
		return
	}
	values := resp.Header.Values("WWW-Authenticate")
	out := make([]string, len(values))
	changed := false
	for i, v := range values {
		out[i] = v
		scheme, params := parseChallenge(v)
		if !strings.EqualFold(scheme, "bearer") {
			continue
		}
		// A challenge may repeat realm; clients take the last one (ggcr's parser keeps the last
		// value of a key), so every one must be allowed, else the last one is replaced.
		realm, ok, allowed := "", false, true
		for _, kv := range params {
			if kv.key == "realm" {
				realm, ok = kv.value, true
				u, err := url.Parse(kv.value)
				allowed = allowed && err == nil && p.allowed(u, req.URL)
			}
		}
		if !ok || allowed {
			continue
		}
		q := url.Values{qRealm: {realm}, qRegistry: {req.URL.Host}, qScheme: {req.URL.Scheme}}
		params.set("realm", "https://"+refusedRealmHost+"/token?"+q.Encode())
		out[i] = scheme + " " + params.String()
		changed = true
	}
	if changed {
		resp.Header.Del("WWW-Authenticate")
		for _, v := range out {
			resp.Header.Add("WWW-Authenticate", v)
		}
	}
}

// forwardRefused handles a token request sent to a refused realm's substitute URL: with
// credentials (an Authorization header, or secrets in its form) it is an auth error naming the
// realm and the registry; without, it returns the request re-addressed to the real realm, which
// must be HTTPS (plain HTTP only for a registry spoken to over HTTP) and, unless it is on the
// registry's host, not a loopback, private or link-local address (as ggcr checks realms).
func forwardRefused(req *http.Request, formSecrets []string) (*http.Request, error) {
	q := req.URL.Query()
	realm, registry, scheme := q.Get(qRealm), q.Get(qRegistry), q.Get(qScheme)
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" || strings.EqualFold(u.Hostname(), refusedRealmHost) {
		return nil, &Error{Code: CodeAuth, Err: fmt.Errorf("registry %s names an invalid token realm %q", registry, realm)}
	}
	shown := u.Scheme + "://" + u.Host + u.EscapedPath()
	if req.Header.Get("Authorization") != "" || len(formSecrets) > 0 {
		return nil, &Error{Code: CodeAuth, Err: fmt.Errorf("token realm %s not allowed for registry %s: its credentials go only to the registry's own host or to a realm allowed by --registry-token-realms", shown, registry)}
	}
	reg := &url.URL{Scheme: scheme, Host: registry}
	switch {
	case u.Scheme == "https", u.Scheme == "http" && scheme == "http":
	default:
		return nil, &Error{Code: CodeAuth, Err: fmt.Errorf("registry %s names token realm %s: scheme %q not allowed", registry, shown, u.Scheme)}
	}
	if !sameHostPort(u, reg) && privateAddress(u.Hostname()) {
		return nil, &Error{Code: CodeAuth, Err: fmt.Errorf("registry %s names token realm %s: a loopback, private or link-local address", registry, shown)}
	}
	merged := u.Query()
	for k, vs := range q {
		if k != qRealm && k != qRegistry && k != qScheme {
			merged[k] = vs
		}
	}
	u.RawQuery = merged.Encode()
	out := req.Clone(req.Context())
	out.URL, out.Host = u, ""
	return out, nil
}

func privateAddress(host string) bool {
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return false
	}
	a = a.WithZone("").Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified()
}

// challengeParams are the auth-params of one challenge, in order.
type challengeParams []struct{ key, value string }

// get returns the last value of key, as ggcr's parser does.
func (ps challengeParams) get(key string) (string, bool) {
	value, ok := "", false
	for _, p := range ps {
		if p.key == key {
			value, ok = p.value, true
		}
	}
	return value, ok
}

// set sets every value of key.
func (ps challengeParams) set(key, value string) {
	for i := range ps {
		if ps[i].key == key {
			ps[i].value = value
		}
	}
}

// String formats the params as key="value" pairs separated by commas.
func (ps challengeParams) String() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.key)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.value))
		b.WriteByte('"')
	}
	return b.String()
}

// parseChallenge parses one WWW-Authenticate value the way ggcr's authchallenge does: a scheme
// token, then comma-separated key=token or key="quoted" params (keys lower-cased).
func parseChallenge(h string) (string, challengeParams) {
	scheme, s := challengeToken(h)
	if scheme == "" {
		return "", nil
	}
	var params challengeParams
	s = "," + strings.TrimLeft(s, " \t")
	for strings.HasPrefix(s, ",") {
		var key, value string
		key, s = challengeToken(strings.TrimLeft(s[1:], " \t"))
		if key == "" || !strings.HasPrefix(s, "=") {
			break
		}
		if value, s = challengeValue(s[1:]); value == "" {
			break
		}
		params = append(params, struct{ key, value string }{strings.ToLower(key), value})
		s = strings.TrimLeft(s, " \t")
	}
	return scheme, params
}

func challengeToken(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] > ' ' && s[i] < 0x7f && !strings.ContainsRune("\"(),/:;<=>?@[]\\{}", rune(s[i])) {
		i++
	}
	return s[:i], s[i:]
}

func challengeValue(s string) (string, string) {
	if !strings.HasPrefix(s, `"`) {
		return challengeToken(s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return b.String(), s[i+1:]
		case '\\':
			if i+1 < len(s) {
				i++
			}
		}
		b.WriteByte(s[i])
	}
	return "", ""
}
