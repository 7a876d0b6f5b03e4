package background

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// TestElection: of two replicas, one scans at a time; when it stops (its context ends, the
// Lease released), the other takes over.
func TestElection(t *testing.T) {
	t.Parallel()
	kube := fake.NewClientset()
	var mu sync.Mutex
	leading := map[string]bool{}
	overlap := false
	elected := make(chan string, 4)
	run := func(id string, ctx context.Context) chan struct{} {
		done := make(chan struct{})
		e := Election{Client: kube, Namespace: "vouch", Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond}
		go func() {
			defer close(done)
			if err := e.Run(ctx, func(ctx context.Context) {
				mu.Lock()
				for other, l := range leading {
					if l && other != id {
						overlap = true
					}
				}
				leading[id] = true
				mu.Unlock()
				elected <- id
				<-ctx.Done()
				mu.Lock()
				leading[id] = false
				mu.Unlock()
			}); err != nil {
				t.Error(err)
			}
		}()
		return done
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	cancels := map[string]context.CancelFunc{"a": cancelA, "b": cancelB}
	doneA, doneB := run("a", ctxA), run("b", ctxB)
	var first string
	select {
	case first = <-elected:
	case <-time.After(10 * time.Second):
		t.Fatal("no replica was elected")
	}
	time.Sleep(3500 * time.Millisecond) // past a lease duration: the other must not lead meanwhile
	select {
	case id := <-elected:
		t.Fatalf("%s elected while %s leads", id, first)
	default:
	}
	cancels[first]()
	select {
	case second := <-elected:
		if second == first {
			t.Fatalf("%s elected again after it stopped", first)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the other replica did not take over from %s", first)
	}
	cancelA()
	cancelB()
	<-doneA
	<-doneB
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Error("two replicas led at once")
	}
}

// TestElectionNeedsIdentity: an election without a client, namespace or identity is refused.
func TestElectionNeedsIdentity(t *testing.T) {
	for _, e := range []Election{{Namespace: "n", Identity: "i"}, {Client: fake.NewClientset(), Identity: "i"}, {Client: fake.NewClientset(), Namespace: "n"}} {
		if err := e.Run(context.Background(), func(context.Context) {}); err == nil {
			t.Errorf("%+v: no error", e)
		}
	}
}
