package webhook

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveLimited serves s on a loopback listener and returns its address; the server stops
// when the test ends.
func serveLimited(t *testing.T, s *Server) string {
	t.Helper()
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// handshake starts a TLS handshake on a new connection to addr; the channel receives its
// result.
func handshake(t *testing.T, addr string) (*tls.Conn, <-chan error) {
	t.Helper()
	raw, err := net.Dial("tcp", addr) // the kernel completes it: the listener's backlog
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	t.Cleanup(func() { c.Close() })
	done := make(chan error, 1)
	go func() { done <- c.Handshake() }()
	return c, done
}

// healthz sends GET /healthz on c and reads the answer's status line.
func healthz(c *tls.Conn) (string, error) {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: vouch\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	return resp.Status, nil
}

// TestMaxConnections: with MaxConnections 2, a third connection is not served — not even its
// TLS handshake — while two are open, and is served once one of them closes.
func TestMaxConnections(t *testing.T) {
	s := testServer(t, true)
	s.opts.MaxConnections = 2
	addr := serveLimited(t, s)

	var open [2]*tls.Conn
	for i := range open {
		c, done := handshake(t, addr)
		if err := <-done; err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		if status, err := healthz(c); err != nil || status != "200 OK" {
			t.Fatalf("connection %d: GET /healthz: %q, %v", i+1, status, err)
		}
		open[i] = c
	}
	third, done := handshake(t, addr)
	select {
	case err := <-done:
		t.Fatalf("third connection's handshake ended (%v) while 2 were open", err)
	case <-time.After(500 * time.Millisecond):
	}
	open[0].Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("third connection's handshake: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("third connection not served 5 s after one of the 2 closed")
	}
	if status, err := healthz(third); err != nil || status != "200 OK" {
		t.Fatalf("third connection: GET /healthz: %q, %v", status, err)
	}
	// The second is still served.
	if status, err := healthz(open[1]); err != nil || status != "200 OK" {
		t.Fatalf("second connection: GET /healthz: %q, %v", status, err)
	}
}

// TestSlowClientsDoNotHoldConnections: a client that sends its request headers byte by byte,
// or that never starts its TLS handshake, is dropped after ReadHeaderTimeout, and frees its
// place under MaxConnections for a client that does send a request.
func TestSlowClientsDoNotHoldConnections(t *testing.T) {
	const timeout = 400 * time.Millisecond
	s := testServer(t, true)
	s.opts.MaxConnections = 1
	s.http.ReadHeaderTimeout = timeout // 10 s in vouch serve
	addr := serveLimited(t, s)

	t.Run("headers byte by byte", func(t *testing.T) {
		c, done := handshake(t, addr)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		closed := make(chan error, 1)
		go func() { // the server's answer, if any, then the end of the connection
			_, err := io.ReadAll(c)
			closed <- err
		}()
		slow := "GET /healthz HTTP/1.1\r\nX-Slow: " + strings.Repeat("a", 1000)
	send:
		for i := 0; i < len(slow); i++ {
			if _, err := c.Write([]byte{slow[i]}); err != nil {
				break // dropped
			}
			select {
			case <-closed:
				break send
			case <-time.After(20 * time.Millisecond):
			}
		}
		took := time.Since(start)
		if took < timeout || took > timeout+3*time.Second {
			t.Errorf("slow client dropped after %v, want about %v", took, timeout)
		}
		waitServed(t, addr, timeout)
	})

	t.Run("no TLS handshake", func(t *testing.T) {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		start := time.Now()
		_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = raw.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a silent connection still held after 5 s (ReadHeaderTimeout %v)", timeout)
		}
		if took := time.Since(start); took < timeout/2 {
			t.Errorf("silent connection dropped after %v, want about %v", took, timeout)
		}
		waitServed(t, addr, timeout)
	})
}

// waitServed checks that a new connection to addr is served: the slot of a dropped client is
// free again.
func waitServed(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	c, done := handshake(t, addr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("next client's handshake: %v", err)
		}
	case <-time.After(timeout + 3*time.Second):
		t.Fatal("next client not served: the dropped one still holds the connection slot")
	}
	if status, err := healthz(c); err != nil || status != "200 OK" {
		t.Fatalf("next client: GET /healthz: %q, %v", status, err)
	}
	c.Close()
}

// TestHealthListenerOutsideMaxConnections: with every connection of MaxConnections taken, the
// health listener (--health-listen) still answers /healthz, /readyz and /metrics.
func TestHealthListenerOutsideMaxConnections(t *testing.T) {
	s := testServer(t, true)
	s.opts.MaxConnections = 1
	addr := serveLimited(t, s)
	c, done := handshake(t, addr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, queued := handshake(t, addr) // waits for c's slot
	hl, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	herr := make(chan error, 1)
	go func() { herr <- s.ServeHealth(ctx, hl) }()
	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := client.Get("http://" + hl.Addr().String() + path)
		if err != nil {
			t.Fatalf("GET %s on the health listener: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s on the health listener: %s", path, resp.Status)
		}
	}
	select {
	case err := <-queued:
		t.Errorf("second webhook connection's handshake ended (%v) with MaxConnections 1 taken", err)
	default:
	}
	c.Close()
	cancel()
	if err := <-herr; err != nil {
		t.Errorf("ServeHealth: %v", err)
	}
}
