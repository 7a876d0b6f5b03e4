package conditions

import (
	"encoding/json"
	"fmt"
	"strings"
)

// sprint renders a scalar the way Kyverno's In operators do (fmt.Sprint: 1e+06, true).
func sprint(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// inKeys returns the key of an In-family operator as strings, and whether it was a list.
func inKeys(key any, allowBool bool) ([]string, bool, bool) {
	switch k := key.(type) {
	case string:
		return []string{k}, false, true
	case bool:
		if !allowBool {
			return nil, false, false
		}
		return []string{sprint(k)}, false, true
	case []any:
		out := make([]string, len(k))
		for i, e := range k {
			out[i] = sprint(e)
		}
		return out, true, true
	}
	if _, ok := toFloat(key); ok {
		return []string{sprint(key)}, false, true
	}
	return nil, false, false
}

// setIn implements AnyIn, AllIn, AnyNotIn and AllNotIn (operator/anyin.go, allin.go,
// anynotin.go, allnotin.go): the key is a scalar or a list, compared as strings; the value is
// a list, a JSON array in a string, a numeric range "a-b", or a single string. Elements match
// by wildcard in either direction.
func setIn(o operator, key, value any) bool {
	keys, isList, ok := inKeys(key, true)
	if !ok {
		return false
	}
	negate := o == opAnyNotIn || o == opAllNotIn
	if !isList {
		found, valid := scalarIn(keys[0], value)
		if !valid {
			return false
		}
		return found != negate
	}
	var values []string
	switch v := value.(type) {
	case []any:
		values = make([]string, len(v))
		for i, e := range v {
			values[i] = sprint(e)
		}
	case string:
		if len(keys) == 1 && keys[0] == v {
			return !negate
		}
		if rangeOperator(v) == patInRange {
			return rangeSet(o, keys, v)
		}
		var valid bool
		if values, valid = stringList(v); !valid {
			return false
		}
	case bool:
		values = []string{sprint(v)}
	default:
		f, ok := toFloat(v)
		if !ok {
			return false
		}
		// A scalar number value is a one-element list
		// (operator/anynotin_test.go: [1,2,3] AnyNotIn 2 is true).
		values = []string{sprint(f)}
	}
	return setMatch(o, keys, values)
}

// setMatch applies a set operator to string keys and values.
func setMatch(o operator, keys, values []string) bool {
	switch o {
	case opAnyIn:
		for _, k := range keys {
			if matchesAny(k, values) {
				return true
			}
		}
		return false
	case opAllIn:
		for _, k := range keys {
			if !matchesAny(k, values) {
				return false
			}
		}
		return true
	case opAnyNotIn:
		for _, k := range keys {
			if !matchesAny(k, values) {
				return true
			}
		}
		return false
	default: // opAllNotIn
		for _, k := range keys {
			if matchesAny(k, values) {
				return false
			}
		}
		return true
	}
}

// scalarIn is Kyverno's anyKeyExistsInArray: whether key is in value, and whether value had a
// usable type.
func scalarIn(key string, value any) (found, valid bool) {
	switch v := value.(type) {
	case []any:
		for _, e := range v {
			s := sprint(e)
			if wildcardMatch(s, key) || wildcardMatch(key, s) {
				return true, true
			}
		}
		return false, true
	case string:
		if wildcardMatch(v, key) {
			return true, true
		}
		if rangeOperator(v) == patInRange {
			return patternValidate(key, v), true
		}
		list, ok := stringList(v)
		if !ok {
			return false, false
		}
		for _, e := range list {
			if e == key {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

// stringList reads a value string as Kyverno does: a JSON document must be an array of
// strings (anything else makes the operator false), any other string is a one-element list.
func stringList(v string) ([]string, bool) {
	if !json.Valid([]byte(v)) {
		return []string{v}, true
	}
	var out []string
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, false
	}
	return out, true
}

func matchesAny(key string, values []string) bool {
	for _, v := range values {
		if wildcardMatch(key, v) || wildcardMatch(v, key) {
			return true
		}
	}
	return false
}

// rangeSet applies a numeric range value ("1-10") to a list key. For the NotIn forms Kyverno
// rewrites the range to "1!-10" (its first '-' replaced, so a negative lower bound turns the
// pattern into a "!" pattern, as in Kyverno).
func rangeSet(o operator, keys []string, pattern string) bool {
	if o == opAnyNotIn || o == opAllNotIn {
		pattern = strings.Replace(pattern, "-", "!-", 1)
	}
	switch o {
	case opAnyIn, opAnyNotIn:
		for _, k := range keys {
			if patternValidate(k, pattern) {
				return true
			}
		}
		return false
	default:
		for _, k := range keys {
			if !patternValidate(k, pattern) {
				return false
			}
		}
		return true
	}
}

// legacyIn implements the deprecated In and NotIn (operator/in.go, notin.go): a scalar key is
// matched as a wildcard pattern against list elements, or against a string value used as a
// pattern, or exactly against a JSON string array; a list key (strings only) must be entirely
// in (In) or partly outside (NotIn) the value, compared exactly.
func legacyIn(not bool, key, value any) bool {
	keys, isList, ok := inKeys(key, false)
	if !ok {
		return false
	}
	if !isList {
		found, valid := legacyScalarIn(keys[0], value)
		return valid && found != not
	}
	for _, e := range key.([]any) {
		if _, ok := e.(string); !ok {
			return false
		}
	}
	var values []string
	switch v := value.(type) {
	case []any:
		values = make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return false
			}
			values[i] = s
		}
	case string:
		if len(keys) == 1 && keys[0] == v {
			return !not // Kyverno returns true for NotIn here too; see doc.go
		}
		if err := json.Unmarshal([]byte(v), &values); err != nil {
			return false
		}
	default:
		return false
	}
	set := make(map[string]struct{}, len(values))
	for _, v := range values {
		set[v] = struct{}{}
	}
	for _, k := range keys {
		if _, found := set[k]; !found {
			return not
		}
	}
	return !not
}

func legacyScalarIn(key string, value any) (found, valid bool) {
	switch v := value.(type) {
	case []any:
		for _, e := range v {
			if wildcardMatch(key, sprint(e)) {
				return true, true
			}
		}
		return false, true
	case string:
		if wildcardMatch(v, key) {
			return true, true
		}
		var list []string
		if err := json.Unmarshal([]byte(v), &list); err != nil {
			return false, false
		}
		for _, e := range list {
			if e == key {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}
