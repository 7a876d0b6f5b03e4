package cache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/vouchproject/vouch/internal/verify"
)

// Defaults applied by New to zero fields of Options: Kyverno's flag defaults (spec §6) for the
// size and the pass TTL, vouch's own for failed outcomes, which Kyverno does not cache.
const (
	DefaultMaxSize = 1000
	DefaultTTL     = 60 * time.Minute
	DefaultFailTTL = 30 * time.Second
)

// Key identifies one verification: the policy (UID and resourceVersion — any policy change is
// a new key), the rule, the verifyImages entry index, the repository and the image digest.
// The digest, not the tag, is the identity of the image (DESIGN §6); Do refuses a key without
// one. Signatures live next to the image, so the same digest in another repository is
// verified there: its signatures may differ (a failure in one repository says nothing about
// another's).
type Key struct {
	PolicyUID     string
	PolicyVersion string
	Rule          string
	Entry         int
	// Variant tells apart the substitutions of an entry with variables (its keys may come
	// from the request or a context entry): a verification under one substitution never
	// answers for another. Empty for an entry as written.
	Variant    string
	Repository string // <registry>/<path>, e.g. "ghcr.io/acme/app"
	Digest     string // "<algorithm>:<encoded>", e.g. "sha256:<64 hex>"
}

// Options configures a Cache. The zero value is a disabled cache: the command line sets
// Enabled from --imageVerifyCacheEnabled, whose default is true.
type Options struct {
	// Enabled is Kyverno's --imageVerifyCacheEnabled. When false, Do calls the verification
	// function every time and nothing is kept.
	Enabled bool
	// MaxSize is Kyverno's --imageVerifyCacheMaxSize: the most entries kept; 0 means 1000.
	MaxSize int
	// TTL is Kyverno's --imageVerifyCacheTTLDuration: how long a pass is kept; 0 means 60m.
	TTL time.Duration
	// FailTTL is how long a failed outcome is kept; 0 means 30s.
	FailTTL time.Duration
	// Now reads the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Stats are the cache's counters since New, for metrics.
type Stats struct {
	// Hits counts calls of Do answered from the cache.
	Hits uint64
	// Misses counts calls of Do that found no live entry (Coalesced ones included).
	Misses uint64
	// Evictions counts entries dropped for room (MaxSize) or found expired; entries dropped by
	// InvalidatePolicy are not counted.
	Evictions uint64
	// Coalesced counts calls of Do that waited on a verification another call had started.
	Coalesced uint64
	// Entries is the number of entries held now, expired ones not yet reclaimed included.
	Entries int
}

// Cache holds verification outcomes by Key and coalesces identical verifications in flight.
// A nil *Cache is a disabled one. It is safe for concurrent use.
type Cache struct {
	enabled bool
	size    int
	ttl     time.Duration
	failTTL time.Duration
	now     func() time.Time

	mu      sync.Mutex // guards everything below
	lru     *simplelru.LRU[Key, entry]
	flights map[Key]*flight
	stats   Stats
}

// entry is one kept outcome.
type entry struct {
	res     verify.Result
	expires time.Time
}

// New validates opts, applies the defaults and returns an empty Cache.
func New(opts Options) (*Cache, error) {
	switch {
	case opts.MaxSize < 0:
		return nil, fmt.Errorf("imageVerifyCacheMaxSize must not be negative, got %d", opts.MaxSize)
	case opts.TTL < 0:
		return nil, fmt.Errorf("imageVerifyCacheTTLDuration must not be negative, got %s", opts.TTL)
	case opts.FailTTL < 0:
		return nil, fmt.Errorf("verification cache fail TTL must not be negative, got %s", opts.FailTTL)
	}
	c := &Cache{enabled: opts.Enabled, ttl: opts.TTL, failTTL: opts.FailTTL, now: opts.Now}
	if c.ttl == 0 {
		c.ttl = DefaultTTL
	}
	if c.failTTL == 0 {
		c.failTTL = DefaultFailTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	if !c.enabled {
		return c, nil
	}
	c.size = opts.MaxSize
	if c.size == 0 {
		c.size = DefaultMaxSize
	}
	lru, err := simplelru.NewLRU[Key, entry](c.size, nil)
	if err != nil {
		return nil, fmt.Errorf("creating the verification cache: %w", err)
	}
	c.lru, c.flights = lru, map[Key]*flight{}
	return c, nil
}

// Do returns the outcome of the verification identified by key: from the cache (hit is true),
// or by calling verifyFn once for all concurrent callers of the same key.
//
// Each caller is bounded by its own ctx: a caller whose ctx ends stops waiting and gets a
// verify.CodeTimeout error, while the verification goes on for the callers still waiting and
// is cached when it completes. verifyFn runs in a goroutine of its own with a context that
// carries the values of the ctx of the caller that started it, but not its deadline or
// cancellation; that context is cancelled when every waiting caller has given up (hence no
// later than the longest waiter's deadline), and then only a pass it still returns is cached.
//
// A passed Result is cached for TTL, a failed one for FailTTL, either no longer than its
// ValidUntil when that is set (a certificate checked at the time of verification expires
// then; one already past is not cached); an error (vouch could not decide) is never cached,
// nor is a failed Result whose Failure is undecided. A panic in
// verifyFn becomes a *PanicError for every waiter. Do refuses a key whose Digest is not a
// digest. When the cache is disabled, Do just calls verifyFn (a panic still becomes an error).
func (c *Cache) Do(ctx context.Context, key Key, verifyFn func(ctx context.Context) (verify.Result, error)) (res verify.Result, hit bool, err error) {
	if c == nil || !c.enabled {
		res, err = call(ctx, verifyFn)
		return res, false, err
	}
	if !isDigest(key.Digest) {
		return verify.Result{}, false, verify.Errorf(verify.CodeUnsupported,
			fmt.Sprintf("caching a verification: want an image digest in the key, got %q", key.Digest), nil)
	}
	now := c.now()
	c.mu.Lock()
	if res, ok := c.lookup(key, now); ok {
		c.mu.Unlock()
		return res, true, nil
	}
	if ctx.Err() != nil {
		c.mu.Unlock()
		return verify.Result{}, false, waitError(ctx)
	}
	f := c.join(ctx, key, verifyFn)
	c.mu.Unlock()
	res, err = c.wait(ctx, f)
	return res, false, err
}

// InvalidatePolicy drops every entry of the policy with this UID, to be called when the policy
// changes or is deleted, or when trust material it refers to changes. Verifications of the
// policy in flight are not cancelled — their callers still get their outcome — but that
// outcome is not cached, and later callers start a verification of their own.
func (c *Cache) InvalidatePolicy(uid string) {
	if c == nil || !c.enabled {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.lru.Keys() {
		if k.PolicyUID == uid {
			c.lru.Remove(k)
		}
	}
	for k, f := range c.flights {
		if k.PolicyUID == uid {
			f.stale = true
			delete(c.flights, k)
		}
	}
}

// Stats returns the counters and the number of entries held. A disabled cache reports zeros.
func (c *Cache) Stats() Stats {
	if c == nil || !c.enabled {
		return Stats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = c.lru.Len()
	return s
}

// lookup returns the live entry for key, reclaiming it when it has expired. c.mu is held.
func (c *Cache) lookup(key Key, now time.Time) (verify.Result, bool) {
	e, ok := c.lru.Get(key)
	if ok && now.Before(e.expires) {
		c.stats.Hits++
		return e.res, true
	}
	if ok {
		c.lru.Remove(key)
		c.stats.Evictions++
	}
	c.stats.Misses++
	return verify.Result{}, false
}

// store keeps the outcome of a completed verification when it may be kept. ended says the
// verification's context had ended before it returned. c.mu is held.
func (c *Cache) store(key Key, res verify.Result, err error, ended bool) {
	ttl := c.ttl
	switch {
	case err != nil: // undecided: the next caller must try again
		return
	case res.Passed:
	case ended || verify.Undecided(res.Failure):
		// A failure produced while being cancelled, or one whose cause could not be decided,
		// is not evidence that the image fails.
		return
	default:
		ttl = c.failTTL
	}
	now := c.now()
	expires := now.Add(ttl)
	if !res.ValidUntil.IsZero() && res.ValidUntil.Before(expires) {
		// A certificate checked at the time of verification expires first: verifying again
		// then would not pass, so neither may the kept result. One already past is not kept.
		if !res.ValidUntil.After(now) {
			return
		}
		expires = res.ValidUntil
	}
	if c.lru.Add(key, entry{res: res, expires: expires}) {
		c.stats.Evictions++
	}
}

// isDigest reports whether s has the shape of an OCI digest, "<algorithm>:<encoded>" with an
// encoded part of at least 32 characters. It guards against a tag reaching the key by mistake;
// the digest itself comes from the registry resolver.
func isDigest(s string) bool {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok || alg == "" || len(enc) < 32 {
		return false
	}
	for i := 0; i < len(alg); i++ {
		b := alg[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '+' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	for i := 0; i < len(enc); i++ {
		b := enc[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '=' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}
