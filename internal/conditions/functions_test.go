package conditions

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestKyvernoFunctions: expected results from kyverno pkg/engine/jmespath/functions_test.go,
// time_test.go and arithmetic_test.go, unless a comment says otherwise.
func TestKyvernoFunctions(t *testing.T) {
	doc := mustJSON(t, `{
	  "foo": "hgf'b1a2r'b12g", "neg": -12.0, "pre": "prefix-foo",
	  "spec": {"field": "Hello world, helworldlo"},
	  "metadata": {"labels": {"app": "test-app", "controller-name": "test-controller"}},
	  "data": {"example1": "SGVsbG8sIHdvcmxkIQ=="},
	  "big": 1234567.89
	}`)
	cases := []struct {
		expr string
		want any // JSON text
	}{
		{"compare('a', 'a')", `0`},
		{"compare('a', 'b')", `-1`},
		{"compare('b', 'a')", `1`},
		{"equal_fold('Go', 'go')", `true`},
		{"equal_fold('a', 'b')", `false`},
		{"replace('Lorem ipsum dolor sit amet', 'ipsum', 'muspi', `-1`)", `"Lorem muspi dolor sit amet"`},
		{"replace('Lorem ipsum ipsum ipsum dolor sit amet', 'ipsum', 'muspi', `1`)", `"Lorem muspi ipsum ipsum dolor sit amet"`},
		{"replace_all('Lorem ipsum dolor sit amet', 'ipsum', 'muspi')", `"Lorem muspi dolor sit amet"`},
		{"to_upper('a#%&123Bc')", `"A#%&123BC"`},
		{"to_lower('a#%&123Bc')", `"a#%&123bc"`},
		{"trim('¡¡¡Hello, Gophers!!!', '!¡')", `"Hello, Gophers"`},
		{"trim_prefix('¡¡¡Hello, Gophers!!!', '¡¡¡Hello, ')", `"Gophers!!!"`},
		{"trim_prefix('¡¡¡Hello, Gophers!!!', '¡¡¡Hola, ')", `"¡¡¡Hello, Gophers!!!"`},
		{"split('Hello, Gophers', ', ')", `["Hello", "Gophers"]`},
		{"split('abc', '')", `["a", "b", "c"]`},
		{"starts_with('Gophers', 'Go')", `true`},
		{"ends_with('Amigo', 'go')", `true`},
		{"contains('Gophers', 'ph')", `true`}, // JMESPath built-in (Kyverno has no override)
		{"contains(['a', 'b'], 'b')", `true`},
		{"regex_match('12.*', foo)", `true`},
		{"regex_match('12.*', abs(neg))", `true`},
		{"regex_match('^12$', abs(neg))", `true`},
		{"regex_match('^x', foo)", `false`},
		{"regex_match('^1234567\\.9$', big)", `true`}, // numbers print with float32 precision
		{"pattern_match('prefix-*', pre)", `true`},
		{"pattern_match('12*', abs(neg))", `true`},
		{"regex_replace_all('([Hh]e|G)l', spec.field, '${2}G')", `"Glo world, Gworldlo"`},
		{"regex_replace_all_literal('[Hh]el?', spec.field, 'G')", `"Glo world, Gworldlo"`},
		{"regex_replace_all('(a)(b)', 'xaby', '$2$1')", `"xbay"`},
		{"regex_replace_all_literal('a', 'aa', '$1')", `"$1$1"`},
		{"label_match(`{\"app\": \"test-app\"}`, metadata.labels)", `true`},
		{"label_match(`{\"app\": \"test-app\", \"controller-name\": \"test-controller\"}`, metadata.labels)", `true`},
		{"label_match(`{\"app\": \"test-app2\"}`, metadata.labels)", `false`},
		{"label_match(`{\"app.kubernetes.io/name\": \"test-app\"}`, metadata.labels)", `false`},
		{"to_boolean('TRue')", `true`},
		{"to_boolean('FaLse')", `false`},
		{"base64_decode('SGVsbG8sIHdvcmxkIQ==')", `"Hello, world!"`},
		{"base64_decode(data.example1)", `"Hello, world!"`},
		{"base64_encode('Hello, world!')", `"SGVsbG8sIHdvcmxkIQ=="`},
		{"path_canonicalize('///var/run/containerd/containerd.sock')", `"/var/run/containerd/containerd.sock"`},
		{"path_canonicalize('/run/../etc')", `"/etc"`},
		{"path_canonicalize('/../../')", `"/"`},
		{"truncate('Lorem ipsum dolor sit amet', `5`)", `"Lorem"`},
		{"truncate('Lorem ipsum ipsum ipsum dolor sit amet', `40`)", `"Lorem ipsum ipsum ipsum dolor sit amet"`},
		{"truncate('Lorem ipsum', `2.6`)", `"Lo"`},
		{"truncate('Lorem ipsum', `0`)", `""`},
		{"truncate('Lorem ipsum', `-1`)", `""`},
		{"truncate('héllo', `2`)", `"hé"`}, // runes, not bytes
		{"semver_compare('4.1.3','>=4.1.x')", `true`},
		{"semver_compare('4.1.3','!4.x.x')", `false`},
		{"semver_compare('1.8.6','>1.0.0 <2.0.0')", `true`},
		{"semver_compare('2.1.5','<2.0.0 || >=3.0.0')", `false`},
		{"semver_compare('not-a-version','<0.0.1')", `true`}, // unparsable versions are 0.0.0
		{"to_string(parse_json('[1.2,true,{\"a\":{\"a\":\"b\"}}]'))", `"[1.2,true,{\"a\":{\"a\":\"b\"}}]"`},
		{"parse_json('{\"a\": [1, 2, 3, 4]}').a[0]", `1`},
		{"parse_yaml('a: b')", `{"a": "b"}`},
		{"parse_yaml('foo: ~')", `{"foo": null}`},
		{"lookup(`{\"key1\": \"value1\"}`, 'key1')", `"value1"`},
		{"lookup(`{\"key1\": \"value1\"}`, 'key2')", `null`},
		{"lookup(`[\"item0\", \"item1\"]`, `0.99999999999999999999999999999999999999999999`)", `"item1"`},
		{"lookup(`[\"item0\"]`, `-1`)", `null`},
		{"items(`{\"key1\": \"value1\", \"key2\": \"value2\"}`, 'key', 'value')", `[{"key": "key1", "value": "value1"}, {"key": "key2", "value": "value2"}]`},
		{"items(`[\"A\", \"B\"]`, 'k', 'v')", `[{"k": 0, "v": "A"}, {"k": 1, "v": "B"}]`},
		{"items(`{\"a\": 1}`, 'k', 'v')[0].k", `"a"`},
		{"object_from_lists(`[\"key1\", \"key2\"]`, `[1]`)", `{"key1": 1, "key2": null}`},
		// arithmetic.go: numbers, quantities ("10", "1Gi", "1m") and durations ("1h").
		{"add(`12`, `13`)", `25`},
		{"add('12Mi', '13Mi')", `"25Mi"`},
		{"add('1h', '1m0s')", `"1h1m0s"`},
		{"subtract('12Mi', '13Mi')", `"-1Mi"`},
		{"subtract('2h', '1h')", `"1h0m0s"`},
		{"multiply('12Mi', `2`)", `"24Mi"`},
		{"multiply(`2`, '1h')", `"2h0m0s"`},
		{"multiply(`3`, `4`)", `12`},
		{"divide(`12`, `4`)", `3`},
		{"divide('12Mi', '2Mi')", `6`},
		{"divide('1h', '30m0s')", `2`},
		{"divide('1h', `2`)", `"30m0s"`},
		{"divide('12Mi', `2`)", `"6Mi"`},
		{"modulo(`13`, `2`)", `1`},
		{"modulo('13s', '2s')", `"1s"`},
		{"modulo('13Mi', '4Mi')", `"1Mi"`},
		{"sum(`[1, 2, 3]`)", `6`},
		{"sum(['1Mi', '2Mi'])", `"3Mi"`},
		{"round(`1.2345`, `2`)", `1.23`},
		// time.go
		{"time_since('', '2021-01-02T15:04:05-07:00', '2021-01-10T03:14:05-07:00')", `"180h10m0s"`},
		{"time_since('2006-01-02', '2021-01-02', '2021-01-03')", `"24h0m0s"`},
		{"time_since('', '2026-03-01T11:00:00Z', '')", `"1h0m0s"`}, // now = testNow
		{"time_now_utc()", `"2026-03-01T12:00:00Z"`},
		{"time_add('2021-01-02T15:04:05Z', '1h')", `"2021-01-02T16:04:05Z"`},
		{"time_parse('2006-01-02', '2021-01-02')", `"2021-01-02T00:00:00Z"`},
		{"time_parse('1702691171', '1702691171')", `"2023-12-16T01:46:11Z"`},
		{"time_utc('2021-01-02T18:04:05+05:30')", `"2021-01-02T12:34:05Z"`},
		{"time_diff('2021-01-01T00:00:00Z', '2021-01-01T01:00:00Z')", `"1h0m0s"`},
		{"time_before('2021-01-01T00:00:00Z', '2021-01-01T01:00:00Z')", `true`},
		{"time_after('2021-01-01T00:00:00Z', '2021-01-01T01:00:00Z')", `false`},
		{"time_between('2021-01-01T00:30:00Z', '2021-01-01T00:00:00Z', '2021-01-01T01:00:00Z')", `true`},
		{"time_truncate('2021-01-01T00:30:00Z', '1h')", `"2021-01-01T00:00:00Z"`},
		{"time_to_cron('2023-02-02T15:04:05Z')", `"4 15 2 2 4"`},
	}
	for _, c := range cases {
		got, err := search(t, c.expr, doc)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if diff := cmp.Diff(mustJSON(t, c.want.(string)), got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", c.expr, diff)
		}
	}
}

func TestKyvernoFunctionErrors(t *testing.T) {
	for expr, want := range map[string]string{
		"to_boolean('foo')":                 "lowercase argument must be 'true' or 'false'",
		"to_upper(`1`)":                     "argument #1: expected string, got number",
		"regex_match(`1`, 'a')":             "argument #1: expected string, got number",
		"regex_match(missing_pattern, 'a')": "expected string, got null",
		"base64_decode('!!')":               "illegal base64",
		"semver_compare('1.0.0', 'nope')":   "Could not get version from string",
		"parse_json('{')":                   "unexpected end of JSON input",
		"time_since('', 'yesterday', '')":   "cannot parse",
		"add('1h', '1Mi')":                  "types mismatch",
		"add('x', `1`)":                     "invalid operands",
		"divide(`1`, `0`)":                  "Zero divisor passed",
		"modulo(`1.5`, `1`)":                "Non-integer argument(s) passed for modulo",
		"round(`1`, `-1`)":                  "Argument out of bounds",
		"sum(`[]`)":                         "at least one element",
		"lookup(`[]`, `1.5`)":               "argument #2: expected an integer number but got: 1.5",
		"lookup(`{}`, `1`)":                 "is expected of String type",
	} {
		_, err := search(t, expr, map[string]any{"missing_pattern": nil})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", expr, err, want)
		}
	}
	// A regular expression that comes from the document is compiled when evaluated.
	if _, err := search(t, "regex_match(p, 'a')", map[string]any{"p": "("}); err == nil || !strings.Contains(err.Error(), "missing closing )") {
		t.Errorf("dynamic pattern: %v", err)
	}
	if got, err := search(t, "regex_match(p, 'abc')", map[string]any{"p": "^a"}); err != nil || got != true {
		t.Errorf("dynamic pattern: %v, %v", got, err)
	}
}

// TestFunctionTable: every function of Kyverno used for attestations is there, built-ins too.
func TestFunctionTable(t *testing.T) {
	for _, name := range []string{"regex_match", "compare", "equal_fold", "to_upper", "to_lower", "split",
		"contains", "time_since", "semver_compare", "base64_decode", "parse_json", "truncate",
		"starts_with", "ends_with", "length", "sort_by", "not_null", "join", "to_string", "time_now"} {
		if functionTable[name] == nil {
			t.Errorf("function %s is missing", name)
		}
	}
	// Kyverno's signatures replace the built-ins of the same name.
	for name, args := range map[string]int{"replace": 4, "split": 2, "trim": 2, "items": 3} {
		if got := len(functionTable[name].args); got != args {
			t.Errorf("%s takes %d arguments, want Kyverno's %d", name, got, args)
		}
	}
}
