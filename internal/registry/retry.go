package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

const (
	// retryReserve is the time a retry must leave for itself: a wait that ends closer than
	// this to the deadline is not worth starting.
	retryReserve = 100 * time.Millisecond
	// maxRetryWait is the longest wait before a retry when the context has no deadline.
	maxRetryWait = 10 * time.Second
	// drainLimit is how much of a response about to be retried is read to reuse its connection.
	drainLimit = 4 << 10
)

// retryPolicy is the one retry policy of a Client (ggcr's own is disabled, see baseOptions):
// GET and HEAD requests answered 408, 429, 502, 503 or 504, or cut by a connection reset or an
// early EOF, are sent again at most max times. The wait honours Retry-After (seconds or an
// HTTP date, plus up to 10% jitter) and is otherwise delay, 2×delay… with "equal jitter" (half
// fixed, half random). A retry whose wait does not fit in the time the context has left is not
// made: the answer is final, and a Retry-After that does not fit is reported as such.
type retryPolicy struct {
	max   int
	delay time.Duration
}

// retryableStatus are the statuses worth a retry.
var retryableStatus = map[int]bool{
	http.StatusRequestTimeout:     true,
	http.StatusTooManyRequests:    true,
	http.StatusBadGateway:         true,
	http.StatusServiceUnavailable: true,
	http.StatusGatewayTimeout:     true,
}

// retryable reports whether the result of an attempt may be retried.
func retryable(req *http.Request, resp *http.Response, err error) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if req.Context().Err() != nil {
		return false
	}
	if err != nil {
		return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
			errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
	}
	return retryableStatus[resp.StatusCode]
}

// wait returns how long to wait before retry number attempt+1 of a request answered resp
// (nil after a network error), and whether the wait was asked for by a Retry-After header.
func (p retryPolicy) wait(attempt int, resp *http.Response) (time.Duration, bool) {
	if resp != nil {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return d + time.Duration(rand.Int64N(int64(d/10)+1)), true
		}
	}
	d := p.delay << attempt
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1)), false
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 || s > int64(24*time.Hour/time.Second) {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// fits reports whether a wait of d before a retry leaves the retry time to run in ctx.
func fits(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	if !ok {
		return d <= maxRetryWait
	}
	return time.Until(deadline)-d >= retryReserve
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// send sends req through the base transport, retrying by the policy. Each attempt is counted.
// It returns the last attempt's response or error and when that attempt started.
//
// A retry is made only while host's circuit is closed: it is looked at (without changing it)
// before the wait and again after it. When it is open — or half-open: the probe is not
// retried, its one attempt decides — the request ends at once with an unavailable error
// naming the last attempt's answer and the open circuit (notRetried).
func (t *roundTripper) send(req *http.Request, kind Kind, host *hostState) (*http.Response, time.Time, error) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		started := time.Now()
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			t.metrics.add(RequestKey{Host: req.URL.Host, Method: req.Method, Kind: kind})
		} else {
			t.metrics.add(RequestKey{Host: req.URL.Host, Method: req.Method, Kind: kind, Status: resp.StatusCode})
		}
		if attempt >= t.retry.max || !retryable(req, resp, err) {
			return resp, started, err
		}
		if open := host.closed(); open != nil {
			discard(resp)
			return nil, started, notRetried(req, resp, err, open)
		}
		d, asked := t.retry.wait(attempt, resp)
		if !fits(ctx, d) {
			if !asked {
				return resp, started, err
			}
			resp.Body.Close()
			left := "no deadline"
			if deadline, ok := ctx.Deadline(); ok {
				left = time.Until(deadline).Round(time.Millisecond).String() + " left"
			}
			return nil, started, &Error{Code: CodeUnavailable, Status: resp.StatusCode, Err: fmt.Errorf("%s answered %d %s with Retry-After %s, more than the time budget allows (%s)",
				req.URL.Host, resp.StatusCode, http.StatusText(resp.StatusCode), resp.Header.Get("Retry-After"), left)}
		}
		discard(resp)
		if err := sleep(ctx, d); err != nil {
			return nil, started, &Error{Code: CodeTimeout, Err: fmt.Errorf("waiting to retry %s: %w", safeURL(req.URL), err)}
		}
		if open := host.closed(); open != nil {
			return nil, started, notRetried(req, resp, err, open)
		}
	}
}

// discard reads a little of a response about to be dropped, to reuse its connection, and
// closes it. resp may be nil (a network error).
func discard(resp *http.Response) {
	if resp != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		resp.Body.Close()
	}
}

// notRetried is the error of a request whose last attempt was answered resp (its body already
// discarded) or failed with err, and that the open circuit kept from being retried: unavailable,
// like the circuit's own error, which it wraps.
func notRetried(req *http.Request, resp *http.Response, err, open error) error {
	if resp != nil {
		return &Error{Code: CodeUnavailable, Status: resp.StatusCode, Err: fmt.Errorf("%s answered %d %s, not retried: %w",
			req.URL.Host, resp.StatusCode, http.StatusText(resp.StatusCode), open)}
	}
	return &Error{Code: CodeUnavailable, Err: fmt.Errorf("%s %s: %v, not retried: %w", req.Method, safeURL(req.URL), err, open)}
}
