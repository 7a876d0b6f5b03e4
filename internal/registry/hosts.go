package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// maxHosts bounds the per-host states a transport keeps; idle, healthy hosts are forgotten
// first when it is reached (a forgotten host starts afresh: closed circuit, free slots).
const maxHosts = 1024

// minBlame is how long a request must have run before its deadline expiring counts against
// its registry's circuit: a request started with almost no budget left proves nothing.
const minBlame = 250 * time.Millisecond

// hostTable holds, per registry host (host:port of the request URL — each hop of a redirect is
// its own host), a limit on requests in flight and a circuit breaker. The secure and insecure
// Clients of a Pair share one table.
type hostTable struct {
	maxInFlight int
	threshold   int
	cooldown    time.Duration
	now         func() time.Time

	mu sync.Mutex
	m  map[string]*hostState
}

func newHostTable(maxInFlight, threshold int, cooldown time.Duration) *hostTable {
	return &hostTable{maxInFlight: maxInFlight, threshold: threshold, cooldown: cooldown, now: time.Now, m: map[string]*hostState{}}
}

// get returns the state of host, creating it.
func (t *hostTable) get(host string) *hostState {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.m[host]; ok {
		return h
	}
	if len(t.m) >= maxHosts {
		for k, h := range t.m {
			if h.idle() {
				delete(t.m, k)
			}
		}
	}
	h := &hostState{table: t, host: host, slots: make(chan struct{}, t.maxInFlight)}
	t.m[host] = h
	return h
}

// outcome is what one request says about its registry's health.
type outcome int

const (
	neutral outcome = iota // cancelled, or nothing learnt
	healthy                // the registry answered (any status below 500 but 429)
	failing                // 5xx, 429, network error, deadline expired while waiting for it
)

// hostState is one registry host's limit on requests in flight and its circuit breaker: after
// threshold consecutive failing requests the circuit opens and requests fail at once for
// cooldown; then one request at a time probes it (half-open), and the first healthy answer
// closes it.
type hostState struct {
	table *hostTable
	host  string
	slots chan struct{}

	mu       sync.Mutex
	failures int       // consecutive failing outcomes
	openedAt time.Time // when the circuit opened, or the last probe started
	probe    uint64    // the number of the half-open probe whose outcome is awaited; 0: none
	probes   uint64    // probes started, to number them
}

func (h *hostState) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.slots) == 0 && h.failures == 0
}

// allow returns nil when a request may be sent, else the error of an open circuit. probe is
// not 0 when the request is the half-open circuit's one probe: it numbers the probe, and the
// request gives it back to record (through finisher) so that only the probe's own outcome is
// taken for the probe's.
func (h *hostState) allow() (probe uint64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.table
	if h.failures < t.threshold {
		return 0, nil
	}
	now := t.now()
	// Open until cooldown after it opened; half-open after that, with one probe at a time (a
	// probe restarts the clock, so a lost probe lets another through after cooldown).
	if wait := h.openedAt.Add(t.cooldown).Sub(now); wait > 0 {
		return 0, h.openErr(wait)
	}
	h.probes++
	h.probe, h.openedAt = h.probes, now
	return h.probe, nil
}

// closed returns nil when the circuit is closed, else the error of an open circuit, without
// changing its state. A request that allow let through while the circuit was closed asks it
// again once it holds a slot: if the circuit opened while the request waited, it is not sent.
// A request about to be retried asks it too (send): a retry is made only while the circuit
// is closed. Half-open counts as open here: only allow makes the one probe, and the probe
// itself is not retried — its one attempt decides.
func (h *hostState) closed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures < h.table.threshold {
		return nil
	}
	return h.openErr(max(h.openedAt.Add(h.table.cooldown).Sub(h.table.now()), 0))
}

// openErr is the error of a request refused by the open circuit; wait is the time until the
// next probe. h.mu is held.
func (h *hostState) openErr(wait time.Duration) error {
	return &Error{Code: CodeUnavailable, Err: fmt.Errorf("registry %s is unavailable (circuit open): %d consecutive failures, next attempt in %s",
		h.host, h.failures, wait.Round(time.Millisecond))}
}

// record notes the outcome of a request allowed by allow; probe is what allow returned for it.
// Any healthy answer closes the circuit and any failure counts (a failure with the circuit
// open restarts its cooldown, and no probe is awaited any more). A neutral outcome changes
// nothing — unless it is that of the probe awaited, which learnt nothing: the next request
// may probe at once. Other requests' neutral outcomes (one sent before the circuit opened and
// cancelled, an earlier probe that outlived the cooldown) leave the probe in flight the only
// one.
func (h *hostState) record(o outcome, probe uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch o {
	case healthy:
		h.failures, h.probe = 0, 0
	case failing:
		h.failures++
		if h.failures >= h.table.threshold {
			h.probe, h.openedAt = 0, h.table.now()
		}
	case neutral:
		if probe != 0 && probe == h.probe {
			h.probe = 0
			h.openedAt = h.table.now().Add(-h.table.cooldown) // let the next request probe
		}
	}
}

// acquire takes one of the host's in-flight slots, waiting at most as long as ctx allows.
func (h *hostState) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &Error{Code: CodeTimeout, Err: fmt.Errorf("waiting for one of the %d requests in flight to registry %s: %w", cap(h.slots), h.host, context.Cause(ctx))}
	}
}

// release gives back the slot taken by acquire for a request that was not sent: it tells
// nothing about the registry, and records no outcome.
func (h *hostState) release() { <-h.slots }

// finisher returns a function that records the outcome of the request (probe: what allow
// returned for it) and releases the slot taken by acquire, once, whichever of its callers
// comes first. The outcome is recorded first, so that the request given the slot next sees
// the circuit it left.
func (h *hostState) finisher(probe uint64) func(outcome) {
	var once sync.Once
	return func(o outcome) {
		once.Do(func() {
			h.record(o, probe)
			<-h.slots
		})
	}
}

// judgeStatus is the outcome of a response status.
func judgeStatus(status int) outcome {
	if status == 429 || (status >= 500 && status != 501) {
		return failing // 501: HEAD not implemented, the registry is fine
	}
	return healthy
}

// judgeErr is the outcome of a request that failed with err after starting at started. A
// context cancelled with a cause that is a deadline (a shared resolution whose last waiter ran
// out of time, see flight.go) counts as a deadline.
func judgeErr(ctx context.Context, err error, started time.Time) outcome {
	deadline := errors.Is(context.Cause(ctx), context.DeadlineExceeded)
	switch {
	case !deadline && (errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled)):
		return neutral // the caller gave up (e.g. ggcr's HTTPS probe lost the race)
	case deadline || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		if time.Since(started) < minBlame {
			return neutral
		}
		return failing
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return neutral // ggcr probing HTTPS on a plain-HTTP registry
	}
	var re *Error
	if errors.As(err, &re) && re.Code != CodeUnavailable && re.Code != CodeTimeout {
		return healthy // a cap or a digest check: the registry answered
	}
	return failing
}
