package conditions

import (
	"math/rand"
	"strings"
	"testing"
	"time"

	gowildcard "github.com/IGLOU-EU/go-wildcard"
)

// TestWildcardMatchesGoWildcard checks wildcardMatch against go-wildcard v1.0.3, the library
// Kyverno uses (spec §2.5), on fixed and random inputs.
func TestWildcardMatchesGoWildcard(t *testing.T) {
	fixed := [][2]string{
		{"", ""}, {"", "a"}, {"*", ""}, {"*", "anything"}, {"?", ""}, {"?", "a"}, {"?", "ab"},
		{"a*", "abc"}, {"*c", "abc"}, {"a*c", "abbbc"}, {"a*c", "abcd"}, {"a?c", "abc"},
		{"a**c", "ac"}, {"*a*b*", "xaxbx"}, {"*a*b*", "xbxax"}, {"ghcr.io/*", "ghcr.io/a/b:1"},
		{"h?llo", "héllo"}, {"héllo", "héllo"}, {"*é", "abcé"}, {"\xff", "\xff"}, {"?", "\xff"},
		{"\ufffd", "\xff"}, {"a\\*", "a\\b"}, {"[a]", "a"}, {"**", ""}, {"*?", ""}, {"*?", "a"},
	}
	for _, c := range fixed {
		if got, want := wildcardMatch(c[0], c[1]), gowildcard.Match(c[0], c[1]); got != want {
			t.Errorf("wildcardMatch(%q, %q) = %v, go-wildcard says %v", c[0], c[1], got, want)
		}
	}
	rng := rand.New(rand.NewSource(1))
	alphabet := []string{"a", "b", "*", "?", "é", "/"}
	gen := func(n int) string {
		var b strings.Builder
		for i := 0; i < rng.Intn(n); i++ {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		return b.String()
	}
	for i := 0; i < 20000; i++ {
		p, s := gen(7), strings.NewReplacer("*", "a", "?", "b").Replace(gen(9))
		if got, want := wildcardMatch(p, s), gowildcard.Match(p, s); got != want {
			t.Fatalf("wildcardMatch(%q, %q) = %v, go-wildcard says %v", p, s, got, want)
		}
	}
}

// TestWildcardLinear: a pattern that makes go-wildcard backtrack exponentially is fast here.
func TestWildcardLinear(t *testing.T) {
	pattern := strings.Repeat("*a", 40) + "b"
	s := strings.Repeat("a", 5000)
	start := time.Now()
	if wildcardMatch(pattern, s) {
		t.Fatal("matched")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}
