package conditions

import "unicode/utf8"

// wildcardMatch reports whether s matches pattern, where '*' matches any run of characters
// (including none) and '?' exactly one. It gives the results of go-wildcard v1.0.3 Match, which
// Kyverno uses (spec §2.5: empty pattern matches only "", rune-based, case-sensitive, no
// escaping, whole-string), in O(len(pattern)*len(s)) time: go-wildcard backtracks
// exponentially, and Kyverno's In operators use the attacker's string as a pattern too.
func wildcardMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	if pattern == "*" {
		return true
	}
	p, n := 0, 0          // byte offsets in pattern and s
	starP, starN := -1, 0 // position after the last '*' seen, and where in s it was tried
	for n < len(s) {
		if p < len(pattern) {
			pr, pw := utf8.DecodeRuneInString(pattern[p:])
			switch pr {
			case '*':
				p += pw
				starP, starN = p, n
				continue
			case '?':
				_, sw := utf8.DecodeRuneInString(s[n:])
				p, n = p+pw, n+sw
				continue
			default:
				if sr, sw := utf8.DecodeRuneInString(s[n:]); sr == pr {
					p, n = p+pw, n+sw
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last '*' swallow one more character of s and retry from there.
		_, sw := utf8.DecodeRuneInString(s[starN:])
		starN += sw
		p, n = starP, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
