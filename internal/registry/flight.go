package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Resolutions in flight are coalesced here as internal/cache coalesces verifications (flight.go
// there), and for the same reasons not with golang.org/x/sync/singleflight: each waiter keeps
// its own deadline, the shared call is cancelled when its LAST waiter gives up (a count of
// waiters kept in step with joining), and a panic of the shared call must not crash the
// process from a goroutine of its own. Nothing is kept once a flight has landed: the next
// resolution asks the registry again, so a tag that moved is seen at once.
//
// One difference: the shared call keeps the deadline of the caller that started it. The
// transport judges a request by its deadline — a retry is made only when its wait fits in the
// time left, and a request that ran out of time counts against the registry's circuit breaker
// — and a shared call without one would wait out a Retry-After that no caller can afford, would
// never open the circuit of a registry slower than every budget, and would hand an answer that
// took longer than a budget to callers that joined late. A waiter with more time left than that
// deadline gives it does not inherit its end: when the shared call runs out of time, it
// resolves again, starting or joining another flight.

// resolveKey is everything that can change what Pair.Resolve answers.
type resolveKey struct {
	// ref is the reference's full name: registry (host[:port]), repository, and tag (or
	// digest), as the Client parsed it.
	ref string
	// insecure chooses the Client: plain HTTP allowed to every registry, no TLS verification.
	insecure bool
	// scoped and scope are the credentials: the Key of the Scope the call's context carries
	// (equal Keys are equal credentials, see Scope; the per-scope Clients and their tokens are
	// shared by the same rule), or none — the Client's own keychain. Callers with different
	// credentials never share an answer: one may see an image the other may not.
	scoped bool
	scope  string
}

// keyOf returns the flight key of resolving ref (parsed by the Client of insecure) in ctx.
func keyOf(ctx context.Context, ref name.Reference, insecure bool) resolveKey {
	s, ok := ScopeOf(ctx)
	return resolveKey{ref: ref.Name(), insecure: insecure, scoped: ok, scope: s.Key}
}

// flight is one resolution in progress and the callers waiting for it.
type flight struct {
	key      resolveKey
	ctx      context.Context // the resolution's: see join
	cancel   context.CancelCauseFunc
	deadline time.Time // the resolution's deadline; zero: none
	done     chan struct{}

	// Guarded by flights.mu; digest, err and expired are set before done is closed.
	waiters int
	digest  string
	err     error
	expired bool // the resolution failed because its own deadline passed
}

// flights holds the resolutions in flight of a Pair.
type flights struct {
	mu sync.Mutex
	m  map[resolveKey]*flight
}

func newFlights() *flights { return &flights{m: map[resolveKey]*flight{}} }

// Errors of the shared call's context and of the call itself.
var (
	// errAbandoned and errAbandonedDeadline are the cause of a resolution's context when every
	// waiter gave up; the second when the last one ran out of time, so that the transport
	// judges the request cut short as that caller's own (a deadline, see judgeErr).
	errAbandoned         = fmt.Errorf("every caller waiting for the resolution gave up: %w", context.Canceled)
	errAbandonedDeadline = fmt.Errorf("every caller waiting for the resolution ran out of time: %w", context.DeadlineExceeded)
	// errGoexit is the outcome of a resolution that called runtime.Goexit.
	errGoexit = errors.New("resolution exited without returning")
)

// do returns what resolve answers for key: the answer of the resolution in flight for key if
// there is one, else of a new one. It returns a timeout error as soon as ctx ends.
func (g *flights) do(ctx context.Context, key resolveKey, resolve func(context.Context) (string, error)) (string, error) {
	for {
		f := g.join(ctx, key, resolve)
		digest, err, again := g.wait(ctx, f)
		if !again {
			return digest, err
		}
	}
}

// join adds a waiter to the flight of key, starting one when there is none.
func (g *flights) join(ctx context.Context, key resolveKey, resolve func(context.Context) (string, error)) *flight {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[key]; f != nil {
		f.waiters++
		return f
	}
	// The resolution keeps the caller's values (credential scope, logger) and deadline, but
	// not its cancellation: it ends when its last waiter leaves (see wait) or at that deadline.
	fctx := context.WithoutCancel(ctx)
	stop := context.CancelFunc(func() {})
	deadline, ok := ctx.Deadline()
	if ok {
		fctx, stop = context.WithDeadline(fctx, deadline)
	}
	fctx, cancel := context.WithCancelCause(fctx)
	f := &flight{key: key, ctx: fctx, deadline: deadline, done: make(chan struct{}), waiters: 1,
		cancel: func(cause error) { cancel(cause); stop() }}
	g.m[key] = f
	go g.run(f, resolve)
	return f
}

// wait returns the flight's answer, or a timeout error as soon as ctx ends. The last waiter to
// leave cancels the resolution and unregisters it, so that a later caller starts anew. again
// reports that the resolution ran out of its time while ctx has more: the caller resolves again.
func (g *flights) wait(ctx context.Context, f *flight) (digest string, err error, again bool) {
	select {
	case <-f.done:
	case <-ctx.Done():
		g.mu.Lock()
		select {
		case <-f.done: // landed meanwhile; done is closed under g.mu, so this is exact
			g.mu.Unlock()
		default:
			f.waiters--
			if f.waiters == 0 {
				cause := errAbandoned
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					cause = errAbandonedDeadline
				}
				f.cancel(cause)
				if g.m[f.key] == f {
					delete(g.m, f.key)
				}
			}
			g.mu.Unlock()
			return "", waitError(ctx, f.key.ref), false
		}
	}
	if !f.expired {
		return f.digest, f.err, false
	}
	// The resolution ran out of the time of the caller that started it.
	if own, ok := ctx.Deadline(); (!ok || own.After(f.deadline)) && ctx.Err() == nil {
		return "", nil, true
	}
	<-ctx.Done() // its deadline is not after the resolution's, which has passed
	return "", waitError(ctx, f.key.ref), false
}

// run calls the resolution and lands the flight, even when resolve panics or calls
// runtime.Goexit, so that no waiter is left blocked.
func (g *flights) run(f *flight, resolve func(context.Context) (string, error)) {
	var digest string
	var err error = &Error{Code: CodeUnavailable, Op: "resolve", Ref: f.key.ref, Err: errGoexit} // replaced unless resolve never returns
	defer func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		f.digest, f.err = digest, err
		f.expired = err != nil && errors.Is(f.ctx.Err(), context.DeadlineExceeded) && Classify(err) == CodeTimeout
		if g.m[f.key] == f {
			delete(g.m, f.key)
		}
		close(f.done)
		f.cancel(nil) // releases the context's resources
	}()
	digest, err = call(f.ctx, f.key.ref, resolve)
}

// call calls resolve, turning a panic into an unavailable error: undecided, as the registry
// failures are, rather than a crash of the process.
func call(ctx context.Context, ref string, resolve func(context.Context) (string, error)) (digest string, err error) {
	defer func() {
		if p := recover(); p != nil {
			digest, err = "", &Error{Code: CodeUnavailable, Op: "resolve", Ref: ref, Err: fmt.Errorf("resolution panicked: %v", p)}
		}
	}()
	return resolve(ctx)
}

// waitError is the error of a caller whose ctx ended before the answer was known: a timeout,
// whatever ended the context, naming its cause (the webhook names an overload so).
func waitError(ctx context.Context, ref string) error {
	return &Error{Code: CodeTimeout, Op: "resolve", Ref: ref, Err: fmt.Errorf("waiting for the resolution in flight: %w", context.Cause(ctx))}
}
