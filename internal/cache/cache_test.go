package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vouchproject/vouch/internal/verify"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func key(uid string, n int) Key {
	return Key{PolicyUID: uid, PolicyVersion: "1", Rule: "check-image", Entry: 0, Digest: digest(n)}
}

var (
	pass       = verify.Result{Passed: true, Digest: digest(1)}
	fail       = verify.Result{Failure: verify.Errorf(verify.CodeNoMatch, "no matching signatures", nil)}
	undecided  = verify.Errorf(verify.CodeUnavailable, "fetching signatures", errors.New("503 Service Unavailable"))
	cmpResults = cmp.Options{cmpopts.EquateErrors()}
)

// counter is a verification function that counts its calls and returns a fixed outcome.
type counter struct {
	calls atomic.Int64
	res   verify.Result
	err   error
}

func (f *counter) fn(context.Context) (verify.Result, error) {
	f.calls.Add(1)
	return f.res, f.err
}

func newCache(t *testing.T, opts Options) *Cache {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
		want    [3]any // size, ttl, failTTL
	}{
		{name: "defaults", opts: Options{Enabled: true}, want: [3]any{1000, time.Hour, 30 * time.Second}},
		{name: "explicit", opts: Options{Enabled: true, MaxSize: 5, TTL: time.Minute, FailTTL: time.Second}, want: [3]any{5, time.Minute, time.Second}},
		{name: "negative size", opts: Options{Enabled: true, MaxSize: -1}, wantErr: true},
		{name: "negative ttl", opts: Options{Enabled: true, TTL: -time.Second}, wantErr: true},
		{name: "negative fail ttl", opts: Options{FailTTL: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New() error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := [3]any{c.size, c.ttl, c.failTTL}
			if got != tt.want {
				t.Errorf("New() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestExpiry: a pass is kept for TTL, a failure for FailTTL, and each then expires.
func TestExpiry(t *testing.T) {
	t.Parallel()
	checkExpiry(t, []expiryCase{
		{name: "pass just before ttl", res: pass, after: expiryTTL - time.Nanosecond, wantHit: true},
		{name: "pass at ttl", res: pass, after: expiryTTL},
		{name: "pass after fail ttl", res: pass, after: expiryFailTTL + time.Second, wantHit: true},
		{name: "fail just before fail ttl", res: fail, after: expiryFailTTL - time.Nanosecond, wantHit: true},
		{name: "fail at fail ttl", res: fail, after: expiryFailTTL},
		{name: "fail well before ttl", res: fail, after: time.Minute},
	}, true)
}

// The TTLs of the expiry tests.
const expiryTTL, expiryFailTTL = 10 * time.Minute, 30 * time.Second

// expiryCase is a result kept and looked up again after a while.
type expiryCase struct {
	name    string
	res     verify.Result
	after   time.Duration
	wantHit bool
}

// checkExpiry stores each case's result in a cache of expiryTTL and expiryFailTTL, advances the
// clock and checks the second lookup: hit or miss, the result, the verifications run and, with
// evictions, that a miss found an expired entry.
func checkExpiry(t *testing.T, tests []expiryCase, evictions bool) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			c := newCache(t, Options{Enabled: true, TTL: expiryTTL, FailTTL: expiryFailTTL, Now: clock.Now})
			v := &counter{res: tt.res}
			k := key("p", 1)
			if _, hit, err := c.Do(context.Background(), k, v.fn); hit || err != nil {
				t.Fatalf("first Do: hit %v, err %v; want a miss", hit, err)
			}
			clock.Advance(tt.after)
			res, hit, err := c.Do(context.Background(), k, v.fn)
			if err != nil || hit != tt.wantHit {
				t.Fatalf("second Do after %s: hit %v, err %v; want hit %v", tt.after, hit, err, tt.wantHit)
			}
			if diff := cmp.Diff(tt.res, res, cmpResults); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			wantCalls, wantEvictions := int64(2), uint64(1)
			if tt.wantHit {
				wantCalls, wantEvictions = 1, 0
			}
			if got := v.calls.Load(); got != wantCalls {
				t.Errorf("verification ran %d times, want %d", got, wantCalls)
			}
			if got := c.Stats().Evictions; evictions && got != wantEvictions {
				t.Errorf("Evictions = %d, want %d", got, wantEvictions)
			}
		})
	}
}

// TestNotCached: outcomes that are not evidence are never kept; the next call verifies again.
func TestNotCached(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   func(context.Context) (verify.Result, error)
		want func(error) bool
	}{
		{
			name: "undecided error",
			fn:   func(context.Context) (verify.Result, error) { return verify.Result{}, undecided },
			want: func(err error) bool { return errors.Is(err, verify.ErrUnavailable) },
		},
		{
			name: "failure with an undecided cause",
			fn: func(context.Context) (verify.Result, error) {
				return verify.Result{Failure: verify.Errorf(verify.CodeAuth, "401", nil)}, nil
			},
			want: func(err error) bool { return err == nil },
		},
		{
			name: "panic",
			fn:   func(context.Context) (verify.Result, error) { panic("boom") },
			want: func(err error) bool { var p *PanicError; return errors.As(err, &p) && verify.Undecided(err) },
		},
		{
			name: "panic with a verdict as value",
			fn:   func(context.Context) (verify.Result, error) { panic(verify.ErrNoMatch) },
			want: func(err error) bool { return verify.Undecided(err) && !errors.Is(err, verify.ErrNoMatch) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCache(t, Options{Enabled: true})
			var calls atomic.Int64
			fn := func(ctx context.Context) (verify.Result, error) { calls.Add(1); return tt.fn(ctx) }
			for i := range 3 {
				_, hit, err := c.Do(context.Background(), key("p", 1), fn)
				if hit || !tt.want(err) {
					t.Fatalf("Do #%d: hit %v, err %v", i, hit, err)
				}
			}
			if got := calls.Load(); got != 3 {
				t.Errorf("verification ran %d times, want 3", got)
			}
			if got := c.Stats(); got.Entries != 0 || got.Misses != 3 {
				t.Errorf("Stats() = %+v, want no entry and 3 misses", got)
			}
		})
	}
}

// TestDisabled: a disabled (or nil) cache calls the verification every time.
func TestDisabled(t *testing.T) {
	t.Parallel()
	disabled := newCache(t, Options{Enabled: false, MaxSize: 10})
	for name, c := range map[string]*Cache{"disabled": disabled, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := &counter{res: pass}
			for range 3 {
				res, hit, err := c.Do(context.Background(), Key{}, v.fn) // not even a digest is needed
				if hit || err != nil || !res.Passed {
					t.Fatalf("Do: %+v, hit %v, err %v", res, hit, err)
				}
			}
			if got := v.calls.Load(); got != 3 {
				t.Errorf("verification ran %d times, want 3", got)
			}
			c.InvalidatePolicy("p")
			if got := c.Stats(); got != (Stats{}) {
				t.Errorf("Stats() = %+v, want zero", got)
			}
			_, _, err := c.Do(context.Background(), Key{}, func(context.Context) (verify.Result, error) { panic("boom") })
			var p *PanicError
			if !errors.As(err, &p) {
				t.Errorf("panic: err = %v, want a *PanicError", err)
			}
		})
	}
}

// TestKeyFields: every field of the key separates verifications; in particular a tag that
// moved to another digest is verified afresh and does not inherit the pass.
func TestKeyFields(t *testing.T) {
	t.Parallel()
	base := key("p", 1)
	tests := []struct {
		name   string
		change func(*Key)
	}{
		{name: "moved tag: other digest", change: func(k *Key) { k.Digest = digest(2) }},
		{name: "policy changed", change: func(k *Key) { k.PolicyVersion = "2" }},
		{name: "other policy", change: func(k *Key) { k.PolicyUID = "q" }},
		{name: "other rule", change: func(k *Key) { k.Rule = "other" }},
		{name: "other entry of the rule", change: func(k *Key) { k.Entry = 1 }},
		{name: "other substitution of the entry", change: func(k *Key) { k.Variant = "v2" }},
		{name: "same digest in another repository", change: func(k *Key) { k.Repository = "ghcr.io/other/app" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCache(t, Options{Enabled: true})
			if _, _, err := c.Do(context.Background(), base, (&counter{res: pass}).fn); err != nil {
				t.Fatal(err)
			}
			other := base
			tt.change(&other)
			v := &counter{res: fail}
			res, hit, err := c.Do(context.Background(), other, v.fn)
			if hit || err != nil || res.Passed || v.calls.Load() != 1 {
				t.Fatalf("Do(%+v) = %+v, hit %v, err %v after %d calls; want a fresh failed verification", other, res, hit, err, v.calls.Load())
			}
			if res, hit, _ := c.Do(context.Background(), base, v.fn); !hit || !res.Passed {
				t.Errorf("the original key lost its pass: %+v, hit %v", res, hit)
			}
		})
	}
}

// TestKeyWithoutDigest: a key must name a digest; a tag or nothing is refused unverified.
func TestKeyWithoutDigest(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{Enabled: true})
	for _, d := range []string{"", "v1.2.3", "latest", "sha256:abc", "sha256", ":" + digest(1)[7:], "ghcr.io/x/y:" + digest(1)[7:], "SHA256:" + digest(1)[7:]} {
		v := &counter{res: pass}
		k := key("p", 0)
		k.Digest = d
		_, _, err := c.Do(context.Background(), k, v.fn)
		if !errors.Is(err, verify.ErrUnsupported) || v.calls.Load() != 0 {
			t.Errorf("Do(digest %q): err %v after %d calls; want unsupported, no verification", d, err, v.calls.Load())
		}
	}
	for _, d := range []string{digest(1), "sha512:" + fmt.Sprintf("%0128x", 7), "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"} {
		k := key("p", 0)
		k.Digest = d
		if _, _, err := c.Do(context.Background(), k, (&counter{res: pass}).fn); err != nil {
			t.Errorf("Do(digest %q): %v", d, err)
		}
	}
}

// TestInvalidatePolicy drops every entry of one policy and only those.
func TestInvalidatePolicy(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{Enabled: true})
	for _, k := range []Key{key("p", 1), key("p", 2), key("q", 1)} {
		if _, _, err := c.Do(context.Background(), k, (&counter{res: pass}).fn); err != nil {
			t.Fatal(err)
		}
	}
	c.InvalidatePolicy("p")
	if got := c.Stats().Entries; got != 1 {
		t.Errorf("Entries = %d after invalidating p, want 1", got)
	}
	tests := []struct {
		key     Key
		wantHit bool
	}{{key("p", 1), false}, {key("p", 2), false}, {key("q", 1), true}}
	for _, tt := range tests {
		if _, hit, _ := c.Do(context.Background(), tt.key, (&counter{res: pass}).fn); hit != tt.wantHit {
			t.Errorf("Do(%s %s): hit %v, want %v", tt.key.PolicyUID, tt.key.Digest, hit, tt.wantHit)
		}
	}
	if got := c.Stats().Evictions; got != 0 {
		t.Errorf("Evictions = %d, want 0 (invalidation is not eviction)", got)
	}
}

// TestInvalidatePolicyInFlight: an outcome verified under the invalidated policy is returned
// to its waiters but not cached, and a caller after the invalidation does not join it.
func TestInvalidatePolicyInFlight(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{Enabled: true})
	k := key("p", 1)
	release, started := make(chan struct{}), make(chan struct{})
	old := func(context.Context) (verify.Result, error) { close(started); <-release; return pass, nil }
	done := make(chan error)
	go func() { _, _, err := c.Do(context.Background(), k, old); done <- err }()
	<-started
	c.InvalidatePolicy("p")
	fresh := &counter{res: fail}
	if res, hit, err := c.Do(context.Background(), k, fresh.fn); hit || err != nil || res.Passed || fresh.calls.Load() != 1 {
		t.Fatalf("Do after invalidation: %+v, hit %v, err %v; want its own failed verification", res, hit, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("waiter of the invalidated verification: %v", err)
	}
	if res, hit, _ := c.Do(context.Background(), k, fresh.fn); !hit || res.Passed {
		t.Errorf("Do: %+v, hit %v; want the failure verified after the invalidation", res, hit)
	}
}

// TestMaxSize evicts the least recently used entry and counts it.
func TestMaxSize(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{Enabled: true, MaxSize: 2})
	do := func(n int) bool {
		_, hit, err := c.Do(context.Background(), key("p", n), (&counter{res: pass}).fn)
		if err != nil {
			t.Fatal(err)
		}
		return hit
	}
	do(1)
	do(2)
	do(1) // 2 is now least recently used
	do(3) // evicts 2
	want := Stats{Hits: 1, Misses: 3, Evictions: 1, Entries: 2}
	if diff := cmp.Diff(want, c.Stats()); diff != "" {
		t.Errorf("Stats() (-want +got):\n%s", diff)
	}
	for n, wantHit := range map[int]bool{1: true, 3: true} {
		if hit := do(n); hit != wantHit {
			t.Errorf("digest %d: hit %v, want %v", n, hit, wantHit)
		}
	}
	if do(2) {
		t.Error("digest 2 was not evicted")
	}
}

// TestConcurrentCoalesced: 100 concurrent callers of one key share one verification.
func TestConcurrentCoalesced(t *testing.T) {
	t.Parallel()
	const n = 100
	c := newCache(t, Options{Enabled: true})
	release := make(chan struct{})
	var calls atomic.Int64
	fn := func(context.Context) (verify.Result, error) { calls.Add(1); <-release; return pass, nil }
	results := make(chan error, n)
	for range n {
		go func() {
			res, hit, err := c.Do(context.Background(), key("p", 1), fn)
			if err == nil && (hit || !res.Passed) {
				err = fmt.Errorf("got %+v, hit %v; want the shared pass", res, hit)
			}
			results <- err
		}()
	}
	waitFor(t, func() bool { return c.Stats().Coalesced == n-1 })
	close(release)
	for range n {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("verification ran %d times, want 1", got)
	}
	want := Stats{Misses: n, Coalesced: n - 1, Entries: 1}
	if diff := cmp.Diff(want, c.Stats()); diff != "" {
		t.Errorf("Stats() (-want +got):\n%s", diff)
	}
}

// TestWaiterTimeout: a waiter whose ctx ends returns a timeout at once; the verification goes
// on for the other waiter, is not cancelled, and is cached for the next caller.
func TestWaiterTimeout(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{Enabled: true})
	k := key("p", 1)
	release := make(chan struct{})
	fnErr := make(chan error, 1)
	fn := func(ctx context.Context) (verify.Result, error) {
		<-release
		fnErr <- ctx.Err()
		return pass, nil
	}
	patient := make(chan verify.Result, 1)
	go func() { res, _, _ := c.Do(context.Background(), k, fn); patient <- res }()
	waitFor(t, func() bool { return c.Stats().Misses == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, hit, err := c.Do(ctx, k, fn)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("the impatient waiter returned after %s", elapsed)
	}
	if hit || !errors.Is(err, verify.ErrTimeout) || !verify.Undecided(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("impatient waiter: hit %v, err %v; want an undecided timeout", hit, err)
	}
	close(release)
	if err := <-fnErr; err != nil {
		t.Errorf("the verification's context ended: %v", err)
	}
	if res := <-patient; !res.Passed {
		t.Errorf("patient waiter got %+v, want the pass", res)
	}
	if res, hit, err := c.Do(context.Background(), k, (&counter{res: fail}).fn); !hit || !res.Passed || err != nil {
		t.Errorf("next caller: %+v, hit %v, err %v; want the cached pass", res, hit, err)
	}
}

// TestLastWaiterLeaves: when every waiter has given up, the verification's context is
// cancelled, a failure it then reports is not cached, and the next caller verifies anew.
func TestLastWaiterLeaves(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		res     verify.Result
		err     error
		wantHit bool
	}{
		{name: "undecided", err: verify.Errorf(verify.CodeTimeout, "fetching signatures", context.Canceled)},
		{name: "failure while cancelled", res: fail},
		{name: "pass despite cancellation", res: pass, wantHit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCache(t, Options{Enabled: true})
			k := key("p", 1)
			cause := make(chan error, 1)
			returned := make(chan struct{})
			fn := func(ctx context.Context) (verify.Result, error) {
				defer close(returned)
				<-ctx.Done()
				cause <- context.Cause(ctx)
				return tt.res, tt.err
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, _, err := c.Do(ctx, k, fn); !errors.Is(err, verify.ErrTimeout) {
				t.Fatalf("Do with a done context: %v, want a timeout", err)
			}
			ctx, cancel = context.WithCancel(context.Background())
			defer cancel()
			doErr := make(chan error)
			go func() { _, _, err := c.Do(ctx, k, fn); doErr <- err }()
			var f *flight
			waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); f = c.flights[k]; return f != nil })
			cancel()
			if err := <-doErr; !errors.Is(err, verify.ErrTimeout) || !errors.Is(err, context.Canceled) {
				t.Fatalf("Do: %v, want a timeout", err)
			}
			if err := <-cause; !errors.Is(err, verify.ErrTimeout) {
				t.Errorf("verification cancelled with cause %v, want a timeout", err)
			}
			<-returned
			<-f.done
			v := &counter{res: pass}
			if _, hit, _ := c.Do(context.Background(), k, v.fn); hit != tt.wantHit {
				t.Errorf("next caller: hit %v, want %v", hit, tt.wantHit)
			}
		})
	}
}

// TestPanicNoDeadlock: a panic (or Goexit) in the verification reaches every waiter as an
// error, nothing is cached and nothing stays in flight.
func TestPanicNoDeadlock(t *testing.T) {
	t.Parallel()
	for name, exit := range map[string]func(){"panic": func() { panic("boom") }, "goexit": runtime.Goexit} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const n = 10
			c := newCache(t, Options{Enabled: true})
			release := make(chan struct{})
			fn := func(context.Context) (verify.Result, error) { <-release; exit(); return pass, nil }
			errs := make(chan error, n)
			for range n {
				go func() { _, _, err := c.Do(context.Background(), key("p", 1), fn); errs <- err }()
			}
			waitFor(t, func() bool { return c.Stats().Coalesced == n-1 })
			close(release)
			timeout := time.After(10 * time.Second)
			for range n {
				select {
				case err := <-errs:
					if err == nil || !verify.Undecided(err) {
						t.Errorf("waiter: err %v, want an undecided error", err)
					}
				case <-timeout:
					t.Fatal("waiters deadlocked")
				}
			}
			v := &counter{res: pass}
			if _, hit, err := c.Do(context.Background(), key("p", 1), v.fn); hit || err != nil || v.calls.Load() != 1 {
				t.Errorf("next caller: hit %v, err %v; want a fresh verification", hit, err)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestExpiryBoundedByValidUntil: a result is kept until the earlier of its TTL and its
// ValidUntil (a certificate checked at the time of verification expires then); a zero
// ValidUntil keeps the TTL; a ValidUntil already past is not kept; failures keep FailTTL.
func TestExpiryBoundedByValidUntil(t *testing.T) {
	t.Parallel()
	const ttl, failTTL = expiryTTL, expiryFailTTL
	start := newClock().Now()
	until := func(res verify.Result, d time.Duration) verify.Result {
		res.ValidUntil = start.Add(d)
		return res
	}
	checkExpiry(t, []expiryCase{
		{name: "pass just before valid until", res: until(pass, 2*time.Minute), after: 2*time.Minute - time.Nanosecond, wantHit: true},
		{name: "pass at valid until", res: until(pass, 2*time.Minute), after: 2 * time.Minute},
		{name: "pass after valid until, well before ttl", res: until(pass, 2*time.Minute), after: 3 * time.Minute},
		{name: "pass, valid until after ttl: the ttl", res: until(pass, time.Hour), after: ttl},
		{name: "pass, valid until after ttl, before ttl", res: until(pass, time.Hour), after: ttl - time.Nanosecond, wantHit: true},
		{name: "pass, zero valid until: the ttl", res: pass, after: ttl - time.Nanosecond, wantHit: true},
		{name: "pass, valid until already past: not kept", res: until(pass, -time.Second), after: 0},
		{name: "pass, valid until now: not kept", res: until(pass, 0), after: 0},
		{name: "fail keeps its fail ttl", res: fail, after: failTTL - time.Nanosecond, wantHit: true},
		{name: "fail at fail ttl", res: fail, after: failTTL},
	}, false)
}
