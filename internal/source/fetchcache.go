package source

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// fetchCache keeps what rule context entries read from the API server for a short TTL, with
// one fetch in flight per key however many admissions ask, and at most maxFetched entries.
type fetchCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]fetched
	bytes   int64 // sum of the entries' sizes
	flight  singleflight.Group
}

// fetched is a kept answer: a value, or an error the API server gave about the object (it does
// not exist), which is kept too.
type fetched struct {
	value any
	err   error
	at    time.Time
	size  int64 // bytes of the answer as read
}

// maxFetched and maxFetchedBytes bound the answers kept; policies name few objects, but names
// may come from variables, and one answer may be 2 MiB (an apiCall) or 1 MiB (a ConfigMap).
const (
	maxFetched      = 4096
	maxFetchedBytes = 64 << 20
)

// fetchTimeout bounds one fetch, which the admissions waiting for it share.
const fetchTimeout = 5 * time.Second

func newFetchCache(ttl time.Duration) *fetchCache {
	return &fetchCache{ttl: ttl, now: time.Now, entries: map[string]fetched{}}
}

// get returns the kept answer for key or fetches it. fetch returns the answer to keep, or an
// error (the API server could not answer) that is not kept. Waiting ends with ctx.
func (c *fetchCache) get(ctx context.Context, key string, fetch func(context.Context) (fetched, error)) (any, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.value, e.err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("reading %s: %w", key, context.Cause(ctx))
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		at := c.now()
		e, err := fetch(fctx)
		if err != nil {
			return nil, err
		}
		e.at = at
		c.mu.Lock()
		if prev, ok := c.entries[key]; ok {
			c.bytes -= prev.size
		}
		if len(c.entries) >= maxFetched || c.bytes+e.size > maxFetchedBytes {
			c.entries, c.bytes = map[string]fetched{}, 0
		}
		c.entries[key] = e
		c.bytes += e.size
		c.mu.Unlock()
		return e, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		e := r.Val.(fetched)
		return e.value, e.err
	case <-ctx.Done():
		return nil, fmt.Errorf("reading %s: %w", key, context.Cause(ctx))
	}
}
