package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// Setting names a kind of insecure setting, for metrics and for telling findings apart.
type Setting string

// The insecure settings Insecure reports (landscape §5 item 13: every downgrade is visible).
const (
	// SettingIgnoreTlog is rekor.ignoreTlog: true — signatures need no transparency-log entry.
	SettingIgnoreTlog Setting = "ignoreTlog"
	// SettingIgnoreSCT is ctlog.ignoreSCT: true — certificates need no SCT.
	SettingIgnoreSCT Setting = "ignoreSCT"
	// SettingInsecureRegistry is imageRegistryCredentials.allowInsecureRegistry: true — plain
	// HTTP and unverified TLS to every registry of the entry.
	SettingInsecureRegistry Setting = "allowInsecureRegistry"
	// SettingUnanchoredRegExp is a keyless subjectRegExp or issuerRegExp that is not anchored
	// at both ends (^…$), so that it matches identities that merely contain it.
	SettingUnanchoredRegExp Setting = "unanchoredRegExp"
	// SettingHostWildcard is an image pattern whose registry host is not fixed (see
	// HostWildcard).
	SettingHostWildcard Setting = "hostWildcard"
	// SettingFailOpen is failurePolicy: Ignore — images vouch could not verify (registry down,
	// timeout) are admitted.
	SettingFailOpen Setting = "failurePolicyIgnore"
	// SettingTrustFromRequest is an attestor whose trust material (keys, certificates,
	// identities, log keys) comes from the object being admitted, through a variable or a
	// context entry: whoever creates the object chooses what it is verified against.
	SettingTrustFromRequest Setting = "trustFromRequest"
)

// Finding is one insecure setting of a policy, at its field path.
type Finding struct {
	Path    string // e.g. spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.rekor.ignoreTlog
	Setting Setting
	Message string
}

// String returns "<path>: <message>", the form of admission warnings and Events.
func (f Finding) String() string { return f.Path + ": " + f.Message }

// Insecure lists the settings of a decoded policy that weaken verification: a transparency
// log or SCT check switched off, insecure registries, unanchored keyless identity regular
// expressions, image patterns that do not fix the registry host, and failurePolicy: Ignore.
// Each is valid Kyverno and is enforced as written; the findings are warnings for the
// policy's author (the policy admission webhook) and operators (Events, logs, metrics).
// Paths are those of the rules as written, not of autogen rules.
func Insecure(p *v1.Policy) []Finding {
	var out []Finding
	add := func(path *field.Path, s Setting, msg string) {
		out = append(out, Finding{Path: path.String(), Setting: s, Message: msg})
	}
	sp := field.NewPath("spec")
	if wc := p.Spec.WebhookConfiguration; wc != nil && wc.FailurePolicy != nil && *wc.FailurePolicy == v1.Ignore {
		add(sp.Child("webhookConfiguration", "failurePolicy"), SettingFailOpen, failOpenMessage)
	} else if p.Spec.FailurePolicy != nil && *p.Spec.FailurePolicy == v1.Ignore && (wc == nil || wc.FailurePolicy == nil) {
		add(sp.Child("failurePolicy"), SettingFailOpen, failOpenMessage)
	}
	for i := range p.Spec.Rules {
		tainted := requestTainted(p.Spec.Rules[i].Context)
		for j := range p.Spec.Rules[i].VerifyImages {
			iv := &p.Spec.Rules[i].VerifyImages[j]
			insecureEntry(iv, sp.Child("rules").Index(i).Child("verifyImages").Index(j), add, tainted)
		}
	}
	return out
}

// requestTainted returns the variable names whose values come from the object being
// admitted: request.object and request.oldObject, and the rule's context entries defined
// from them (directly or through an earlier entry).
func requestTainted(entries []v1.ContextEntry) []string {
	tainted := []string{"request.object", "request.oldObject"}
	for _, e := range entries {
		// variable.jmesPath is an expression itself, with or without {{ }}.
		switch {
		case e.Name == "":
		case e.Variable != nil && (usesAny(e.Variable, tainted) || mentionsAny(e.Variable.JMESPath, tainted)),
			e.ConfigMap != nil && usesAny(e.ConfigMap, tainted), // the object names the ConfigMap
			e.APICall != nil && usesAny(e.APICall, tainted):     // or the API path
			tainted = append(tainted, e.Name)
		}
	}
	return tainted
}

// usesAny reports whether a variable of v's JSON reads one of the names.
func usesAny(v any, names []string) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	for _, m := range variableText.FindAllString(string(b), -1) {
		if mentionsAny(m, names) {
			return true
		}
	}
	return false
}

// mentionsAny reports whether expression text names one of the names as a whole identifier.
func mentionsAny(text string, names []string) bool {
	for _, n := range names {
		for off := 0; ; {
			i := strings.Index(text[off:], n)
			if i < 0 {
				break
			}
			i += off
			if !identChar(text, i-1) && !identChar(text, i+len(n)) {
				return true
			}
			off = i + 1
		}
	}
	return false
}

// variableText finds `{{ }}` variables (nested ones as part of the outer text).
var variableText = regexp.MustCompile(`\{\{(?:[^{}]|\{[^{}]*\})*\}\}`)

func identChar(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

const trustFromRequestMessage = "its trust material (keys, certificates, identities or log keys) comes from the object being admitted (request.object, directly or through a context entry): whoever creates the object chooses what its images are verified against"

const failOpenMessage = "Ignore admits images that vouch could not verify (registry unreachable, rate-limited, timed out)"

type addFunc func(path *field.Path, s Setting, msg string)

func insecureEntry(iv *v1.ImageVerification, path *field.Path, add addFunc, tainted []string) {
	if iv.Image != "" {
		if msg := hostWildcardMessage(iv.Image, false); msg != "" {
			add(path.Child("image"), SettingHostWildcard, msg)
		}
	}
	for k, pattern := range iv.ImageReferences {
		if msg := hostWildcardMessage(pattern, false); msg != "" {
			add(path.Child("imageReferences").Index(k), SettingHostWildcard, msg)
		}
	}
	for k, pattern := range iv.SkipImageReferences {
		if msg := hostWildcardMessage(pattern, true); msg != "" {
			add(path.Child("skipImageReferences").Index(k), SettingHostWildcard, msg)
		}
	}
	if c := iv.ImageRegistryCredentials; c != nil && c.AllowInsecureRegistry {
		add(path.Child("imageRegistryCredentials", "allowInsecureRegistry"), SettingInsecureRegistry,
			"true lets vouch reach this entry's registries over plain HTTP and without verifying their TLS certificates")
	}
	for k := range iv.Attestors {
		insecureSet(&iv.Attestors[k], path.Child("attestors").Index(k), add, 0, tainted)
	}
	for k := range iv.Attestations {
		for m := range iv.Attestations[k].Attestors {
			insecureSet(&iv.Attestations[k].Attestors[m], path.Child("attestations").Index(k).Child("attestors").Index(m), add, 0, tainted)
		}
	}
}

// maxNestedSets bounds the recursion into nested attestor sets (validation rejects deeper ones).
const maxNestedSets = 8

func insecureSet(set *v1.AttestorSet, path *field.Path, add addFunc, depth int, tainted []string) {
	if depth > maxNestedSets {
		return
	}
	for k := range set.Entries {
		e := &set.Entries[k]
		ep := path.Child("entries").Index(k)
		for _, m := range []struct {
			name     string
			material any
			set      bool
		}{{"keys", e.Keys, e.Keys != nil}, {"certificates", e.Certificates, e.Certificates != nil}, {"keyless", e.Keyless, e.Keyless != nil}} {
			if m.set && usesAny(m.material, tainted) {
				add(ep.Child(m.name), SettingTrustFromRequest, trustFromRequestMessage)
			}
		}
		switch {
		case e.Keys != nil:
			insecureLogs(e.Keys.Rekor, e.Keys.CTLog, ep.Child("keys"), add)
		case e.Certificates != nil:
			insecureLogs(e.Certificates.Rekor, e.Certificates.CTLog, ep.Child("certificates"), add)
		case e.Keyless != nil:
			kp := ep.Child("keyless")
			insecureLogs(e.Keyless.Rekor, e.Keyless.CTLog, kp, add)
			for _, re := range []struct{ name, expr string }{{"subjectRegExp", e.Keyless.SubjectRegExp}, {"issuerRegExp", e.Keyless.IssuerRegExp}} {
				if re.expr != "" && !Anchored(re.expr) {
					add(kp.Child(re.name), SettingUnanchoredRegExp, fmt.Sprintf(
						"%q is not anchored (^…$): it matches any identity that merely contains a match, e.g. one with a prefix or suffix an attacker chose", re.expr))
				}
			}
		case e.Attestor != nil:
			insecureSet(e.Attestor, ep.Child("attestor"), add, depth+1, tainted)
		}
	}
}

func insecureLogs(r *v1.Rekor, c *v1.CTLog, path *field.Path, add addFunc) {
	if r != nil && r.IgnoreTlog {
		add(path.Child("rekor", "ignoreTlog"), SettingIgnoreTlog,
			"true accepts signatures without a transparency-log entry: a signature made with a stolen key leaves no public record")
	}
	if c != nil && c.IgnoreSCT {
		add(path.Child("ctlog", "ignoreSCT"), SettingIgnoreSCT,
			"true accepts certificates without a signed certificate timestamp: a mis-issued certificate is not detectable in the CT log")
	}
}

// Anchored reports whether a regular expression can only match a whole string: it starts
// with ^ (or \A) and ends with an unescaped $ (or \z). Kyverno matches subjectRegExp and
// issuerRegExp with Go's MatchString, which finds a match anywhere in the identity.
func Anchored(expr string) bool {
	if !strings.HasPrefix(expr, "^") && !strings.HasPrefix(expr, `\A`) {
		return false
	}
	if strings.HasSuffix(expr, `\z`) {
		return true
	}
	if !strings.HasSuffix(expr, "$") {
		return false
	}
	// "\$" is a literal dollar sign: count the backslashes before the final "$".
	n := 0
	for i := len(expr) - 2; i >= 0 && expr[i] == '\\'; i-- {
		n++
	}
	return n%2 == 0
}

// HostWildcard reports whether an image pattern leaves the registry host open: a wildcard
// ('*' or '?') occurs before the first '/' (or anywhere, when the pattern has no '/'). Kyverno's
// '*' also matches '/' (spec §2.5), so such a pattern matches references on registries it
// does not name: "*.example.com/*" matches "evil.example/x.example.com/app". The pattern "*"
// alone, which means every image, is not reported for imageReferences by Insecure.
func HostWildcard(pattern string) bool {
	host := pattern
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		host = pattern[:i]
	}
	return strings.ContainsAny(host, "*?")
}

// hostWildcardMessage explains a host wildcard, or returns "" when the pattern fixes its host
// (or is the catch-all "*" of imageReferences).
func hostWildcardMessage(pattern string, skip bool) string {
	if !HostWildcard(pattern) || (!skip && strings.Trim(pattern, "*") == "") {
		return ""
	}
	example := HostWildcardExample(pattern)
	if skip {
		return fmt.Sprintf("%q does not fix the registry host (Kyverno's * also matches /): images from other registries skip verification, e.g. %s", pattern, example)
	}
	return fmt.Sprintf("%q does not fix the registry host (Kyverno's * also matches /): it also selects images from other registries, e.g. %s", pattern, example)
}

// HostWildcardExample returns a reference on another registry that the pattern matches: the
// first '*' becomes a host of an attacker's choosing, the other wildcards plain characters.
func HostWildcardExample(pattern string) string {
	var b strings.Builder
	first := true
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '*' && first:
			first = false
			if i == 0 {
				b.WriteString("evil.example/x")
			} else {
				b.WriteString(".evil.example/x")
			}
		case c == '*':
			b.WriteString("x")
		case c == '?':
			b.WriteString("x")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Check validates one policy document (JSON) as the policy admission webhook does: the
// decoding, validation and compilation of `vouch apply` (CompileDocument). An invalid policy
// is an error listing its field-path problems exactly as `vouch apply` prints them, one per
// line (Problems). A valid one yields warnings for its author: Kyverno's deprecation notices,
// every insecure setting ("<path>: <why>", see Insecure), and the rules vouch cannot evaluate
// yet, which fail closed.
func Check(object []byte) (warnings []string, err error) {
	api, err := v1.DecodePolicy(object)
	if err != nil {
		return nil, errors.New(Problems(err))
	}
	p, deprecations, err := Compile(api, api.Kind+"/"+api.Name)
	warnings = append(warnings, deprecations...)
	if err != nil {
		return warnings, errors.New(Problems(err))
	}
	for _, f := range p.Insecure {
		warnings = append(warnings, f.String())
	}
	seen := map[string]bool{}
	for _, r := range p.Rules {
		if r.Unsupported != "" && !r.Autogen && !seen[r.Path] {
			seen[r.Path] = true
			warnings = append(warnings, fmt.Sprintf("%s: vouch cannot evaluate this rule yet (%s): it reports an error for every image it matches", r.Path, r.Unsupported))
		}
	}
	return warnings, nil
}
