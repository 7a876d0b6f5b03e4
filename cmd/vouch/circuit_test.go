package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
)

// TestServeCircuitCooldown: --registry-circuit-cooldown sets how long a registry's open circuit
// answers "could not verify" at once. With 1 s, admissions of a registry that came back are
// verified and pinned again within about a second (with the default 10 s they would be
// refused, or under failurePolicy Ignore admitted unverified, for up to 10 s).
func TestServeCircuitCooldown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vouch serve")
	}
	w := newSoakWorld(t)
	vouch := startVouchServe(t, "--policies", w.policies[0], "--registry-circuit-cooldown", "1s")
	client := vouch.client()
	defer client.CloseIdleConnections()
	url := "https://" + vouch.addr + "/mutate?timeout=2s"
	n := 0
	ask := func() (string, string) {
		n++
		uid := fmt.Sprintf("cooldown-%d", n)
		var outcome, detail string
		err := postReview(context.Background(), client, url, uid, w.bodies[strictSigned](uid), func(uid string, body []byte) error {
			outcome, _, detail = w.classify(strictSigned, uid, body)
			detail = strings.Join(strings.Fields(detail), " ") // the denial wraps its lines
			return nil
		})
		if err != nil {
			t.Fatalf("admission %s: %v", uid, err)
		}
		return outcome, detail
	}
	if got, detail := ask(); got != outPinned {
		t.Fatalf("healthy registry: %s (%s), want pinned", got, detail)
	}
	w.h.SetMode(fixture.ServerError)
	opened := false
	for i := 0; i < 20 && !opened; i++ {
		got, detail := ask()
		if got != outUndecided {
			t.Fatalf("registry failing: %s (%s), want could not verify", got, detail)
		}
		opened = strings.Contains(detail, "(circuit open)")
	}
	if !opened {
		t.Fatal("the circuit never opened")
	}
	w.h.SetMode(fixture.Healthy)
	start := time.Now()
	for {
		got, detail := ask()
		if got == outPinned {
			break
		}
		if got != outUndecided || time.Since(start) > 4*time.Second {
			t.Fatalf("%v after the registry recovered: %s (%s); want pinned within about the 1 s cooldown", time.Since(start).Round(time.Millisecond), got, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("verified again %v after the registry recovered (cooldown 1 s)", time.Since(start).Round(time.Millisecond))
}
