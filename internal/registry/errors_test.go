package registry_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/vouchproject/vouch/internal/registry"
)

// fakeRegistry answers the ping and hands every other request to h.
func fakeRegistry(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		h(w, r)
	})
}

// statusRegistry answers every non-ping request with status and a registry error body.
func statusRegistry(status int, code string) http.Handler {
	return fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"test says %d"}]}`, code, status)
	})
}

const manifestJSON = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`

func sha256Of(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// lyingRegistry serves manifestJSON for every manifest, announcing digest in
// Docker-Content-Digest; HEAD is refused with 405 so clients must GET.
func lyingRegistry(digest string) http.Handler {
	return fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", digest)
		io.WriteString(w, manifestJSON)
	})
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestErrorClassification drives the Client against misbehaving registries and checks the code
// of the error, its sentinel, its message prefix and how long it took.
func TestErrorClassification(t *testing.T) {
	t.Parallel()
	goodDigest := sha256Of(manifestJSON)
	otherDigest := sha256Of("something else")
	tests := []struct {
		name    string
		host    func(t *testing.T) string
		call    string // resolve (tag), manifest (tag), manifest-digest, blob
		digest  string // for manifest-digest and blob
		want    error
		status  int
		timeout time.Duration // context; default 10 s
		within  time.Duration // default 5 s
	}{
		{name: "401 resolve", host: srv(statusRegistry(401, "UNAUTHORIZED")), call: "resolve", want: registry.ErrAuth, status: 401},
		{name: "401 manifest", host: srv(statusRegistry(401, "UNAUTHORIZED")), call: "manifest", want: registry.ErrAuth, status: 401},
		{name: "403 resolve", host: srv(statusRegistry(403, "DENIED")), call: "resolve", want: registry.ErrAuth, status: 403},
		{name: "403 manifest", host: srv(statusRegistry(403, "DENIED")), call: "manifest", want: registry.ErrAuth, status: 403},
		{name: "404 resolve", host: srv(statusRegistry(404, "MANIFEST_UNKNOWN")), call: "resolve", want: registry.ErrNotFound, status: 404},
		{name: "404 manifest unknown", host: srv(statusRegistry(404, "MANIFEST_UNKNOWN")), call: "manifest", want: registry.ErrNotFound, status: 404},
		{name: "404 blob unknown", host: srv(statusRegistry(404, "BLOB_UNKNOWN")), call: "blob", digest: goodDigest, want: registry.ErrNotFound, status: 404},
		{name: "429 resolve", host: srv(statusRegistry(429, "TOOMANYREQUESTS")), call: "resolve", want: registry.ErrUnavailable, status: 429},
		{name: "429 manifest", host: srv(statusRegistry(429, "TOOMANYREQUESTS")), call: "manifest", want: registry.ErrUnavailable, status: 429},
		{name: "500 manifest", host: srv(statusRegistry(500, "UNKNOWN")), call: "manifest", want: registry.ErrUnavailable, status: 500},
		{name: "503 resolve", host: srv(statusRegistry(503, "UNAVAILABLE")), call: "resolve", want: registry.ErrUnavailable, status: 503},
		{name: "503 on ping", host: srv(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })), call: "resolve", want: registry.ErrUnavailable},
		{name: "connection refused", host: closedPort, call: "resolve", want: registry.ErrUnavailable},
		{name: "digest mismatch by digest", host: srv(lyingRegistry(otherDigest)), call: "manifest-digest", digest: otherDigest, want: registry.ErrInvalid},
		{name: "digest header mismatch by tag", host: srv(lyingRegistry(otherDigest)), call: "manifest", want: registry.ErrInvalid},
		{name: "HEAD refused, GET header mismatch", host: srv(lyingRegistry(otherDigest)), call: "resolve", want: registry.ErrInvalid},
		{name: "blob mismatch", host: srv(fakeRegistry(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "not the blob") })), call: "blob", digest: otherDigest, want: registry.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := tc.host(t)
			c := newClient(t, registry.Options{})
			timeout := cmpOr(tc.timeout, 10*time.Second)
			start := time.Now()
			prefix, err := call(ctxTimeout(t, timeout), t, c, tc.call, host, tc.digest)
			if elapsed := time.Since(start); elapsed > cmpOr(tc.within, 5*time.Second) {
				t.Errorf("took %v", elapsed)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v (code %q), want %v", err, registry.Classify(err), tc.want)
			}
			var re *registry.Error
			if !errors.As(err, &re) || (tc.status != 0 && re.Status != tc.status) {
				t.Errorf("error %#v, want *registry.Error with status %d", err, tc.status)
			}
			t.Logf("%v", err)
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

func srv(h http.Handler) func(t *testing.T) string {
	return func(t *testing.T) string { return serve(t, h) }
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// call runs one Client call and returns its error and the message prefix it must have.
func call(ctx context.Context, t *testing.T, c *registry.Client, what, host, digest string) (string, error) {
	t.Helper()
	tag := mustTag(t, host+"/repo:tag")
	switch what {
	case "resolve":
		_, err := c.Resolve(ctx, tag)
		return "resolving " + tag.String() + ": ", err
	case "manifest":
		_, err := c.Manifest(ctx, tag)
		return "fetching manifest " + tag.String() + ": ", err
	case "manifest-digest":
		d := mustDigest(t, host+"/repo@"+digest)
		_, err := c.Manifest(ctx, d)
		return "fetching manifest " + d.String() + ": ", err
	case "blob":
		d := mustDigest(t, host+"/repo@"+digest)
		_, err := c.Blob(ctx, d)
		return "fetching blob " + d.String() + ": ", err
	}
	t.Fatalf("unknown call %q", what)
	return "", nil
}

// TestClassify covers errors as other libraries get them back from ggcr calls made with the
// Client's options.
func TestClassify(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequest(http.MethodGet, "https://r.example/v2/x/manifests/y", nil)
	terr := func(status int, codes ...transport.ErrorCode) error {
		e := &transport.Error{StatusCode: status, Request: req}
		for _, c := range codes {
			e.Errors = append(e.Errors, transport.Diagnostic{Code: c})
		}
		return e
	}
	var syntaxErr error = json.Unmarshal([]byte("{"), &struct{}{})
	_, badName := name.ParseReference("UPPER/Case::x")
	tests := []struct {
		name string
		err  error
		want registry.Code
	}{
		{"nil", nil, ""},
		{"401", terr(401), registry.CodeAuth},
		{"403", terr(403), registry.CodeAuth},
		{"400 UNAUTHORIZED", terr(400, transport.UnauthorizedErrorCode), registry.CodeAuth},
		{"404", terr(404), registry.CodeNotFound},
		{"400 MANIFEST_UNKNOWN", terr(400, transport.ManifestUnknownErrorCode), registry.CodeNotFound},
		{"400 NAME_UNKNOWN", terr(400, transport.NameUnknownErrorCode), registry.CodeNotFound},
		{"400 MANIFEST_INVALID", terr(400, transport.ManifestInvalidErrorCode), registry.CodeInvalid},
		{"400 bare", terr(400), registry.CodeUnavailable},
		{"408", terr(408), registry.CodeUnavailable},
		{"429", terr(429), registry.CodeUnavailable},
		{"500", terr(500), registry.CodeUnavailable},
		{"502", terr(502), registry.CodeUnavailable},
		{"503", terr(503), registry.CodeUnavailable},
		{"deadline", context.DeadlineExceeded, registry.CodeTimeout},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), registry.CodeTimeout},
		{"url deadline", &url.Error{Op: "Get", URL: "https://r.example/v2/", Err: context.DeadlineExceeded}, registry.CodeTimeout},
		{"net timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, registry.CodeTimeout},
		{"connection refused", &url.Error{Op: "Get", URL: "https://r.example/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, registry.CodeUnavailable},
		{"EOF", &url.Error{Op: "Get", URL: "https://r.example/v2/", Err: io.EOF}, registry.CodeUnavailable},
		{"unexpected EOF", &url.Error{Op: "Get", URL: "https://r.example/v2/", Err: io.ErrUnexpectedEOF}, registry.CodeUnavailable},
		{"body cut in transit", &registry.Error{Code: registry.CodeUnavailable, Err: fmt.Errorf("reading manifest response: %w", io.ErrUnexpectedEOF)}, registry.CodeUnavailable},
		// A bare EOF is a JSON decoder's, on a body that arrived whole and verified.
		{"JSON cut short", fmt.Errorf("reading signatures: %w", io.ErrUnexpectedEOF), registry.CodeInvalid},
		{"JSON empty", io.EOF, registry.CodeInvalid},
		{"tls", &tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, registry.CodeUnavailable},
		{"json syntax", syntaxErr, registry.CodeInvalid},
		{"ggcr digest mismatch", errors.New(`manifest digest: "sha256:aa" does not match requested digest: "sha256:bb" for "x"`), registry.CodeInvalid},
		{"ggcr checksum", errors.New(`error verifying sha256 checksum after reading 3 bytes; got "sha256:aa", want "sha256:bb"`), registry.CodeInvalid},
		{"ggcr missing digest header", errors.New("HEAD https://x/v2/y/manifests/z: response did not include Docker-Content-Digest header"), registry.CodeInvalid},
		{"bad name", badName, registry.CodeInvalid},
		{"ours wrapped", fmt.Errorf("cosign: %w", &url.Error{Op: "Get", URL: "u", Err: &registry.Error{Code: registry.CodeTooLarge}}), registry.CodeTooLarge},
		{"unknown", errors.New("something odd"), registry.CodeUnavailable},
	}
	for _, tc := range tests {
		if got := registry.Classify(tc.err); got != tc.want {
			t.Errorf("%s: Classify(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorIsAndMessage(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	e := &registry.Error{Code: registry.CodeNotFound, Op: "resolve", Ref: "r.example/x:1", Status: 404, Err: cause}
	wrapped := fmt.Errorf("engine: %w", e)
	for _, s := range []*registry.Error{registry.ErrAuth, registry.ErrUnavailable, registry.ErrTimeout, registry.ErrTooLarge, registry.ErrInvalid} {
		if errors.Is(wrapped, s) {
			t.Errorf("errors.Is(not-found error, %v) = true", s)
		}
	}
	if !errors.Is(wrapped, registry.ErrNotFound) || !errors.Is(wrapped, cause) {
		t.Errorf("errors.Is misses the sentinel or the cause")
	}
	if errors.Is(registry.ErrNotFound, e) {
		t.Errorf("a sentinel must not match a specific error")
	}
	for _, tc := range []struct {
		err  *registry.Error
		want string
	}{
		{e, "resolving r.example/x:1: boom"},
		{&registry.Error{Code: registry.CodeTooLarge, Op: "blob", Ref: "r/x@sha256:ab", Err: cause}, "fetching blob r/x@sha256:ab: boom"},
		{&registry.Error{Code: registry.CodeTooLarge, Op: "referrers", Ref: "r/x@sha256:ab", Err: cause}, "listing referrers of r/x@sha256:ab: boom"},
		{&registry.Error{Code: registry.CodeTimeout, Op: "manifest", Ref: "r/x:1", Err: cause}, "fetching manifest r/x:1: boom"},
		{&registry.Error{Code: registry.CodeTimeout, Err: cause}, "boom"},
		{registry.ErrTimeout, "registry error: timeout"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
