package engine

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// TestSlowVerificationDoesNotStallCacheHits: with one worker, a verification stuck at the
// registry — awaited by several evaluations of the same image — must not delay an evaluation
// whose image is already in the cache, while a second verification still waits for the worker.
// (Workers used to be taken around the whole image check, cache lookup and waiting included:
// 32 concurrent requests for one slow image stalled every admission of the webhook.)
func TestSlowVerificationDoesNotStallCacheHits(t *testing.T) {
	var (
		block    atomic.Bool
		fetching = make(chan struct{}, 16)
		release  = make(chan struct{})
		slowSigs atomic.Int64
	)
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if block.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".sig") && !strings.Contains(r.URL.Path, "/fast/") {
				if strings.Contains(r.URL.Path, "/slow/") {
					slowSigs.Add(1)
				}
				fetching <- struct{}{}
				<-release
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(reg.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	key, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, repo := range []string{"fast", "slow", "other"} {
		d, err := reg.Push(ctx, repo+":v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Sign(ctx, repo, d, key.Private, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	e := newEngine(t, policyYAML("  validationFailureAction: Enforce\n", keyEntry(key.PEM)))
	regs, err := registry.NewPair(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	e.registry, e.verifiers, e.cache, e.workers = regs, map[string]verify.Verifier{"Cosign": cv}, c, make(chan struct{}, 1)
	status := func(ctx context.Context, image string) (Status, string) {
		resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", reg.Host+"/"+image)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Results[0].Status, resp.Results[0].Message
	}
	if s, msg := status(ctx, "fast:v1"); s != Pass { // now cached
		t.Fatalf("fast:v1: %s %s", s, msg)
	}

	block.Store(true)
	const waiters = 3
	slow := make(chan Status, waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			s, _ := status(ctx, "slow:v1")
			slow <- s
		}()
	}
	select {
	case <-fetching: // the one worker is busy fetching slow:v1's signatures
	case <-time.After(10 * time.Second):
		t.Fatal("the verification of slow:v1 never reached the registry")
	}

	hitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if s, msg := status(hitCtx, "fast:v1"); s != Pass {
		t.Errorf("cached fast:v1 while slow:v1 is being verified: %s %s (after %v)", s, msg, time.Since(start))
	}

	// The pool still bounds verifications: another image needing one waits for the worker.
	otherCtx, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if s, msg := status(otherCtx, "other:v1"); s != Error || !strings.Contains(msg, "admission time budget") {
		t.Errorf("other:v1 with the only worker busy: %s %q, want an error for the spent budget", s, msg)
	}

	unblock()
	for i := 0; i < waiters; i++ {
		if s := <-slow; s != Pass {
			t.Errorf("slow:v1: %s", s)
		}
	}
	if n := slowSigs.Load(); n != 1 {
		t.Errorf("slow:v1's signatures were fetched %d times, want once for %d concurrent evaluations", n, waiters)
	}
}
