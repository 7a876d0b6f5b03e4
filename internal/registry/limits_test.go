package registry_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vouchproject/vouch/internal/registry"
)

// hugeRegistry serves manifests and blobs that never end: with a Content-Length of 2 GiB
// (claimed) or chunked without end (streamed). It records how many body bytes it managed to
// write, which is what the client let in.
type hugeRegistry struct {
	claim   bool
	written atomic.Int64
}

func (h *hugeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if h.claim {
		w.Header().Set("Content-Length", fmt.Sprint(int64(2)<<30))
		w.Header().Set("Docker-Content-Digest", sha256Of("x"))
	}
	// Without the claim, HEAD lacks Content-Length and Docker-Content-Digest: Resolve must GET.
	if r.Method == http.MethodHead {
		return
	}
	chunk := bytes.Repeat([]byte("{"), 32<<10)
	for end := time.Now().Add(10 * time.Second); r.Context().Err() == nil && time.Now().Before(end); {
		n, err := w.Write(chunk)
		h.written.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// TestTooLarge: a registry that claims or serves gigabytes fails the call with ErrTooLarge
// naming the cap, after the client read at most the cap, and the process allocated little.
func TestTooLarge(t *testing.T) {
	// Not parallel: it measures allocations.
	const limit = 1 << 20
	tests := []struct {
		name  string
		claim bool
		call  string
		want  string
	}{
		{"2 GiB Content-Length, Manifest", true, "manifest", "exceeds the 1048576-byte limit (Content-Length 2147483648)"},
		{"2 GiB Content-Length, Resolve (HEAD)", true, "resolve", "exceeds the 1048576-byte limit (size 2147483648)"},
		{"2 GiB Content-Length, Blob", true, "blob", "exceeds the 2097152-byte limit (Content-Length 2147483648)"},
		{"endless chunked body, Manifest", false, "manifest", "exceeds the 1048576-byte limit"},
		{"endless chunked body, Resolve (GET fallback)", false, "resolve", "exceeds the 1048576-byte limit"},
		{"endless chunked body, Blob", false, "blob", "exceeds the 2097152-byte limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &hugeRegistry{claim: tc.claim}
			host := serve(t, h)
			c := newClient(t, registry.Options{MaxManifestBytes: limit, MaxBlobBytes: 2 * limit})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := call(ctxTimeout(t, 20*time.Second), t, c, tc.call, host, sha256Of("x"))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, registry.ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want too-large containing %q", err, tc.want)
			}
			// The client reads at most the cap (plus ggcr's buffers); the server side of this
			// process allocates little. 64 MiB is far below the 2 GiB on offer.
			t.Logf("allocated %d KiB, server wrote %d KiB: %v", (after.TotalAlloc-before.TotalAlloc)>>10, h.written.Load()>>10, err)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("allocated %d bytes", alloc)
			}
			if w := h.written.Load(); w > 64<<20 {
				t.Errorf("server wrote %d bytes before the client hung up", w)
			}
		})
	}
}

// TestRedirects: a redirect loop ends after MaxRedirects hops with ErrUnavailable; a blob
// redirected to storage keeps the blob cap and digest check of the original request.
func TestRedirects(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", 3<<19) // 1.5 MiB: over the 1 MiB cap of "other" requests, under the blob cap
	storage := map[string]string{"good": "the blob", "bad": "tampered", "big": big}
	loop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasPrefix(r.URL.Path, "/storage/"):
			w.Write([]byte(storage[strings.TrimPrefix(r.URL.Path, "/storage/")]))
		case strings.Contains(r.URL.Path, "/blobs/"):
			repo := strings.Split(r.URL.Path, "/")[2]
			http.Redirect(w, r, "/storage/"+repo+"?X-Signature=secret", http.StatusTemporaryRedirect)
		default:
			http.Redirect(w, r, r.URL.Path+"?again", http.StatusFound)
		}
	})
	for _, max := range []int{0, 2} {
		t.Run(fmt.Sprintf("MaxRedirects=%d", max), func(t *testing.T) {
			t.Parallel()
			host := serve(t, loop)
			m := &registry.Counter{}
			c := newClient(t, registry.Options{MaxRedirects: max, Metrics: m})
			_, err := c.Resolve(ctxTimeout(t, 10*time.Second), mustTag(t, host+"/repo:tag"))
			hops := cmpOr(max, registry.DefaultMaxRedirects)
			if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), fmt.Sprintf("stopped after %d redirects", hops)) {
				t.Fatalf("error %v, want unavailable \"stopped after %d redirects\"", err, hops)
			}
			got := countsOf(m.Snapshot(), registry.KindManifest)
			if diff := cmp.Diff(map[string]int{"HEAD Found": hops + 1}, got); diff != "" {
				t.Errorf("manifest requests (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("blob redirected to storage", func(t *testing.T) {
		t.Parallel()
		host := serve(t, loop)
		tests := []struct {
			repo, content string
			want          error
		}{
			{"good", storage["good"], nil},
			{"big", big, nil},
			{"bad", storage["good"], registry.ErrInvalid},
		}
		for _, tc := range tests {
			m := &registry.Counter{}
			c := newClient(t, registry.Options{Metrics: m})
			b, err := c.Blob(ctxTimeout(t, 10*time.Second), mustDigest(t, host+"/"+tc.repo+"@"+sha256Of(tc.content)))
			if tc.want != nil {
				if !errors.Is(err, tc.want) || strings.Contains(err.Error(), "secret") {
					t.Errorf("Blob(%s) error %v, want %v without the storage URL's query", tc.repo, err, tc.want)
				}
				continue
			}
			if err != nil || string(b) != tc.content {
				t.Fatalf("Blob(%s) = %d bytes, %v; want %d bytes", tc.repo, len(b), err, len(tc.content))
			}
			if diff := cmp.Diff(map[string]int{"GET Temporary Redirect": 1, "GET OK": 1}, countsOf(m.Snapshot(), registry.KindBlob)); diff != "" {
				t.Errorf("Blob(%s) requests (-want +got):\n%s", tc.repo, diff)
			}
		}
	})
}

// TestTimeouts: registries that accept connections and never answer, stall before the headers,
// or trickle the body return ErrTimeout promptly once the context expires.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	stall := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	trickle := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return // no Docker-Content-Digest: Resolve falls back to GET
		}
		for end := time.Now().Add(10 * time.Second); r.Context().Err() == nil && time.Now().Before(end); {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}
	tests := []struct {
		name string
		host func(t *testing.T) string
		call string
	}{
		{"accepts and never answers", silentListener, "resolve"},
		{"stalls before headers", srv(fakeRegistry(stall)), "resolve"},
		{"stalls before headers, Manifest", srv(fakeRegistry(stall)), "manifest"},
		{"trickles the body, Manifest", srv(fakeRegistry(trickle)), "manifest"},
		{"trickles the body, Resolve (GET fallback)", srv(fakeRegistry(trickle)), "resolve"},
		{"trickles the body, Blob", srv(fakeRegistry(trickle)), "blob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := tc.host(t)
			c := newClient(t, registry.Options{})
			start := time.Now()
			_, err := call(ctxTimeout(t, 500*time.Millisecond), t, c, tc.call, host, sha256Of("x"))
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("returned after %v, want promptly after the 500ms deadline", elapsed)
			}
			t.Logf("%v", err)
			if !errors.Is(err, registry.ErrTimeout) {
				t.Fatalf("error %v (code %q), want timeout", err, registry.Classify(err))
			}
		})
	}
}

// silentListener accepts connections and never reads or writes.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(done)
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
