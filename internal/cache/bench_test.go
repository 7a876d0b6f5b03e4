package cache

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/vouchproject/vouch/internal/verify"
)

// realisticKey is a key as the engine builds it: a policy UID (a UUID), a resourceVersion, an
// autogen rule path and a sha256 digest allocated for the entry.
func realisticKey(n int) Key {
	return Key{
		PolicyUID:     policyUIDs[n%len(policyUIDs)],
		PolicyVersion: "48213977",
		Rule:          "autogen-check-image-signatures",
		Entry:         n % 3,
		Digest:        fmt.Sprintf("sha256:%064x", n),
	}
}

var policyUIDs = []string{
	"0b9c5a7e-6c1f-4f7e-9d0a-2b3c4d5e6f70", "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
	"2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f60", "3e4f5a6b-7c8d-4e9f-0a1b-2c3d4e5f6071",
}

func BenchmarkCacheHit(b *testing.B) {
	c, err := New(Options{Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	k := realisticKey(1)
	fn := func(context.Context) (verify.Result, error) {
		return verify.Result{Passed: true, Digest: k.Digest}, nil
	}
	ctx := context.Background()
	if _, _, err := c.Do(ctx, k, fn); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, hit, _ := c.Do(ctx, k, fn); !hit {
			b.Fatal("miss")
		}
	}
}

func BenchmarkCacheHitParallel(b *testing.B) {
	c, err := New(Options{Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]Key, 64)
	fns := make([]func(context.Context) (verify.Result, error), len(keys))
	for i := range keys {
		keys[i], fns[i] = realisticKey(i), passFn(realisticKey(i))
		if _, _, err := c.Do(context.Background(), keys[i], fns[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			j := i % len(keys)
			if _, hit, _ := c.Do(context.Background(), keys[j], fns[j]); !hit {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

func passFn(k Key) func(context.Context) (verify.Result, error) {
	return func(context.Context) (verify.Result, error) {
		return verify.Result{Passed: true, Digest: k.Digest}, nil
	}
}

// heapPerEntry fills a cache with n entries and returns the heap they hold, per entry: the
// key's digest string, the kept Result (a failure's error included) and the LRU's bookkeeping.
func heapPerEntry(tb testing.TB, n int, passed bool) float64 {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := New(Options{Enabled: true, MaxSize: n})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		k := realisticKey(i)
		fn := func(context.Context) (verify.Result, error) {
			if passed {
				return verify.Result{Passed: true, Digest: k.Digest}, nil
			}
			return verify.Result{Failure: verify.Errorf(verify.CodeNoMatch, ".attestors[0].entries[0].keys: no matching signatures", nil)}, nil
		}
		if _, _, err := c.Do(context.Background(), k, fn); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := c.Stats().Entries; got != n {
		tb.Fatalf("Entries = %d, want %d", got, n)
	}
	runtime.KeepAlive(c)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// TestHeapPerEntry reports the heap cost of 10,000 entries and guards it against growth.
// Not parallel: other tests' allocations would blur the measurement.
func TestHeapPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const n, limit = 10000, 1024
	for _, passed := range []bool{true, false} {
		per := heapPerEntry(t, n, passed)
		t.Logf("%d entries (passed=%v): %.0f bytes per entry, %.2f MiB in all", n, passed, per, per*n/(1<<20))
		if per > limit {
			t.Errorf("%.0f bytes per entry, want at most %d", per, limit)
		}
	}
}

// BenchmarkCacheEntries10k reports the heap bytes per entry of a cache of 10,000 passes.
func BenchmarkCacheEntries10k(b *testing.B) {
	var per float64
	for b.Loop() {
		per = heapPerEntry(b, 10000, true)
	}
	b.ReportMetric(per, "B/entry")
}
