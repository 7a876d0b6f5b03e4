package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// smallBodyLimit caps the bodies of pings, token responses, tag lists and anything else that
	// is neither a manifest nor a blob.
	smallBodyLimit = 1 << 20
	// errorBodyLimit is how much of a 4xx/5xx body is kept; ggcr reads at most 64 KiB of it
	// (and of a token response).
	errorBodyLimit = 64 << 10
	// minSecretLen is the shortest credential fragment scrubbed from error bodies; shorter
	// fragments would mangle unrelated text.
	minSecretLen = 4
	// maxChain bounds the walk up a redirect chain even if another client built a longer one.
	maxChain = 64
)

// roundTripper is the Client's transport: it sits under ggcr's auth, retry and user-agent layers
// and above the network, so it sees every request, every hop of every redirect and every retry.
type roundTripper struct {
	base          http.RoundTripper
	manifestLimit int64
	blobLimit     int64
	maxRedirects  int
	metrics       *Counter
	retry         retryPolicy
	hosts         *hostTable
	realms        *realmPolicy
}

var _ http.RoundTripper = (*roundTripper)(nil)

// RoundTrip sends req and returns a response whose body is capped, verified and scrubbed. On
// the way it applies the redirect rules (checkRedirect), the token realm rule (realmPolicy),
// the registry host's circuit breaker and limit on requests in flight, and the retry policy
// (whose retries the circuit gates, see send).
func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	origin, hops := redirectOrigin(req)
	kind := kindOf(origin.Method, origin.URL)
	if hops > 0 {
		var err error
		if req, err = t.checkRedirect(req, origin, hops); err != nil {
			return nil, err
		}
	}
	ctx := req.Context()
	var formSecrets []string
	if req.Method == http.MethodPost && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		var err error
		if req, formSecrets, err = readForm(req); err != nil {
			return nil, err
		}
	}
	if req.URL.Hostname() == refusedRealmHost {
		var err error
		if req, err = forwardRefused(req, formSecrets); err != nil {
			return nil, err
		}
		kind = kindOf(req.Method, req.URL)
	}
	host := t.hosts.get(hostPort(req.URL))
	probe, err := host.allow()
	if err != nil {
		return nil, err
	}
	if err := host.acquire(ctx); err != nil {
		return nil, err
	}
	if probe == 0 {
		// The circuit may have opened while the request waited for its slot.
		if err := host.closed(); err != nil {
			host.release()
			return nil, err
		}
	}
	finish := host.finisher(probe)
	resp, started, err := t.send(req, kind, host)
	if err != nil {
		finish(judgeErr(ctx, err, started))
		if ctx.Err() != nil && Classify(err) != CodeTimeout {
			return nil, &Error{Code: CodeTimeout, Err: err}
		}
		return nil, err
	}
	t.realms.guard(req, resp)

	switch {
	case resp.StatusCode >= 400 || (kind == KindToken && req.Method != http.MethodHead) || formSecrets != nil:
		resp, err := scrubBody(ctx, req, resp, formSecrets)
		if err != nil {
			finish(judgeErr(ctx, err, started))
		} else {
			finish(judgeStatus(resp.StatusCode))
		}
		return resp, err
	case req.Method == http.MethodHead:
		finish(judgeStatus(resp.StatusCode))
		return resp, nil // no body; Content-Length describes the entity, not this response
	}
	limit := t.limitFor(kind)
	what := fmt.Sprintf("%s response from %s", kind, safeURL(origin.URL))
	if resp.ContentLength > limit {
		resp.Body.Close()
		finish(healthy)
		return nil, tooLarge(what, limit, fmt.Sprintf(" (Content-Length %d)", resp.ContentLength))
	}
	b := &cappedBody{rc: resp.Body, ctx: ctx, limit: limit, what: what, started: started, finish: finish}
	if resp.StatusCode == http.StatusOK && req.Method == http.MethodGet {
		b.want, b.hash = expectedDigest(kind, origin.URL, resp.Header)
	}
	if resp.StatusCode >= 300 {
		finish(judgeStatus(resp.StatusCode)) // a redirect: the client drains and closes it
	}
	resp.Body = b
	return resp, nil
}

func (t *roundTripper) limitFor(k Kind) int64 {
	switch k {
	case KindManifest, KindReferrers:
		return t.manifestLimit
	case KindBlob:
		return t.blobLimit
	}
	return smallBodyLimit
}

// redirectOrigin returns the first request of req's redirect chain and the number of hops since
// it. net/http links a redirected request to the response that caused it (req.Response), whose
// Request is the previous hop.
func redirectOrigin(req *http.Request) (*http.Request, int) {
	origin, hops := req, 0
	for origin.Response != nil && origin.Response.Request != nil && hops < maxChain {
		origin = origin.Response.Request
		hops++
	}
	return origin, hops
}

// checkRedirect applies the redirect rules to req, hop number hops of a chain that started at
// origin. ggcr's clients follow redirects without a limit of their own, so the transport
// enforces them on every hop:
//   - a chain ends after maxRedirects hops;
//   - once a hop was HTTPS, no later hop may be plain HTTP (no scheme downgrade);
//   - an Authorization header that an earlier hop sent to another host:port is not sent to
//     this one. net/http copies the header a caller set on the first request to every hop and
//     drops it only when the host name changes: it keeps it across ports, into subdomains and
//     on downgrades (oras-go, which sets the header itself, would leak it there). ggcr sets
//     its credentials per hop, for the registry's host only. A header set for this hop alone
//     (ggcr's anonymous token for a redirect target) differs from the earlier ones and is kept.
//
// It returns the request to send: req itself, or a copy without the header.
func (t *roundTripper) checkRedirect(req, origin *http.Request, hops int) (*http.Request, error) {
	if hops > t.maxRedirects {
		return nil, &Error{Code: CodeUnavailable, Err: fmt.Errorf("stopped after %d redirects from %s", t.maxRedirects, safeURL(origin.URL))}
	}
	auth := req.Header.Values("Authorization")
	strip := false
	for p, n := req.Response.Request, 0; p != nil && n < maxChain; n++ {
		if p.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return nil, &Error{Code: CodeUnavailable, Err: fmt.Errorf("refusing redirect from %s to plain HTTP %s", safeURL(p.URL), safeURL(req.URL))}
		}
		if len(auth) > 0 && !sameHostPort(p.URL, req.URL) && slices.Equal(p.Header.Values("Authorization"), auth) {
			strip = true
		}
		if p.Response == nil {
			break
		}
		p = p.Response.Request
	}
	if !strip {
		return req, nil
	}
	out := req.Clone(req.Context())
	out.Header.Del("Authorization")
	return out, nil
}

// safeURL prints a URL without userinfo and query (pre-signed storage URLs carry credentials in
// their query).
func safeURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// expectedDigest returns the digest a manifest or blob body must hash to: the digest in the URL
// when the request named one, else (a manifest fetched by tag) the Docker-Content-Digest the
// registry announced. Schema 1 manifests are exempt: their digest covers a payload without
// signatures, and ggcr handles them itself.
func expectedDigest(k Kind, u *url.URL, h http.Header) (v1.Hash, hash.Hash) {
	if k != KindManifest && k != KindBlob {
		return v1.Hash{}, nil
	}
	if mt := types.MediaType(h.Get("Content-Type")); mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed {
		return v1.Hash{}, nil
	}
	want, err := v1.NewHash(path.Base(u.Path))
	if err != nil {
		if k != KindManifest {
			return v1.Hash{}, nil
		}
		if want, err = v1.NewHash(h.Get("Docker-Content-Digest")); err != nil {
			return v1.Hash{}, nil
		}
	}
	hasher, err := v1.Hasher(want.Algorithm)
	if err != nil {
		return v1.Hash{}, nil
	}
	return want, hasher
}

// cappedBody fails a read that would pass limit bytes, verifies the digest at EOF when asked
// to, and reports a read cut short by the context as a timeout.
// It holds its registry host's in-flight slot until the body ends or is closed, and then
// reports the outcome to the host's circuit breaker (finish).
type cappedBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	limit   int64
	what    string
	n       int64
	want    v1.Hash
	hash    hash.Hash // nil: no verification
	err     error     // sticky
	started time.Time
	finish  func(outcome)
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if over := b.n + int64(n) - b.limit; over > 0 {
		n -= int(over)
		b.err = tooLarge(b.what, b.limit, "")
		b.finish(healthy)
		return n, b.err
	}
	b.n += int64(n)
	if b.hash != nil {
		b.hash.Write(p[:n])
	}
	switch {
	case errors.Is(err, io.EOF):
		b.finish(healthy)
		if b.hash != nil {
			if got := hex.EncodeToString(b.hash.Sum(nil)); got != b.want.Hex {
				b.err = &Error{Code: CodeInvalid, Err: fmt.Errorf("%s does not match its digest: want %s, got %s:%s", b.what, b.want, b.want.Algorithm, got)}
				return n, b.err
			}
		}
		b.err = io.EOF
	case err != nil && b.ctx.Err() != nil:
		b.finish(judgeErr(b.ctx, err, b.started))
		b.err = &Error{Code: CodeTimeout, Err: fmt.Errorf("reading %s: %w", b.what, b.ctx.Err())}
	case err != nil:
		// Marked as the transport's: a body cut in transit is the registry's failure, where a
		// bare unexpected EOF is a decoder's, from a body that arrived whole (Classify).
		b.finish(failing)
		b.err = &Error{Code: CodeUnavailable, Err: fmt.Errorf("reading %s: %w", b.what, err)}
	}
	return n, b.err
}

func (b *cappedBody) Close() error {
	b.finish(neutral)
	return b.rc.Close()
}

// scrubBody buffers a small body — an error response (at most errorBodyLimit bytes kept) or a
// token response (at most smallBodyLimit, more is too large) — and removes from it the
// credentials req carried: a registry or token server that echoes the Authorization header (or
// the password in it) must not get it printed in an error message, which ggcr builds from these
// bodies. extra are further credentials the request carried (see readForm).
func scrubBody(ctx context.Context, req *http.Request, resp *http.Response, extra []string) (*http.Response, error) {
	limit := int64(errorBodyLimit)
	if resp.StatusCode < 400 {
		limit = smallBodyLimit
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	if err != nil && ctx.Err() != nil {
		return nil, &Error{Code: CodeTimeout, Status: resp.StatusCode, Err: fmt.Errorf("reading response from %s: %w", safeURL(req.URL), ctx.Err())}
	}
	if int64(len(body)) > limit {
		if resp.StatusCode < 400 {
			return nil, tooLarge(fmt.Sprintf("token response from %s", safeURL(req.URL)), limit, "")
		}
		body = body[:limit]
	}
	for _, s := range append(secretsOf(req.Header), escapedForms(extra)...) {
		body = bytes.ReplaceAll(body, []byte(s), []byte("REDACTED"))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// credentialFields are the form fields of an OAuth2 token request that carry credentials:
// ggcr sends an identity token (ACR's, docker login's) as refresh_token, and a password grant
// as password.
var credentialFields = []string{"refresh_token", "password", "access_token"}

// readForm returns a copy of a form POST (an OAuth2 token request) whose form body has been read (at most
// smallBodyLimit bytes) and put back, with the credentials the form carries: the request body
// is the only place an identity token travels, and a token server may echo it in an error.
func readForm(req *http.Request) (*http.Request, []string, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, smallBodyLimit+1))
	req.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	if len(body) > smallBodyLimit {
		return nil, nil, tooLarge(fmt.Sprintf("token request to %s", safeURL(req.URL)), smallBodyLimit, "")
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	var secrets []string
	if form, err := url.ParseQuery(string(body)); err == nil {
		for _, f := range credentialFields {
			secrets = append(secrets, form[f]...)
		}
	}
	return out, secrets, nil
}

// escapedForms returns each credential at least minSecretLen long, also URL- and JSON-escaped.
func escapedForms(raw []string) []string {
	var out []string
	for _, s := range raw {
		if len(s) < minSecretLen {
			continue
		}
		j, _ := json.Marshal(s)
		out = append(out, s, url.QueryEscape(s), string(j[1:len(j)-1]))
	}
	return out
}

// secretsOf returns the credential fragments of an Authorization header in the forms a server
// might echo them: the whole credential, and for Basic the decoded "user:password" and the
// password, each also URL- and JSON-escaped.
func secretsOf(h http.Header) []string {
	var raw []string
	for _, v := range h.Values("Authorization") {
		scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok {
			raw = append(raw, v)
			continue
		}
		raw = append(raw, cred)
		if strings.EqualFold(scheme, "basic") {
			if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
				raw = append(raw, string(dec))
				if _, pass, ok := strings.Cut(string(dec), ":"); ok {
					raw = append(raw, pass)
				}
			}
		}
	}
	return escapedForms(raw)
}
