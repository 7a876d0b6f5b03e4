package imageref

import (
	"strings"
	"unicode/utf8"
)

// Match reports whether s matches the Kyverno wildcard pattern (spec §2.5): '*' matches any
// run of characters (including none, '/' and ':'), '?' matches exactly one character, every
// other character matches itself; matching is case-sensitive, rune-based and covers the whole
// string; the empty pattern matches only the empty string.
//
// Results are identical to github.com/IGLOU-EU/go-wildcard v1.0.3 Match, including its
// treatment of invalid UTF-8 (each invalid byte is one U+FFFD rune, in pattern and string
// alike), but the cost is O(len(pattern)·len(s)) in the worst case instead of exponential:
// on a mismatch after a '*', only the most recent '*' is retried one rune further, which is
// sufficient because a later '*' can absorb anything an earlier one could.
func Match(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	if pattern == "*" {
		return true
	}
	px, sx := 0, 0           // byte offsets into pattern and s
	starPx, starSx := -1, -1 // where to resume after the last '*': pattern just after it, s one rune further
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			pc, pw := utf8.DecodeRuneInString(pattern[px:])
			switch pc {
			case '*':
				starPx, starSx = px+pw, sx
				px += pw
				continue
			case '?':
				if sx < len(s) {
					_, sw := utf8.DecodeRuneInString(s[sx:])
					px, sx = px+pw, sx+sw
					continue
				}
			default:
				if sx < len(s) {
					sc, sw := utf8.DecodeRuneInString(s[sx:])
					if sc == pc {
						px, sx = px+pw, sx+sw
						continue
					}
				}
			}
		}
		// Mismatch: let the last '*' swallow one more rune of s, if any is left.
		if starPx < 0 || starSx >= len(s) {
			return false
		}
		_, sw := utf8.DecodeRuneInString(s[starSx:])
		starSx += sw
		px, sx = starPx, starSx
	}
	return true
}

// MatchAny reports whether s matches at least one of the patterns (none: false).
func MatchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if Match(p, s) {
			return true
		}
	}
	return false
}

// ContainsWildcard reports whether s contains a wildcard character, '*' or '?'.
func ContainsWildcard(s string) bool {
	return strings.ContainsAny(s, "*?")
}
