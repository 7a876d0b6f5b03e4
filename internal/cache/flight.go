package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/vouchproject/vouch/internal/verify"
)

// Coalescing is done here rather than with golang.org/x/sync/singleflight: a shared
// verification must be cancelled when its LAST waiter gives up, which needs a count of waiters
// kept in step with joining, and singleflight's DoChan neither says whether a caller started or
// joined a call nor lets the call be abandoned without racing its Forget. Its DoChan also
// re-panics a panic of the function in a fresh goroutine, which would crash the webhook.

// flight is one verification in progress and the callers waiting for it.
type flight struct {
	key    Key
	ctx    context.Context // verifyFn's context: ends when every waiter has given up
	cancel context.CancelCauseFunc
	done   chan struct{} // closed, with c.mu held, once res and err are set

	// Guarded by the Cache's mu.
	waiters int  // callers still waiting
	stale   bool // the policy was invalidated meanwhile: do not cache the outcome
	res     verify.Result
	err     error
}

// errAbandoned is the cause of a verification's context when every waiter gave up.
var errAbandoned = verify.Errorf(verify.CodeTimeout, "every caller waiting for the verification gave up", nil)

// errGoexit is the outcome of a verification function that called runtime.Goexit.
var errGoexit = errors.New("verifying image: verification exited without returning")

// PanicError is the error Do returns when the verification function panicked. It is an
// "undecided" error (verify.Undecided reports true) and is never cached. Stack is the
// panicking goroutine's stack, for logs rather than admission messages. It deliberately does
// not unwrap to the panic value, so no panic can pass for a verdict.
type PanicError struct {
	Value any
	Stack []byte
}

// Error names the panic value.
func (e *PanicError) Error() string {
	return fmt.Sprintf("verifying image: verification panicked: %v", e.Value)
}

// join adds a waiter to the flight of key, starting one when there is none. c.mu is held.
func (c *Cache) join(ctx context.Context, key Key, verifyFn func(context.Context) (verify.Result, error)) *flight {
	if f := c.flights[key]; f != nil {
		f.waiters++
		c.stats.Coalesced++
		return f
	}
	// The verification keeps the caller's values (logger) but outlives its deadline: it ends
	// when its last waiter leaves (see wait).
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	f := &flight{key: key, ctx: fctx, cancel: cancel, done: make(chan struct{}), waiters: 1}
	c.flights[key] = f
	go c.run(f, verifyFn)
	return f
}

// wait returns the flight's outcome, or a timeout error as soon as ctx ends. The last waiter
// to leave cancels the verification and unregisters it, so a later caller starts anew.
func (c *Cache) wait(ctx context.Context, f *flight) (verify.Result, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-f.done: // completed meanwhile; done is closed under c.mu, so this is exact
		return f.res, f.err
	default:
	}
	f.waiters--
	if f.waiters == 0 {
		f.cancel(errAbandoned)
		if c.flights[f.key] == f {
			delete(c.flights, f.key)
		}
	}
	return verify.Result{}, waitError(ctx)
}

// run calls the verification and completes the flight, even when verifyFn panics or calls
// runtime.Goexit, so that no waiter is left blocked.
func (c *Cache) run(f *flight, verifyFn func(context.Context) (verify.Result, error)) {
	var res verify.Result
	err := errGoexit // replaced unless verifyFn never returns
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		f.res, f.err = res, err
		if c.flights[f.key] == f {
			delete(c.flights, f.key)
		}
		if !f.stale {
			c.store(f.key, res, err, f.ctx.Err() != nil)
		}
		close(f.done) // after store: a waiter that calls again at once gets a hit
		f.cancel(nil) // releases the context's resources
	}()
	res, err = call(f.ctx, verifyFn)
}

// call calls verifyFn, turning a panic into a *PanicError.
func call(ctx context.Context, verifyFn func(context.Context) (verify.Result, error)) (res verify.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = verify.Result{}, &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return verifyFn(ctx)
}

// waitError is the error of a caller whose ctx ended before the outcome was known: a timeout,
// on the "could not decide" channel, whatever ended the context.
func waitError(ctx context.Context) error {
	return verify.Errorf(verify.CodeTimeout, "waiting for image verification", context.Cause(ctx))
}
