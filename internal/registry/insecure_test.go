package registry_test

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/vouchproject/vouch/internal/registry"
)

const remoteHost = "registry.example.test:5000" // not loopback, not RFC 1918: HTTPS unless Insecure

// plainHTTPNetwork plays the network for a Client: http:// requests to remoteHost reach the
// test server at target, https:// requests fail as they would against a plain-HTTP registry.
// It records the URLs it was asked for.
type plainHTTPNetwork struct {
	target string
	mu     sync.Mutex
	urls   []string
}

func (n *plainHTTPNetwork) RoundTrip(req *http.Request) (*http.Response, error) {
	n.mu.Lock()
	n.urls = append(n.urls, req.Method+" "+req.URL.String())
	n.mu.Unlock()
	if req.URL.Scheme != "http" {
		return nil, errors.New("http: server gave HTTP response to HTTPS client")
	}
	out := req.Clone(req.Context())
	out.URL.Host = n.target
	return http.DefaultTransport.RoundTrip(out)
}

func (n *plainHTTPNetwork) seen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.urls...)
}

func TestNameOptions(t *testing.T) {
	t.Parallel()
	for _, insecure := range []bool{false, true} {
		c := newClient(t, registry.Options{Insecure: insecure})
		opts := c.NameOptions()
		if got := len(opts) == 1; got != insecure {
			t.Errorf("Insecure=%v: NameOptions has %d options", insecure, len(opts))
		}
		ref, err := name.ParseReference(remoteHost+"/app:v1", opts...)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "https", true: "http"}[insecure]
		if got := ref.Context().Scheme(); got != want {
			t.Errorf("Insecure=%v: scheme of %s = %s, want %s", insecure, ref, got, want)
		}
	}
}

// TestInsecure: a non-loopback registry served over plain HTTP is reachable only with Insecure,
// whatever options the caller parsed the reference with.
func TestInsecure(t *testing.T) {
	t.Parallel()
	target := serve(t, quietRegistry())
	push(t, target, "app", "v1")
	for _, tc := range []struct {
		name           string
		insecure       bool
		callerInsecure bool // the caller parsed the reference with name.Insecure
		wantURLs       []string
		wantErr        error
	}{
		{"secure client", false, false, []string{"GET https://" + remoteHost + "/v2/"}, registry.ErrUnavailable},
		{"secure client, insecure reference", false, true, []string{"GET https://" + remoteHost + "/v2/"}, registry.ErrUnavailable},
		{"insecure client", true, false, []string{
			"GET https://" + remoteHost + "/v2/",
			"GET http://" + remoteHost + "/v2/",
			"HEAD http://" + remoteHost + "/v2/app/manifests/v1",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			net := &plainHTTPNetwork{target: target}
			c := newClient(t, registry.Options{Insecure: tc.insecure, Base: net})
			var opts []name.Option
			if tc.callerInsecure {
				opts = append(opts, name.Insecure)
			}
			ref, err := name.ParseReference(remoteHost+"/app:v1", opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Resolve(ctxTimeout(t, 10*time.Second), ref)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Resolve: %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantURLs, net.seen()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoopbackHTTPFallback: 127.0.0.1 is spoken to over plain HTTP without Insecure (after an
// HTTPS probe), as ggcr and Kyverno do.
func TestLoopbackHTTPFallback(t *testing.T) {
	t.Parallel()
	host := serve(t, quietRegistry())
	push(t, host, "app", "v1")
	m := &registry.Counter{}
	c := newClient(t, registry.Options{Metrics: m})
	if _, err := c.Resolve(ctxTimeout(t, 10*time.Second), mustTag(t, host+"/app:v1")); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := map[string]int{"GET error": 1, "GET OK": 1}
	if diff := cmp.Diff(want, countsOf(m.Snapshot(), registry.KindPing)); diff != "" {
		t.Errorf("pings (-want +got):\n%s", diff)
	}
}

// TestInsecureTLS: a registry with a certificate nobody trusts is refused, unless Insecure.
func TestInsecureTLS(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(quietRegistry())
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	host := strings.TrimPrefix(s.URL, "https://")
	ref := mustTag(t, host+"/app:missing")
	for _, insecure := range []bool{false, true} {
		c := newClient(t, registry.Options{Insecure: insecure})
		_, err := c.Resolve(ctxTimeout(t, 10*time.Second), ref)
		// With TLS verified the ping fails; without, the registry answers: no such tag.
		want := map[bool]error{false: registry.ErrUnavailable, true: registry.ErrNotFound}[insecure]
		if !errors.Is(err, want) {
			t.Errorf("Insecure=%v: Resolve error %v, want %v", insecure, err, want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts registry.Options
		want string // "" means valid
	}{
		{"zero", registry.Options{}, ""},
		{"negative manifest cap", registry.Options{MaxManifestBytes: -1}, "MaxManifestBytes must not be negative, got -1"},
		{"negative blob cap", registry.Options{MaxBlobBytes: -1}, "MaxBlobBytes must not be negative"},
		{"negative redirects", registry.Options{MaxRedirects: -1}, "MaxRedirects must not be negative"},
		{"negative referrers", registry.Options{MaxReferrers: -1}, "MaxReferrers must not be negative"},
		{"header injection", registry.Options{UserAgent: "vouch\r\nX-Evil: 1"}, "UserAgent must not contain control characters"},
	} {
		tc.opts.Keychain = anonymous
		_, err := registry.New(tc.opts)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: New: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: New error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestUserAgent: requests carry the configured user agent.
func TestUserAgent(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	agents := map[string]bool{}
	reg := quietRegistry()
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents[strings.Fields(r.UserAgent())[0]] = true
		mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	push(t, host, "app", "v1")
	mu.Lock()
	clear(agents)
	mu.Unlock()
	for _, ua := range []string{"", "vouch-test/1.0"} {
		c := newClient(t, registry.Options{UserAgent: ua})
		if _, err := c.Resolve(ctxTimeout(t, 10*time.Second), mustTag(t, host+"/app:v1")); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(map[string]bool{"vouch": true, "vouch-test/1.0": true}, agents); diff != "" {
		t.Errorf("user agents (-want +got):\n%s", diff)
	}
}
