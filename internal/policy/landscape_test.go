package policy

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/imageref"
)

// TestLandscapeGroup7Globs: landscape §4.4 group 7. vouch matches imageReferences exactly as
// Kyverno does (its '*' crosses '/'), so the glob classes below keep Kyverno's verdicts; what
// vouch adds is that a pattern leaving the registry host open is reported when the policy is
// admitted (/validate-policy warnings, Events), with an example of a foreign reference it
// selects.
func TestLandscapeGroup7Globs(t *testing.T) {
	t.Run("host in path", func(t *testing.T) {
		const pattern = "*.trusted.io/*"
		foreign := "evil.io/x.trusted.io/app:v1"
		if !imageref.Match(pattern, foreign) {
			t.Fatalf("%q no longer matches %q: Kyverno's verdict changed", pattern, foreign)
		}
		if !HostWildcard(pattern) {
			t.Errorf("HostWildcard(%q) = false", pattern)
		}
		if ex := HostWildcardExample(pattern); !imageref.Match(pattern, ex) || strings.HasPrefix(ex, "x.trusted.io") {
			t.Errorf("example %q is not a foreign reference the pattern matches", ex)
		}
		warnings := checkWarnings(t, pattern)
		if !strings.Contains(warnings, "spec.rules[0].verifyImages[0].imageReferences[0]") || !strings.Contains(warnings, "does not fix the registry host") {
			t.Errorf("no host-wildcard warning with its path:\n%s", warnings)
		}
	})
	t.Run("missing trailing separator", func(t *testing.T) {
		if !imageref.Match("ghcr.io/acme/repo*", "ghcr.io/acme/repo-evil:v1") {
			t.Error("ghcr.io/acme/repo* should match repo-evil (Kyverno)")
		}
		if imageref.Match("ghcr.io/acme/repo/*", "ghcr.io/acme/repo-evil:v1") {
			t.Error("ghcr.io/acme/repo/* matched repo-evil")
		}
		if HostWildcard("ghcr.io/acme/repo*") {
			t.Error("a pattern with a fixed host is reported as a host wildcard")
		}
	})
	t.Run("docker.io normalisation", func(t *testing.T) {
		r, err := imageref.Parse("nginx")
		if err != nil || r.Registry != "docker.io" || r.Path != "nginx" || r.Tag != "latest" {
			t.Errorf("Parse(nginx) = %+v, %v; want docker.io, nginx, latest (Kyverno: no library/)", r, err)
		}
	})
	t.Run("uppercase", func(t *testing.T) {
		if _, err := imageref.Parse("ghcr.io/Acme/app:v1"); err == nil {
			t.Error("an uppercase repository parsed")
		}
		if r, err := imageref.Parse("GHCR.IO/acme/app:v1"); err != nil || r.Registry != "GHCR.IO" {
			t.Errorf("an uppercase registry host (valid in the grammar) = %+v, %v", r, err)
		}
	})
	t.Run("digest only", func(t *testing.T) {
		const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		r, err := imageref.Parse("ghcr.io/acme/app@" + d)
		if err != nil || r.Tag != "" || r.Digest != d {
			t.Errorf("digest-only reference = %+v, %v", r, err)
		}
	})
}

// checkWarnings returns the /validate-policy warnings of a policy verifying pattern.
func checkWarnings(t *testing.T, pattern string) string {
	t.Helper()
	doc := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: globs}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["` + pattern + `"]
      attestors:
      - entries:
        - keys:
            publicKeys: |-
              -----BEGIN PUBLIC KEY-----
              MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmvl+6HAv0j0smyzvO9LJ8OtGVeu8
              AuHPjOoK2gOAU7qCQNgqVPXOYPs87xukMmCFqQ0yGokNF1Jd0cRxY/TY0A==
              -----END PUBLIC KEY-----
`
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := Check(js)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return strings.Join(warnings, "\n")
}
