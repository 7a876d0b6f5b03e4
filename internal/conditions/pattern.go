package conditions

import (
	"regexp"
	"strings"
	"time"
)

// patternOp is an operator prefix of a Kyverno string pattern (kyverno pkg/engine/operator).
type patternOp string

const (
	patEqual      patternOp = ""
	patMoreEqual  patternOp = ">="
	patLessEqual  patternOp = "<="
	patNotEqual   patternOp = "!"
	patMore       patternOp = ">"
	patLess       patternOp = "<"
	patInRange    patternOp = "-"
	patNotInRange patternOp = "!-"
)

var (
	inRangePattern    = regexp.MustCompile(`^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)-([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)$`)
	notInRangePattern = regexp.MustCompile(`^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)!-([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)$`)
)

// rangeOperator is Kyverno's GetOperatorFromStringPattern.
func rangeOperator(pattern string) patternOp {
	if len(pattern) < 2 {
		return patEqual
	}
	for _, op := range []patternOp{patMoreEqual, patLessEqual, patMore, patLess, patNotEqual} {
		if strings.HasPrefix(pattern, string(op)) {
			return op
		}
	}
	if notInRangePattern.MatchString(pattern) {
		return patNotInRange
	}
	if inRangePattern.MatchString(pattern) {
		return patInRange
	}
	return patEqual
}

// patternValidate is Kyverno's pattern.Validate for a string value and a string pattern
// (pkg/engine/pattern/pattern.go): "|" alternatives of "&" conjunctions of operator patterns,
// each compared as durations, then quantities, then (for = and !) wildcard strings.
func patternValidate(value, pattern string) bool {
	if value == pattern {
		return true
	}
	for _, alt := range strings.Split(pattern, "|") {
		if allPatterns(value, strings.Trim(alt, " ")) {
			return true
		}
	}
	return false
}

func allPatterns(value, pattern string) bool {
	for _, p := range strings.Split(pattern, "&") {
		if !onePattern(value, strings.Trim(p, " ")) {
			return false
		}
	}
	return true
}

func onePattern(value, pattern string) bool {
	switch op := rangeOperator(pattern); op {
	case patInRange:
		m := inRangePattern.FindStringSubmatch(pattern)
		if m == nil {
			return false
		}
		return onePattern(value, ">= "+m[1]) && onePattern(value, "<= "+m[2])
	case patNotInRange:
		m := notInRangePattern.FindStringSubmatch(pattern)
		if m == nil {
			return false
		}
		return onePattern(value, "< "+m[1]) || onePattern(value, "> "+m[2])
	default:
		return compareWithPattern(value, strings.TrimSpace(pattern[len(op):]), op)
	}
}

func compareWithPattern(value, pattern string, op patternOp) bool {
	if pd, err := time.ParseDuration(pattern); err == nil {
		if vd, err := time.ParseDuration(value); err == nil {
			return compareOrdered(op, compareInts(int64(vd), int64(pd)))
		}
	}
	if pq, ok := parseQuantity(pattern); ok {
		if vq, ok := parseQuantity(value); ok {
			return compareOrdered(op, vq.Cmp(pq))
		}
	}
	switch op {
	case patEqual:
		return wildcardMatch(pattern, value)
	case patNotEqual:
		return !wildcardMatch(pattern, value)
	}
	return false
}

func compareInts(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareOrdered(op patternOp, cmp int) bool {
	switch op {
	case patEqual:
		return cmp == 0
	case patNotEqual:
		return cmp != 0
	case patMore:
		return cmp > 0
	case patLess:
		return cmp < 0
	case patMoreEqual:
		return cmp >= 0
	case patLessEqual:
		return cmp <= 0
	}
	return false
}
