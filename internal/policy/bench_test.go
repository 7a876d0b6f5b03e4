package policy

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/manifest"
)

// benchPolicies returns n ClusterPolicies. podEvery says how often a policy matches Pods
// (1 = all of them); the others match one of a rotating set of other kinds, as a real cluster's
// policy set does (Services, Ingresses, CRDs...).
func benchPolicies(b *testing.B, n, podEvery int) *Set {
	b.Helper()
	other := []string{"Service", "Ingress", "ConfigMap", "tekton.dev/v1/Task", "Secret", "networking.k8s.io/v1/NetworkPolicy"}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		kind := other[i%len(other)]
		if i%podEvery == 0 {
			kind = "Pod"
		}
		fmt.Fprintf(&sb, `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p%d}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: [%s]
          namespaces: ["team-*"]
    exclude:
      any:
      - resources:
          kinds: [%s]
          selector: {matchLabels: {vouch.dev/skip: "true"}}
    verifyImages: [{imageReferences: ["ghcr.io/team-%d/*"]}]
---
`, i, kind, kind, i)
	}
	docs, err := manifest.Split("bench.yaml", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	set, _, err := LoadDocuments(docs)
	if err != nil {
		b.Fatal(err)
	}
	return set
}

var benchPod = &Request{Version: "v1", Kind: "Pod", Name: "web-7d9f", Namespace: "team-a", Operation: v1.Create,
	Labels: map[string]string{"app": "web", "pod-template-hash": "7d9f"}}

// linearMatch is the baseline: every rule of every policy is checked, as an engine without a
// kind index does.
func linearMatch(s *Set, r *Request) []*Rule {
	var out []*Rule
	for _, p := range s.policies {
		for _, rule := range p.Rules {
			if rule.Applies(r) {
				out = append(out, rule)
			}
		}
	}
	return out
}

// BenchmarkMatch1000 matches a Pod against 1,000 compiled policies, 1 in 10 of which target
// Pods; the Linear variant is the no-index baseline measured in the same run.
func BenchmarkMatch1000(b *testing.B) {
	set := benchPolicies(b, 1000, 10)
	if got, want := len(set.Match(benchPod)), len(linearMatch(set, benchPod)); got != want || got != 100 {
		b.Fatalf("indexed match found %d rules, linear %d, want 100", got, want)
	}
	b.Run("Indexed", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			set.Match(benchPod)
		}
	})
	b.Run("Linear", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			linearMatch(set, benchPod)
		}
	})
}

// BenchmarkMatch1000AllPods is the worst case: all 1,000 policies target Pods, so every one
// must be evaluated.
func BenchmarkMatch1000AllPods(b *testing.B) {
	set := benchPolicies(b, 1000, 1)
	if got := len(set.Match(benchPod)); got != 1000 {
		b.Fatalf("matched %d rules, want 1000", got)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		set.Match(benchPod)
	}
}

// BenchmarkCompile1000 measures loading and compiling 1,000 policies (done once per policy
// change, never per request).
func BenchmarkCompile1000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchPolicies(b, 1000, 10)
	}
}
