package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/registry"
)

// TestLandscapeGroup9RetryAfter: a registry answering 429 or 503 with Retry-After is retried
// after the wait it asks for when that fits in the time left, and not at all when it does not
// — then the call fails at once, "could not verify" (unavailable), naming the Retry-After.
// Without Retry-After the retries are bounded (MaxRetries) and jittered.
func TestLandscapeGroup9RetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string
		refusals   int // answers with status before serving the manifest
		budget     time.Duration
		wantErr    string // "" for success
		requests   int    // manifest HEADs the registry sees
		min, max   time.Duration
	}{
		{name: "429 Retry-After 1 fits", status: 429, retryAfter: "1", refusals: 1, budget: 4 * time.Second, requests: 2, min: time.Second, max: 2500 * time.Millisecond},
		{name: "503 Retry-After HTTP date fits", status: 503, retryAfter: "date+1s", refusals: 1, budget: 4 * time.Second, requests: 2, min: 200 * time.Millisecond, max: 2500 * time.Millisecond},
		{name: "429 Retry-After 30 does not fit", status: 429, retryAfter: "30", refusals: 99, budget: time.Second, wantErr: "answered 429 Too Many Requests with Retry-After 30, more than the time budget allows", requests: 1, max: 300 * time.Millisecond},
		{name: "503 Retry-After 1 does not fit", status: 503, retryAfter: "1", refusals: 99, budget: 800 * time.Millisecond, wantErr: "answered 503 Service Unavailable with Retry-After 1", requests: 1, max: 300 * time.Millisecond},
		{name: "503 storm without Retry-After: 2 retries", status: 503, refusals: 99, budget: 4 * time.Second, wantErr: "503 Service Unavailable", requests: 3, max: time.Second},
		{name: "429 once without Retry-After", status: 429, refusals: 1, budget: 4 * time.Second, requests: 2, max: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var heads atomic.Int32
			host := serve(t, fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
				if n := heads.Add(1); int(n) <= tc.refusals {
					ra := tc.retryAfter
					if ra == "date+1s" {
						ra = time.Now().Add(1500 * time.Millisecond).UTC().Format(http.TimeFormat) // whole seconds: 0.5–1.5 s
					}
					if ra != "" {
						w.Header().Set("Retry-After", ra)
					}
					http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, tc.status)
					return
				}
				serveManifest(w, r)
			}))
			c := newClient(t, registry.Options{RetryDelay: 20 * time.Millisecond})
			start := time.Now()
			_, err := c.Resolve(ctxTimeout(t, tc.budget), mustTag(t, host+"/app:v1"))
			elapsed := time.Since(start)
			t.Logf("%v after %v", err, elapsed)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if tc.wantErr != "" && (!errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want unavailable containing %q", err, tc.wantErr)
			}
			if got := int(heads.Load()); got != tc.requests {
				t.Errorf("registry saw %d manifest requests, want %d", got, tc.requests)
			}
			if elapsed < tc.min || elapsed > tc.max {
				t.Errorf("took %v, want between %v and %v", elapsed, tc.min, tc.max)
			}
		})
	}
}

// TestLandscapeGroup9CircuitBreaker: after BreakerThreshold consecutive failing calls (a 503
// storm, or a registry that never answers) the circuit opens: calls fail at once with
// "registry X is unavailable (circuit open)", unavailable, without reaching the registry; after
// the cool-down one call probes it, and a healthy answer closes the circuit.
func TestLandscapeGroup9CircuitBreaker(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"503 storm", "never answers"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var broken atomic.Bool
			var requests atomic.Int32
			broken.Store(true)
			host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				switch {
				case !broken.Load():
					if r.URL.Path != "/v2/" {
						serveManifest(w, r)
					}
				case mode == "503 storm":
					http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				default:
					<-r.Context().Done()
				}
			}))
			// The cool-down leaves room for a loaded test machine: the five calls below must all
			// fall inside it.
			const threshold, cooldown = 3, 2 * time.Second
			c := newClient(t, registry.Options{BreakerThreshold: threshold, BreakerCooldown: cooldown, RetryDelay: 5 * time.Millisecond})
			budget := 2 * time.Second
			if mode == "never answers" {
				budget = 300 * time.Millisecond // > minBlame: a timeout counts
			}
			for i := range threshold {
				_, err := c.Resolve(ctxTimeout(t, budget), mustTag(t, host+"/app:v1"))
				if err == nil || strings.Contains(err.Error(), "circuit open") {
					t.Fatalf("call %d: error %v, want the registry's own failure", i, err)
				}
			}
			before := requests.Load()
			for i := range 5 {
				start := time.Now()
				_, err := c.Resolve(ctxTimeout(t, budget), mustTag(t, host+"/app:v1"))
				if want := "registry " + host + " is unavailable (circuit open)"; !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), want) {
					t.Fatalf("call %d with the circuit open: error %v, want unavailable containing %q", threshold+i, err, want)
				}
				if elapsed := time.Since(start); elapsed > 250*time.Millisecond { // < the 300 ms a sent call waits
					t.Errorf("call with the circuit open took %v", elapsed)
				}
			}
			if n := requests.Load() - before; n != 0 {
				t.Errorf("the registry got %d requests while the circuit was open", n)
			}
			broken.Store(false)
			time.Sleep(cooldown + 50*time.Millisecond)
			if _, err := c.Resolve(ctxTimeout(t, 2*time.Second), mustTag(t, host+"/app:v1")); err != nil {
				t.Fatalf("probe after the cool-down: %v", err)
			}
			if _, err := c.Resolve(ctxTimeout(t, 2*time.Second), mustTag(t, host+"/app:v1")); err != nil {
				t.Fatalf("after the circuit closed: %v", err)
			}
		})
	}
}

// TestLandscapeGroup9CircuitCheckedAfterSlot: a request waiting for one of the registry's
// slots when the circuit opens is not sent once it gets the slot: it fails at once with
// "circuit open", and the registry never sees it. The one half-open probe still goes.
func TestLandscapeGroup9CircuitCheckedAfterSlot(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	var heads atomic.Int32
	hold := make(chan struct{})
	host := serve(t, fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
		if !failing.Load() {
			serveManifest(w, r)
			return
		}
		heads.Add(1)
		<-hold
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	const cooldown = 300 * time.Millisecond
	c := newClient(t, registry.Options{MaxInFlightPerRegistry: 1, BreakerThreshold: 1, BreakerCooldown: cooldown, MaxRetries: -1})
	tag := mustTag(t, host+"/app:v1")
	if _, err := c.Resolve(ctxTimeout(t, 5*time.Second), tag); err != nil { // the ping is done and kept
		t.Fatal(err)
	}
	failing.Store(true)
	first := make(chan error, 1)
	go func() {
		_, err := c.Resolve(ctxTimeout(t, 5*time.Second), tag)
		first <- err
	}()
	for heads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const queued = 3
	errs := make(chan error, queued)
	for range queued {
		go func() {
			_, err := c.Resolve(ctxTimeout(t, 5*time.Second), tag)
			errs <- err
		}()
	}
	waitForGoroutines(t, "registry.(*hostState).acquire", queued) // let in by the closed circuit, waiting for the slot
	close(hold)
	if err := <-first; !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("first request: %v, want the registry's 503", err)
	}
	want := "registry " + host + " is unavailable (circuit open)"
	for range queued {
		if err := <-errs; !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Errorf("queued request: %v, want unavailable containing %q", err, want)
		}
	}
	if n := heads.Load(); n != 1 {
		t.Errorf("the registry got %d requests, want 1: requests queued for a slot went on after the circuit opened", n)
	}
	failing.Store(false)
	time.Sleep(cooldown + 50*time.Millisecond)
	if _, err := c.Resolve(ctxTimeout(t, 5*time.Second), tag); err != nil {
		t.Fatalf("the half-open probe: %v", err)
	}
}

// waitForGoroutines waits until n goroutines are running (or blocked in) fn.
func waitForGoroutines(t *testing.T, fn string, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		got := strings.Count(string(buf[:runtime.Stack(buf, true)]), fn+"(")
		if got >= n {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%d goroutines in %s, want %d", got, fn, n)
		}
	}
}

// TestLandscapeGroup9InFlightLimit: however many calls run at once, a registry host sees at
// most MaxInFlightPerRegistry requests in flight, and every call still succeeds.
func TestLandscapeGroup9InFlightLimit(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int32
	host := serve(t, fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		serveManifest(w, r)
	}))
	const limit, calls = 4, 40
	c := newClient(t, registry.Options{MaxInFlightPerRegistry: limit})
	ctx := ctxTimeout(t, 5*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Manifest(ctx, mustDigest(t, fmt.Sprintf("%s/app%d@%s", host, i%3, sha256Of(manifestJSON))))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p > limit || p < 2 {
		t.Errorf("peak of %d requests in flight, want 2..%d", p, limit)
	}
}

// TestLandscapeGroup9ContentLengthLies: a Content-Length that lies in either direction costs
// little and never yields content: shorter than the body (the bytes read do not hash to the
// digest: invalid), longer than the body (the connection ends early: unavailable), or 2 GiB over
// a small body (refused before reading: too-large, naming the cap).
func TestLandscapeGroup9ContentLengthLies(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 64<<10)
	tests := []struct {
		name   string
		length int64
		body   []byte
		want   error
		msg    string
	}{
		{"claims less than it sends", 10, big, registry.ErrInvalid, "does not match its digest"},
		{"claims more than it sends", 1 << 20, []byte(manifestJSON), registry.ErrUnavailable, "EOF"},
		{"claims 2 GiB", 2 << 30, []byte(manifestJSON), registry.ErrTooLarge, "exceeds the 4194304-byte limit (Content-Length 2147483648)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := serve(t, fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
				// net/http refuses to send more than the Content-Length: write the lie raw.
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: %d\r\n\r\n", tc.length)
				buf.Write(tc.body)
				buf.Flush()
			}))
			c := newClient(t, registry.Options{})
			start := time.Now()
			_, err := call(ctxTimeout(t, 5*time.Second), t, c, "manifest-digest", host, sha256Of(manifestJSON))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v (code %q), want %v containing %q", err, registry.Classify(err), tc.want, tc.msg)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}

// TestLandscapeGroup1ManifestBytesMustHashToDigest: a registry (ggcr's in-process one,
// wrapped) that serves other bytes for a manifest asked for by digest — or for a tag, other
// bytes than the digest it announces — is refused with "does not match its digest" (invalid,
// a failure), never used.
func TestLandscapeGroup1ManifestBytesMustHashToDigest(t *testing.T) {
	t.Parallel()
	var tamper atomic.Bool
	inner := quietRegistry()
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tamper.Load() || !strings.Contains(r.URL.Path, "/manifests/") {
			inner.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed) // make Resolve GET the bytes
			return
		}
		rec := &bufferedResponse{header: http.Header{}}
		inner.ServeHTTP(rec, r)
		body := bytes.Replace(rec.body.Bytes(), []byte(`"schemaVersion":2`), []byte(`"schemaVersion": 2`), 1)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(rec.status)
		w.Write(body)
	}))
	_, dig := push(t, host, "app", "v1")
	d := dig.DigestStr()
	tamper.Store(true)
	c := newClient(t, registry.Options{})
	ctx := ctxTimeout(t, 5*time.Second)
	for _, what := range []string{"manifest by digest", "manifest by tag", "resolve by tag"} {
		var err error
		switch what {
		case "manifest by digest":
			_, err = c.Manifest(ctx, mustDigest(t, host+"/app@"+d))
		case "manifest by tag":
			_, err = c.Manifest(ctx, mustTag(t, host+"/app:v1"))
		default:
			_, err = c.Resolve(ctx, mustTag(t, host+"/app:v1"))
		}
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "does not match its digest: want "+d) {
			t.Errorf("%s: error %v, want invalid naming %s", what, err, d)
		}
	}
	// Through ggcr directly (as cosign calls it) with the Client's options, too.
	if _, err := remote.Get(mustDigest(t, host+"/app@"+d), c.RemoteOptions(ctx)...); registry.Classify(err) != registry.CodeInvalid {
		t.Errorf("remote.Get: error %v, want invalid", err)
	}
}

// bufferedResponse records a handler's response.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(s int)   { b.status = s }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

var _ io.Writer = (*bufferedResponse)(nil)

// TestNewValidatesLimits: negative limits and malformed token realm patterns are refused.
func TestNewValidatesLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts registry.Options
		want string
	}{
		{registry.Options{RetryDelay: -time.Second}, "RetryDelay must not be negative"},
		{registry.Options{MaxInFlightPerRegistry: -1}, "MaxInFlightPerRegistry must not be negative"},
		{registry.Options{BreakerThreshold: -1}, "BreakerThreshold must not be negative"},
		{registry.Options{BreakerCooldown: -time.Second}, "BreakerCooldown must not be negative"},
		{registry.Options{TokenRealms: []string{"https://auth.example.com/token"}}, `token realm "https://auth.example.com/token": not a host`},
	} {
		if _, err := registry.New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
		if _, err := registry.NewPair(tc.opts); err == nil {
			t.Errorf("NewPair(%+v) accepted", tc.opts)
		}
	}
	if _, err := registry.New(registry.Options{MaxRetries: -1, TokenRealms: []string{"*.auth.example.com", "auth.example.com:8443"}}); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
}

// TestLandscapeGroup9CircuitGatesRetries: a request whose attempt failed (503) is not retried
// once its registry's circuit is open — whether the circuit opened while the request waited
// for its retry (Retry-After) or while its first attempt was in flight (then it does not wait
// at all). It fails with the registry's answer and "circuit open", unavailable, and the
// registry never sees a retry.
func TestLandscapeGroup9CircuitGatesRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		held     bool // the first attempt is answered only once the circuit is open
		min, max time.Duration
	}{
		{name: "circuit opens during the wait", min: time.Second, max: 2 * time.Second},
		{name: "circuit opens during the first attempt", held: true, max: 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var armed atomic.Bool
			var heads atomic.Int32 // manifest requests for app:v1
			hold, seen := make(chan struct{}), make(chan struct{}, 8)
			release := sync.OnceFunc(func() { close(hold) })
			host := serve(t, fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case !armed.Load():
					serveManifest(w, r)
				case strings.HasPrefix(r.URL.Path, "/v2/app/"):
					heads.Add(1)
					seen <- struct{}{}
					if tc.held {
						<-hold
					}
					w.Header().Set("Retry-After", "1")
					http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				default: // other/: a failure that is not retried, and opens the circuit
					http.Error(w, "internal error", http.StatusInternalServerError)
				}
			}))
			c := newClient(t, registry.Options{BreakerThreshold: 1, BreakerCooldown: 10 * time.Second})
			app, other := mustTag(t, host+"/app:v1"), mustTag(t, host+"/other:v1")
			for _, tag := range []name.Tag{app, other} { // the pings are done and kept
				if _, err := c.Resolve(ctxTimeout(t, 5*time.Second), tag); err != nil {
					t.Fatal(err)
				}
			}
			armed.Store(true)
			t.Cleanup(release)
			type result struct {
				err error
				at  time.Time
			}
			first := make(chan result, 1)
			go func() {
				_, err := c.Resolve(ctxTimeout(t, 5*time.Second), app)
				first <- result{err, time.Now()}
			}()
			<-seen
			start := time.Now() // the first attempt was sent
			if _, err := c.Resolve(ctxTimeout(t, 5*time.Second), other); err == nil || strings.Contains(err.Error(), "circuit open") {
				t.Fatalf("the call opening the circuit: %v, want the registry's 500", err)
			}
			if tc.held {
				start = time.Now()
				release()
			}
			res := <-first
			elapsed := res.at.Sub(start)
			t.Logf("%v after %v", res.err, elapsed)
			if want := "registry " + host + " is unavailable (circuit open)"; !errors.Is(res.err, registry.ErrUnavailable) ||
				!strings.Contains(res.err.Error(), want) || !strings.Contains(res.err.Error(), "503") {
				t.Errorf("error %v, want unavailable naming the 503 and containing %q", res.err, want)
			}
			if n := heads.Load(); n != 1 {
				t.Errorf("the registry saw %d requests for app:v1, want 1: the request was retried with the circuit open", n)
			}
			if elapsed < tc.min || elapsed > tc.max {
				t.Errorf("took %v, want between %v and %v", elapsed, tc.min, tc.max)
			}
		})
	}
}

// TestLandscapeGroup9CircuitOneProbe: while the half-open circuit's probe is in flight,
// another request that ends in a way that says nothing about the registry (cancelled) does
// not let a second probe through: the registry sees the one probe until it has answered, and
// every other request fails at once with "circuit open". The other request is one sent before
// the circuit opened, or an earlier probe that outlived the cool-down (the next probe went).
func TestLandscapeGroup9CircuitOneProbe(t *testing.T) {
	t.Parallel()
	for _, stale := range []string{"request sent before the circuit opened", "earlier probe"} {
		t.Run(stale, func(t *testing.T) {
			t.Parallel()
			var armed atomic.Bool
			var mu sync.Mutex
			seen := map[string]int{} // manifest requests by repository, once armed
			arrived := make(chan string, 16)
			hold := make(chan struct{})
			release := sync.OnceFunc(func() { close(hold) })
			host := serve(t, fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
				if !armed.Load() {
					serveManifest(w, r)
					return
				}
				repo := strings.Split(r.URL.Path, "/")[2]
				mu.Lock()
				seen[repo]++
				mu.Unlock()
				arrived <- repo
				switch repo {
				case "stale": // answers only when the client gives up
					<-r.Context().Done()
				case "fail":
					http.Error(w, "internal error", http.StatusInternalServerError)
				case "probe":
					<-hold
					serveManifest(w, r)
				default:
					serveManifest(w, r)
				}
			}))
			seenOf := func(repo string) int {
				mu.Lock()
				defer mu.Unlock()
				return seen[repo]
			}
			const cooldown = 300 * time.Millisecond
			c := newClient(t, registry.Options{BreakerThreshold: 1, BreakerCooldown: cooldown, MaxRetries: -1})
			tags := map[string]name.Tag{}
			for _, repo := range []string{"stale", "fail", "probe", "next"} {
				tags[repo] = mustTag(t, host+"/"+repo+":v1")
				if _, err := c.Resolve(ctxTimeout(t, 5*time.Second), tags[repo]); err != nil { // the pings are done and kept
					t.Fatal(err)
				}
			}
			armed.Store(true)
			t.Cleanup(release)
			resolve := func(ctx context.Context, repo string) chan error {
				done := make(chan error, 1)
				go func() {
					_, err := c.Resolve(ctx, tags[repo])
					done <- err
				}()
				return done
			}
			staleCtx, cancel := context.WithCancel(ctxTimeout(t, 10*time.Second))
			defer cancel()
			var staleDone chan error
			if stale != "earlier probe" {
				staleDone = resolve(staleCtx, "stale")
				if r := <-arrived; r != "stale" {
					t.Fatalf("the registry saw %s, want stale", r)
				}
			}
			if _, err := c.Resolve(ctxTimeout(t, 5*time.Second), tags["fail"]); err == nil || strings.Contains(err.Error(), "circuit open") {
				t.Fatalf("the call opening the circuit: %v, want the registry's 500", err)
			}
			<-arrived // fail
			time.Sleep(cooldown + 50*time.Millisecond)
			if stale == "earlier probe" {
				staleDone = resolve(staleCtx, "stale")
				if r := <-arrived; r != "stale" {
					t.Fatalf("the registry saw %s, want the first probe (stale)", r)
				}
				time.Sleep(cooldown + 50*time.Millisecond) // the first probe outlives the cool-down
			}
			probeDone := resolve(ctxTimeout(t, 10*time.Second), "probe")
			if r := <-arrived; r != "probe" {
				t.Fatalf("the registry saw %s, want the probe", r)
			}
			cancel()
			if err := <-staleDone; err == nil {
				t.Fatal("the cancelled request succeeded")
			}
			want := "registry " + host + " is unavailable (circuit open)"
			for i := range 3 {
				if err := <-resolve(ctxTimeout(t, 5*time.Second), "next"); !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), want) {
					t.Errorf("request %d during the probe: %v, want unavailable containing %q", i, err, want)
				}
			}
			if n := seenOf("next"); n != 0 {
				t.Errorf("the registry saw %d requests besides the probe while it was in flight, want 0: a second probe went", n)
			}
			release()
			if err := <-probeDone; err != nil {
				t.Fatalf("the probe: %v", err)
			}
			if err := <-resolve(ctxTimeout(t, 5*time.Second), "next"); err != nil {
				t.Fatalf("after the probe closed the circuit: %v", err)
			}
			if n := seenOf("probe"); n != 1 {
				t.Errorf("the registry saw %d probes, want 1", n)
			}
		})
	}
}

// TestLandscapeGroup9ProbeNotRetried: the half-open circuit's probe is one attempt. A request
// answered 503 while the circuit is closed is retried (MaxRetries); the probe answered 503 is
// not — it fails at once, unavailable, naming the 503 and the open circuit — and the circuit
// opens for another cool-down.
func TestLandscapeGroup9ProbeNotRetried(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	var heads atomic.Int32
	host := serve(t, fakeRegistry(func(w http.ResponseWriter, r *http.Request) {
		if !armed.Load() {
			serveManifest(w, r)
			return
		}
		heads.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	const cooldown = 300 * time.Millisecond
	c := newClient(t, registry.Options{BreakerThreshold: 1, BreakerCooldown: cooldown, RetryDelay: 5 * time.Millisecond})
	tag := mustTag(t, host+"/app:v1")
	if _, err := c.Resolve(ctxTimeout(t, 5*time.Second), tag); err != nil { // the ping is done and kept
		t.Fatal(err)
	}
	armed.Store(true)
	want := "registry " + host + " is unavailable (circuit open)"
	for _, step := range []struct {
		name     string
		sleep    time.Duration
		requests int32
		open     bool // the error names the open circuit
	}{
		{name: "closed circuit: retried", requests: 1 + registry.DefaultMaxRetries},
		{name: "open circuit", open: true},
		{name: "probe", sleep: cooldown + 50*time.Millisecond, requests: 1, open: true},
		{name: "open again after the probe failed", open: true},
	} {
		time.Sleep(step.sleep)
		before := heads.Load()
		_, err := c.Resolve(ctxTimeout(t, 5*time.Second), tag)
		if !errors.Is(err, registry.ErrUnavailable) || strings.Contains(err.Error(), want) != step.open || (step.requests > 0 && !strings.Contains(err.Error(), "503")) {
			t.Errorf("%s: error %v, want unavailable naming the 503 (%v) and the open circuit (%v)", step.name, err, step.requests > 0, step.open)
		}
		if n := heads.Load() - before; n != step.requests {
			t.Errorf("%s: the registry saw %d requests, want %d", step.name, n, step.requests)
		}
	}
}
