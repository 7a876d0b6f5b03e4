//go:build integration

package main

// Integration tests for type: Notary: images in the real distribution registry (no referrers
// API, so notation stores its signatures under the referrers tag schema), signed by the real
// notation CLI v1.3.2 offline with a test key from `notation cert generate-test`, in JWS and
// COSE envelopes, verified by vouch through the engine API and the built binary (`vouch apply
// -o json`), and cross-checked with `notation verify`.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// notationWorld is a distribution registry holding images signed with the notation CLI:
//
//	app:jws       signed with the vouch.test key, JWS envelope
//	app:cose      signed with the vouch.test key, COSE envelope
//	app:other     signed with the other.test key only
//	app:unsigned  no signature
type notationWorld struct {
	env      *toolEnv
	notation string
	host     string
	config   string // XDG_CONFIG_HOME: notation's keys, trust store and policy
	certs    map[string]string
	digests  map[string]string
}

// notationEnv is notation's environment inside the toolEnv: its configuration (keys, trust
// stores, trust policy) and cache under the private HOME, so nothing is read from or written
// to the user's.
func (w *notationWorld) notationEnv() []string {
	return []string{"XDG_CONFIG_HOME=" + w.config, "XDG_CACHE_HOME=" + filepath.Join(w.env.home, ".cache")}
}

func newNotationWorld(t *testing.T) *notationWorld {
	t.Helper()
	w := &notationWorld{env: newToolEnv(t), notation: toolPath(t, "notation"), host: startDistribution(t),
		certs: map[string]string{}, digests: map[string]string{}}
	w.config = filepath.Join(w.env.home, ".config")
	for _, key := range []string{"vouch.test", "other.test"} {
		args := []string{"cert", "generate-test", key}
		if key == "vouch.test" {
			args = append(args, "--default")
		}
		w.env.mustRun(t, "", w.notationEnv(), w.notation, args...)
		pem, err := os.ReadFile(filepath.Join(w.config, "notation", "localkeys", key+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		w.certs[key] = string(pem)
	}
	for _, tag := range []string{"jws", "cose", "other", "unsigned"} {
		w.digests[tag] = pushRandom(t, w.host, "app:"+tag)
	}
	w.sign(t, "jws", "--signature-format", "jws")
	w.sign(t, "cose", "--signature-format", "cose")
	w.sign(t, "other", "--key", "other.test")
	return w
}

func (w *notationWorld) sign(t *testing.T, tag string, args ...string) {
	t.Helper()
	args = append([]string{"sign", "--insecure-registry"}, args...)
	args = append(args, w.host+"/app@"+w.digests[tag])
	w.env.mustRun(t, "", w.notationEnv(), w.notation, args...)
}

// notaryPolicy is a ClusterPolicy verifying every image of the registry with one Notary
// certificates attestor trusting cert.
func notaryPolicy(host, cert string) string {
	indented := "                " + strings.ReplaceAll(strings.TrimSpace(cert), "\n", "\n                ")
	return fmt.Sprintf(`apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: check-notary}
spec:
  validationFailureAction: Enforce
  rules:
  - name: verify
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - type: Notary
      imageReferences: ["%s/*"]
      attestors:
      - entries:
        - certificates:
            cert: |-
%s
`, host, indented)
}

// TestIntegrationNotary verifies signatures made by the notation CLI.
func TestIntegrationNotary(t *testing.T) {
	t.Parallel()
	w := newNotationWorld(t)
	out := w.env.mustRun(t, "", w.notationEnv(), w.notation, "version")
	t.Logf("notation version:\n%s", out)
	if !strings.Contains(out, "v1.3.2") {
		t.Errorf("notation is not v1.3.2 (hack/tools.sh):\n%s", out)
	}
	checkNotationLayout(t, w)
	trusted := notaryPolicy(w.host, w.certs["vouch.test"])
	for _, c := range []struct {
		tag, want, msg string
		policy         string
	}{
		{"jws", "pass", "verified image signatures for", trusted},
		{"cose", "pass", "verified image signatures for", trusted},
		{"unsigned", "fail", "no signature is associated with", trusted},
		{"other", "fail", "does not contain any trusted certificate", trusted},
		{"other", "pass", "verified image signatures for", notaryPolicy(w.host, w.certs["other.test"])},
	} {
		vc := verifyCase{name: c.tag + "/" + c.want, image: w.host + "/app:" + c.tag, digest: w.digests[c.tag], want: c.want, msg: c.msg}
		t.Run(vc.name, func(t *testing.T) {
			t.Parallel()
			pod := podYAML(vc.image)
			t.Run("engine", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithEngine(t, c.policy, pod)) })
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithCLI(t, c.policy, pod)) })
		})
	}
}

// checkNotationLayout checks what notation wrote on a registry without the referrers API: a
// sha256-<hex> tag holding an index that lists the signature manifest with notation's
// artifact type, and that `notation verify` agrees with vouch on the signed images.
func checkNotationLayout(t *testing.T, w *notationWorld) {
	t.Helper()
	tag, err := name.NewTag(w.host + "/app:sha256-" + strings.TrimPrefix(w.digests["jws"], "sha256:"))
	if err != nil {
		t.Fatal(err)
	}
	ii, err := remote.Index(tag)
	if err != nil {
		t.Fatalf("reading the referrers tag index: %v", err)
	}
	idx, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].ArtifactType != "application/vnd.cncf.notary.signature" {
		t.Fatalf("referrers tag index %+v, want one notation signature", idx.Manifests)
	}
	policy := `{"version":"1.0","trustPolicies":[{"name":"vouch","registryScopes":["*"],
	  "signatureVerification":{"level":"strict"},"trustStores":["ca:vouch.test"],"trustedIdentities":["*"]}]}`
	path := filepath.Join(w.env.dir, "trustpolicy.json")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env.mustRun(t, "", w.notationEnv(), w.notation, "policy", "import", "--force", path)
	for tag, want := range map[string]bool{"jws": true, "cose": true, "other": false, "unsigned": false} {
		out, err := w.env.run(t, "", w.notationEnv(), w.notation, "verify", "--insecure-registry", w.host+"/app@"+w.digests[tag])
		if (err == nil) != want {
			t.Errorf("notation verify app:%s succeeded=%v, want %v:\n%s", tag, err == nil, want, out)
		}
	}
}
