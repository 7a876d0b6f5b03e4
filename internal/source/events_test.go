package source

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/policy"
)

type recordedEvent struct{ kind, name, eventType, reason, note string }

type fakeEvents struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (f *fakeEvents) PolicyEvent(ref corev1.ObjectReference, eventType, reason, action, note string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, recordedEvent{ref.Kind, ref.Name, eventType, reason, note})
}

func (f *fakeEvents) byPolicy() map[string][]recordedEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]recordedEvent{}
	for _, e := range f.events {
		out[e.name] = append(out[e.name], e)
	}
	return out
}

func clusterPolicy(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(y), &obj); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

// TestClusterPoliciesAreReportedWithEvents checks the Events of cluster policies — loaded,
// insecure (naming the field paths), broken — and the insecure-settings gauge.
func TestClusterPoliciesAreReportedWithEvents(t *testing.T) {
	withMeta := func(name, uid string) string {
		return strings.Replace(good, "metadata: {name: NAME}", "metadata: {name: "+name+", uid: "+uid+", generation: 1}", 1)
	}
	insecure := strings.Replace(withMeta("insecure", "u-2"), "mutateDigest: false}", "mutateDigest: false, imageRegistryCredentials: {allowInsecureRegistry: true}}", 1)
	broken := strings.Replace(withMeta("broken", "u-3"), "imageReferences", "imageReference", 1)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		ClusterPolicies: "ClusterPolicyList", Policies: "PolicyList",
	}, clusterPolicy(t, withMeta("fine", "u-1")), clusterPolicy(t, insecure), clusterPolicy(t, broken))
	events := &fakeEvents{}
	reg := prometheus.NewRegistry()
	sets := make(chan *policy.Set, 10)
	src, err := New(Options{Dynamic: dyn, Events: events, Registerer: reg, OnChange: func(s *policy.Set) { sets <- s },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx) }()
	select {
	case <-sets:
	case <-time.After(10 * time.Second):
		t.Fatal("no policy set published")
	}
	got := events.byPolicy()
	reasons := func(name string) []string {
		var out []string
		for _, e := range got[name] {
			out = append(out, e.eventType+"/"+e.reason)
		}
		return out
	}
	if r := reasons("fine"); len(r) != 1 || r[0] != "Normal/PolicyLoaded" {
		t.Errorf("fine: %v", r)
	}
	if r := reasons("insecure"); len(r) != 2 || r[0] != "Normal/PolicyLoaded" || r[1] != "Warning/InsecurePolicy" ||
		!strings.Contains(got["insecure"][1].note, "spec.rules[0].verifyImages[0].imageRegistryCredentials.allowInsecureRegistry: true lets vouch") {
		t.Errorf("insecure: %v %+v", r, got["insecure"])
	}
	if r := reasons("broken"); len(r) != 1 || r[0] != "Warning/PolicyError" || got["broken"][0].kind != "ClusterPolicy" {
		t.Errorf("broken: %v", r)
	}
	if v := testutil.ToFloat64(src.unsafe.WithLabelValues("allowInsecureRegistry")); v != 1 {
		t.Errorf("vouch_policy_insecure_settings{setting=allowInsecureRegistry} = %v", v)
	}
	// A reload of the same generations records nothing new.
	src.markDirty()
	select {
	case <-sets:
	case <-time.After(10 * time.Second):
		t.Fatal("no republish")
	}
	if n := len(events.byPolicy()["insecure"]); n != 2 {
		t.Errorf("events of an unchanged policy were recorded again: %d", n)
	}
}
