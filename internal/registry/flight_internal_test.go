package registry

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/imageref"
)

// heldRegistry is ggcr's in-process registry behind a front that counts the HEADs of manifests
// by tag (tag resolutions) per Basic user ("" for none) and, while holding, keeps each of them
// waiting until it is released or its client gives up. Its ping asks for Basic credentials, so
// that each caller's credentials are seen.
type heldRegistry struct {
	host    string
	arrived chan struct{} // a token per HEAD by tag, when it arrives

	mu        sync.Mutex
	heads     map[string]int
	hold      chan struct{} // nil: answer at once
	cancelled int           // held HEADs whose client gave up
}

func startHeldRegistry(t *testing.T) *heldRegistry {
	t.Helper()
	h := &heldRegistry{arrived: make(chan struct{}, 1000), heads: map[string]int{}}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		if r.URL.Path == "/v2/" && user == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="vouch-test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		dir, last, _ := cutLast(r.URL.Path)
		if r.Method == http.MethodHead && strings.HasSuffix(dir, "/manifests") && !strings.Contains(last, ":") {
			h.mu.Lock()
			h.heads[user]++
			hold := h.hold
			h.mu.Unlock()
			h.arrived <- struct{}{}
			if hold != nil {
				select {
				case <-hold:
				case <-r.Context().Done():
					h.mu.Lock()
					h.cancelled++
					h.mu.Unlock()
					return
				}
			}
		}
		reg.ServeHTTP(w, r)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the https ping probe of the insecure client
	s.Start()
	t.Cleanup(s.Close)
	h.host = strings.TrimPrefix(s.URL, "http://")
	return h
}

func cutLast(p string) (string, string, bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p, false
	}
	return p[:i], p[i+1:], true
}

// push writes a new random image under repoTag and returns its digest. The HEADs it makes are
// not counted.
func (h *heldRegistry) push(t *testing.T, repoTag string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(h.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "pusher", Password: "x"})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.heads = map[string]int{}
	for len(h.arrived) > 0 {
		<-h.arrived
	}
	return d.String()
}

// holdHeads makes HEADs by tag wait until release.
func (h *heldRegistry) holdHeads() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = make(chan struct{})
}

func (h *heldRegistry) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.hold)
	h.hold = nil
}

func (h *heldRegistry) counts() (heads map[string]int, cancelled int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	heads = map[string]int{}
	for k, v := range h.heads {
		heads[k] = v
	}
	return heads, h.cancelled
}

// awaitHead waits for the next HEAD by tag to arrive.
func (h *heldRegistry) awaitHead(t *testing.T) {
	t.Helper()
	select {
	case <-h.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no HEAD of the tag arrived")
	}
}

// waiters returns the callers waiting for each resolution in flight, by reference and user.
func (p *Pair) waiters() map[resolveKey]int {
	p.flights.mu.Lock()
	defer p.flights.mu.Unlock()
	out := map[resolveKey]int{}
	for k, f := range p.flights.m {
		out[k] = f.waiters
	}
	return out
}

// awaitWaiters waits until the resolutions in flight have want waiters in all.
func awaitWaiters(t *testing.T, p *Pair, want int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		n := 0
		for _, w := range p.waiters() {
			n += w
		}
		if n == want {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%d callers waiting for resolutions in flight, want %d: %v", n, want, p.waiters())
		}
	}
}

func newFlightPair(t *testing.T) *Pair {
	t.Helper()
	p, err := NewPair(Options{Keychain: authn.NewMultiKeychain()}) // anonymous without a scope
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRef(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// basicScope is a credential Scope with Basic credentials for every registry.
func basicScope(user string) Scope {
	return Scope{Key: "key-of-" + user, Keychain: basicKeychain{&authn.Basic{Username: user, Password: "pw-" + user}}}
}

type basicKeychain struct{ a authn.Authenticator }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

type resolved struct {
	digest string
	err    error
	took   time.Duration
}

// resolveAsync resolves ref in ctx in a goroutine of its own.
func resolveAsync(p *Pair, ctx context.Context, ref imageref.Ref, insecure bool) <-chan resolved {
	out := make(chan resolved, 1)
	go func() {
		start := time.Now()
		d, err := p.Resolve(ctx, ref, insecure)
		out <- resolved{d, err, time.Since(start)}
	}()
	return out
}

func timeoutCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestResolveCoalescesInFlight: concurrent resolutions of one tag with the same credentials
// cost ONE HEAD, and all get its answer; once that resolution has answered, nothing is kept: the
// next one asks the registry again and sees the tag moved.
func TestResolveCoalescesInFlight(t *testing.T) {
	t.Parallel()
	reg := startHeldRegistry(t)
	first := reg.push(t, "app:v1")
	p := newFlightPair(t)
	ref := mustRef(t, reg.host+"/app:v1")
	const n = 20
	reg.holdHeads()
	var outs []<-chan resolved
	for range n {
		outs = append(outs, resolveAsync(p, timeoutCtx(t, 10*time.Second), ref, false))
	}
	awaitWaiters(t, p, n)
	reg.release()
	for i, out := range outs {
		if r := <-out; r.err != nil || r.digest != first {
			t.Errorf("caller %d: %q, %v; want %s", i, r.digest, r.err, first)
		}
	}
	if heads, _ := reg.counts(); heads[""] != 1 {
		t.Errorf("%d concurrent resolutions made %v HEADs of the tag, want 1", n, heads)
	}
	if w := p.waiters(); len(w) != 0 {
		t.Errorf("resolutions still in flight: %v", w)
	}

	moved := reg.push(t, "app:v1")
	for i := range 2 {
		d, err := p.Resolve(timeoutCtx(t, 10*time.Second), ref, false)
		if err != nil || d != moved {
			t.Fatalf("resolution %d after the tag moved: %q, %v; want %s", i, d, err, moved)
		}
	}
	if heads, _ := reg.counts(); heads[""] != 2 {
		t.Errorf("2 resolutions one after the other made %v HEADs, want 2: an answer is not kept after its flight", heads)
	}
}

// TestResolveFlightPerCredentials: resolutions with different credentials (credential Scopes
// of different Keys, or none), or with another insecure setting, or of another tag, never share
// a HEAD: each group of callers gets its own, made with its own credentials.
func TestResolveFlightPerCredentials(t *testing.T) {
	t.Parallel()
	reg := startHeldRegistry(t)
	digest := reg.push(t, "app:v1")
	other := reg.push(t, "app:v2")
	p := newFlightPair(t)
	bg := func() context.Context { return timeoutCtx(t, 10*time.Second) }
	groups := []struct {
		name     string
		ctx      func() context.Context
		tag      string
		insecure bool
		want     string
	}{
		{"no scope", bg, "v1", false, digest},
		{"no scope, insecure", bg, "v1", true, digest},
		{"no scope, another tag", bg, "v2", false, other},
		{"alice", func() context.Context { return WithScope(bg(), basicScope("alice")) }, "v1", false, digest},
		{"bob", func() context.Context { return WithScope(bg(), basicScope("bob")) }, "v1", false, digest},
	}
	const n = 5
	reg.holdHeads()
	outs := map[string][]<-chan resolved{}
	for _, g := range groups {
		for range n {
			outs[g.name] = append(outs[g.name], resolveAsync(p, g.ctx(), mustRef(t, reg.host+"/app:"+g.tag), g.insecure))
		}
	}
	awaitWaiters(t, p, n*len(groups))
	if got := len(p.waiters()); got != len(groups) {
		t.Errorf("%d resolutions in flight, want %d (one per group): %v", got, len(groups), p.waiters())
	}
	reg.release()
	for _, g := range groups {
		for i, out := range outs[g.name] {
			if r := <-out; r.err != nil || r.digest != g.want {
				t.Errorf("%s, caller %d: %q, %v; want %s", g.name, i, r.digest, r.err, g.want)
			}
		}
	}
	heads, _ := reg.counts()
	if want := map[string]int{"": 3, "alice": 1, "bob": 1}; !equalCounts(heads, want) {
		t.Errorf("HEADs by user %v, want %v", heads, want)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestResolveWaiterKeepsItsDeadline: every caller of a shared resolution waits no longer than
// its own context allows — one that runs out of time leaves with its own timeout error, and the
// others keep waiting for the answer — and the shared HEAD ends only when every caller has left
// or when the deadline of the caller that started it passes; callers with more time then resolve
// again.
func TestResolveWaiterKeepsItsDeadline(t *testing.T) {
	t.Parallel()
	const short = 300 * time.Millisecond
	checkTimeout := func(t *testing.T, r resolved) {
		t.Helper()
		if !errors.Is(r.err, ErrTimeout) || !strings.Contains(r.err.Error(), "context deadline exceeded") {
			t.Errorf("short caller: %q, %v; want a timeout (context deadline exceeded)", r.digest, r.err)
		}
		if r.took < short-50*time.Millisecond || r.took > short+700*time.Millisecond {
			t.Errorf("short caller returned after %v, want soon after its %v deadline", r.took, short)
		}
	}

	t.Run("a caller that joined leaves at its deadline", func(t *testing.T) {
		t.Parallel()
		reg := startHeldRegistry(t)
		digest := reg.push(t, "app:v1")
		p := newFlightPair(t)
		ref := mustRef(t, reg.host+"/app:v1")
		reg.holdHeads()
		long1 := resolveAsync(p, timeoutCtx(t, 10*time.Second), ref, false)
		reg.awaitHead(t)
		shortOut := resolveAsync(p, timeoutCtx(t, short), ref, false)
		long2 := resolveAsync(p, timeoutCtx(t, 10*time.Second), ref, false)
		awaitWaiters(t, p, 3)
		checkTimeout(t, <-shortOut)
		if _, cancelled := reg.counts(); cancelled != 0 {
			t.Errorf("the shared HEAD was cancelled when one of its callers left")
		}
		reg.release()
		for i, out := range []<-chan resolved{long1, long2} {
			if r := <-out; r.err != nil || r.digest != digest {
				t.Errorf("long caller %d: %q, %v; want %s", i, r.digest, r.err, digest)
			}
		}
		if heads, _ := reg.counts(); heads[""] != 1 {
			t.Errorf("HEADs %v, want 1", heads)
		}
	})

	t.Run("callers with more time than the one that started outlive it", func(t *testing.T) {
		t.Parallel()
		reg := startHeldRegistry(t)
		digest := reg.push(t, "app:v1")
		p := newFlightPair(t)
		ref := mustRef(t, reg.host+"/app:v1")
		reg.holdHeads()
		shortOut := resolveAsync(p, timeoutCtx(t, short), ref, false)
		reg.awaitHead(t)
		long1 := resolveAsync(p, timeoutCtx(t, 10*time.Second), ref, false)
		long2 := resolveAsync(p, timeoutCtx(t, 10*time.Second), ref, false)
		awaitWaiters(t, p, 3)
		checkTimeout(t, <-shortOut)
		reg.awaitHead(t) // the long callers' own resolution
		reg.release()
		for i, out := range []<-chan resolved{long1, long2} {
			if r := <-out; r.err != nil || r.digest != digest {
				t.Errorf("long caller %d: %q, %v; want %s", i, r.digest, r.err, digest)
			}
		}
		heads, cancelled := reg.counts()
		if heads[""] != 2 || cancelled != 1 {
			t.Errorf("HEADs %v, %d cancelled; want 2, the first cancelled at the deadline of the caller that started it", heads, cancelled)
		}
	})

	t.Run("the HEAD ends when every caller has left", func(t *testing.T) {
		t.Parallel()
		reg := startHeldRegistry(t)
		reg.push(t, "app:v1")
		p := newFlightPair(t)
		ref := mustRef(t, reg.host+"/app:v1")
		reg.holdHeads()
		ctx1, cancel1 := context.WithCancel(context.Background())
		ctx2, cancel2 := context.WithCancel(context.Background())
		out1 := resolveAsync(p, ctx1, ref, false)
		out2 := resolveAsync(p, ctx2, ref, false)
		awaitWaiters(t, p, 2)
		reg.awaitHead(t)
		cancel1()
		if r := <-out1; !errors.Is(r.err, ErrTimeout) || !errors.Is(r.err, context.Canceled) {
			t.Errorf("cancelled caller: %v, want a timeout error with its cause", r.err)
		}
		time.Sleep(50 * time.Millisecond)
		if _, cancelled := reg.counts(); cancelled != 0 {
			t.Errorf("the shared HEAD was cancelled while a caller was waiting")
		}
		cancel2()
		<-out2
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, cancelled := reg.counts(); cancelled == 1 {
				break
			}
			if time.Now().After(end) {
				t.Fatal("the shared HEAD was not cancelled when its last caller left")
			}
		}
		if w := p.waiters(); len(w) != 0 {
			t.Errorf("an abandoned resolution is still registered: %v", w)
		}
		reg.release()
	})
}

// TestResolveFlightPanics: a resolution that panics fails its callers with an undecided error
// instead of crashing the process from its goroutine, and is not kept.
func TestResolveFlightPanics(t *testing.T) {
	t.Parallel()
	g := newFlights()
	key := resolveKey{ref: "r.example/app:v1"}
	_, err := g.do(context.Background(), key, func(context.Context) (string, error) { panic("boom") })
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "resolving r.example/app:v1: resolution panicked: boom") {
		t.Errorf("error %v, want unavailable naming the panic", err)
	}
	d, err := g.do(context.Background(), key, func(context.Context) (string, error) { return "sha256:x", nil })
	if err != nil || d != "sha256:x" {
		t.Errorf("after the panic: %q, %v", d, err)
	}
}

// TestJudgeAbandonedResolution: a request of a shared resolution cut short because its last
// caller ran out of time counts against the registry's circuit like that caller's own request
// would have; one cut short because every caller was cancelled counts for nothing.
func TestJudgeAbandonedResolution(t *testing.T) {
	t.Parallel()
	long := time.Now().Add(-time.Second)
	cancelled := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		return ctx
	}
	expired, stop := context.WithDeadline(context.Background(), time.Now())
	defer stop()
	<-expired.Done()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		started time.Time
		want    outcome
	}{
		{"last caller ran out of time", cancelled(errAbandonedDeadline), long, failing},
		{"last caller ran out of time, request just started", cancelled(errAbandonedDeadline), time.Now(), neutral},
		{"every caller cancelled", cancelled(errAbandoned), long, neutral},
		{"own deadline", expired, long, failing},
		{"cancelled", cancelled(context.Canceled), long, neutral},
	} {
		if got := judgeErr(tc.ctx, context.Cause(tc.ctx), tc.started); got != tc.want {
			t.Errorf("%s: outcome %d, want %d", tc.name, got, tc.want)
		}
	}
}
