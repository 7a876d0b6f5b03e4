package source

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vouchproject/vouch/internal/policy"
)

const good = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: NAME}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false}]
`

func TestFilesAreWatchedAndBrokenPoliciesFailClosed(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	write := func(body string) {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.ReplaceAll(good, "NAME", "one"))
	sets := make(chan *policy.Set, 10)
	reg := prometheus.NewRegistry()
	src, err := New(Options{Paths: []string{dir}, Interval: 20 * time.Millisecond, OnChange: func(s *policy.Set) { sets <- s },
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx) }()
	next := func() *policy.Set {
		select {
		case s := <-sets:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no policy set published")
			return nil
		}
	}
	if s := next(); len(s.Policies()) != 1 || s.Policies()[0].Name != "one" {
		t.Fatalf("first set: %+v", s.Policies())
	}
	write(strings.ReplaceAll(good, "NAME", "two") + "---\n" + strings.ReplaceAll(strings.Replace(good, "imageReferences", "imageReference", 1), "NAME", "broken"))
	s := next()
	names := map[string]bool{}
	for _, p := range s.Policies() {
		names[p.Name] = p.Err == nil
	}
	if len(names) != 2 || !names["two"] || names["broken"] {
		t.Fatalf("second set: %v", names)
	}
	rules := s.Match(&policy.Request{Kind: "Pod", Version: "v1", Operation: "CREATE"})
	var brokenRule *policy.Rule
	for _, r := range rules {
		if r.Policy.Name == "broken" {
			brokenRule = r
		}
	}
	if brokenRule == nil || !strings.Contains(brokenRule.Unsupported, "could not be loaded") {
		t.Fatalf("the broken policy does not fail closed for Pods: %+v", brokenRule)
	}
	if v := testutil.ToFloat64(src.gauge.WithLabelValues("broken")); v != 1 {
		t.Errorf("vouch_policies{state=broken} = %v", v)
	}
	// An unchanged file publishes nothing new.
	select {
	case s := <-sets:
		t.Errorf("unexpected republish: %d policies", len(s.Policies()))
	case <-time.After(100 * time.Millisecond):
	}
}

func TestNeedsSomethingToEnforce(t *testing.T) {
	if _, err := New(Options{OnChange: func(*policy.Set) {}}); err == nil {
		t.Error("a source without paths or cluster was accepted")
	}
}
