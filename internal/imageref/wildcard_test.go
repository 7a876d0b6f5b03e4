package imageref

import (
	"strings"
	"testing"
	"unicode/utf8"

	wildcard "github.com/IGLOU-EU/go-wildcard"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "docker.io/nginx:latest", true},
		{"**", "", true},
		{"?", "", false},
		{"?", "a", true},
		{"?", "ab", false},
		{"?", "é", true}, // one rune, two bytes
		{"??", "é", false},
		{"a", "A", false}, // case-sensitive
		{"nginx", "docker.io/nginx:latest", false},
		{"docker.io/nginx:latest", "docker.io/nginx:latest", true},
		// '*' crosses '/' and ':'.
		{"ghcr.io/*", "ghcr.io/kyverno/zulu:v0.0.14", true},
		{"ghcr.io/*", "ghcr.io", false},
		{"ghcr.io/*", "ghcr.io/", true},
		{"ghcr.io/*", "ghcr.iox/a:1", false},
		{"*/nginx:*", "docker.io/nginx:latest", true},
		{"*/nginx:*", "docker.io/library/nginx:1.25", true},
		{"*/nginx:*", "docker.io/nginx@sha256:" + hex64, false},
		{"*nginx*", "docker.io/nginx@sha256:" + hex64, true},
		{"docker.io/*:*", "docker.io/a/b/c:d", true},
		// '?' is exactly one character.
		{"ghcr.io/kyverno/zulu:v0.0.1?", "ghcr.io/kyverno/zulu:v0.0.14", true},
		{"ghcr.io/kyverno/zulu:v0.0.?", "ghcr.io/kyverno/zulu:v0.0.14", false},
		{"ghcr.io/kyverno/???u:*", "ghcr.io/kyverno/zulu:v0.0.14", true},
		// ':' and '@' are literal.
		{"*@sha256:*", "ghcr.io/a@sha256:" + hex64, true},
		{"*@sha256:*", "ghcr.io/a:sha256", false},
		{"*:v1", "x.io/a:v1", true},
		{"*:v1", "x.io/a:v10", false},
		// Backtracking.
		{"*a*b", "aaaaaaaaab", true},
		{"*a*b", "aaaaaaaaaa", false},
		{"a*b*c", "abbbbbc", true},
		{"a*b*c", "acb", false},
		{"*?", "", false},
		{"*?", "x", true},
		{"?*?", "x", false},
		{"*x*", "x", true},
		// No escaping: a backslash is a literal.
		{`a\*`, `a\b`, true},
		{`a\*`, `a*`, false},
		// Invalid UTF-8 bytes are each U+FFFD, so they match each other and U+FFFD itself.
		{"\xff", "\xfe", true},
		{"\uFFFD", "\xff", true},
		{"?", "\xff\xfe", false},
		{"??", "\xff\xfe", true},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
		if ref := wildcard.Match(tt.pattern, tt.s); ref != tt.want {
			t.Errorf("go-wildcard Match(%q, %q) = %v; the table is wrong", tt.pattern, tt.s, ref)
		}
	}
}

func TestMatchAny(t *testing.T) {
	t.Parallel()
	if MatchAny(nil, "x") {
		t.Error("MatchAny(nil) = true")
	}
	if MatchAny([]string{""}, "x") {
		t.Error(`MatchAny([""], "x") = true`)
	}
	if !MatchAny([]string{"ghcr.io/*", "docker.io/*"}, "docker.io/nginx:latest") {
		t.Error("MatchAny missed the second pattern")
	}
}

func TestContainsWildcard(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"": false, "nginx": false, "a*": true, "a?b": true, "a@sha256:x": false} {
		if got := ContainsWildcard(s); got != want {
			t.Errorf("ContainsWildcard(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestMatchExhaustive compares Match with go-wildcard on every pattern and string up to a
// small length over an alphabet that exercises literals, both wildcards and multi-byte and
// invalid runes.
func TestMatchExhaustive(t *testing.T) {
	t.Parallel()
	patterns := words([]string{"a", "b", "*", "?", "\xff"}, 5)
	strs := words([]string{"a", "b", "é", "\xfe"}, 5)
	n := 0
	for _, p := range patterns {
		for _, s := range strs {
			if got, want := Match(p, s), wildcard.Match(p, s); got != want {
				t.Fatalf("Match(%q, %q) = %v, go-wildcard says %v", p, s, got, want)
			}
			n++
		}
	}
	t.Logf("%d pairs", n)
}

// words returns every concatenation of up to max symbols.
func words(alphabet []string, max int) []string {
	out := []string{""}
	level := []string{""}
	for i := 0; i < max; i++ {
		var next []string
		for _, w := range level {
			for _, a := range alphabet {
				next = append(next, w+a)
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// referenceCost bounds the work of go-wildcard's backtracking on (pattern, s): about
// C(n+k, k) for n runes and k stars. It saturates at limit.
func referenceCost(pattern, s string, limit int) int {
	n, k := utf8.RuneCountInString(s), strings.Count(pattern, "*")
	cost := 1
	for i := 1; i <= k; i++ {
		cost = cost * (n + i) / i
		if cost > limit {
			return limit
		}
	}
	return cost
}

// FuzzMatch compares Match with github.com/IGLOU-EU/go-wildcard v1.0.3, the library Kyverno
// uses, on inputs small enough for the library's exponential backtracking.
func FuzzMatch(f *testing.F) {
	f.Add("ghcr.io/*", "ghcr.io/kyverno/zulu:v0.0.14")
	f.Add("*/nginx:*", "docker.io/nginx:latest")
	f.Add("*a*a*b", "aaaaaaaa")
	f.Add("??*?", "abc")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 64 || referenceCost(pattern, s, 1<<17) >= 1<<17 {
			return
		}
		if got, want := Match(pattern, s), wildcard.Match(pattern, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, go-wildcard says %v", pattern, s, got, want)
		}
	})
}

var sink bool

// BenchmarkMatchPathological measures a pattern that makes backtracking matchers explode.
// go-wildcard runs on a 24-rune string only; ours also on a 4 KiB one.
func BenchmarkMatchPathological(b *testing.B) {
	pattern := "*a*a*a*a*a*a*b"
	short := strings.Repeat("a", 24)
	long := strings.Repeat("a", 4096)
	b.Run("vouch/24", func(b *testing.B) {
		for b.Loop() {
			sink = Match(pattern, short)
		}
	})
	b.Run("go-wildcard/24", func(b *testing.B) {
		for b.Loop() {
			sink = wildcard.Match(pattern, short)
		}
	})
	b.Run("vouch/4096", func(b *testing.B) {
		for b.Loop() {
			sink = Match(pattern, long)
		}
	})
}

// BenchmarkMatchTypical measures imageReferences-style patterns on canonical references.
func BenchmarkMatchTypical(b *testing.B) {
	cases := []struct{ pattern, s string }{
		{"ghcr.io/kyverno/*", "ghcr.io/kyverno/zulu:v0.0.14"},
		{"*/nginx:*", "docker.io/library/nginx:1.25.3"},
		{"registry.example.com/team-?/*@sha256:*", "registry.example.com/team-a/app@sha256:" + hex64},
	}
	b.Run("vouch", func(b *testing.B) {
		for b.Loop() {
			for _, c := range cases {
				sink = Match(c.pattern, c.s)
			}
		}
	})
	b.Run("go-wildcard", func(b *testing.B) {
		for b.Loop() {
			for _, c := range cases {
				sink = wildcard.Match(c.pattern, c.s)
			}
		}
	})
}
