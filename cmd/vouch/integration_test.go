//go:build integration

package main

// Integration tests: images in a real distribution registry (no referrers API, so cosign v3
// falls back to the referrers tag schema), signed with the real cosign v2 and v3 CLIs exactly as
// users sign offline, verified by vouch through the engine API (wired by newEngine, as `vouch
// apply` is) and through the built binary (`vouch apply -o json`), and cross-checked with
// `cosign verify`.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/report"
)

// keyPolicy is a ClusterPolicy whose one rule verifies every image of a Pod with one attestor
// set of static-key entries, offline (rekor.ignoreTlog, ctlog.ignoreSCT).
type keyPolicy struct {
	keys        []string          // one keys entry each; an element may hold several PEM blocks
	count       int               // the attestor set's count; 0 leaves it out (all entries)
	annotations map[string]string // each entry's required signature annotations
	repository  string            // verifyImages[0].repository (signatures stored elsewhere)
	cosignOCI11 bool              // verifyImages[0].cosignOCI11 (referrers first, then tags)
	typ         string            // verifyImages[0].type; "" is Cosign
}

func (p keyPolicy) yaml() string {
	var b strings.Builder
	b.WriteString(`apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: verify-signatures}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
`)
	typ := p.typ
	if typ == "" {
		typ = "Cosign"
	}
	fmt.Fprintf(&b, "      type: %s\n", typ)
	if p.repository != "" {
		fmt.Fprintf(&b, "      repository: %q\n", p.repository)
	}
	if p.cosignOCI11 {
		b.WriteString("      cosignOCI11: true\n")
	}
	b.WriteString("      attestors:\n      - ")
	if p.count > 0 {
		fmt.Fprintf(&b, "count: %d\n        ", p.count)
	}
	b.WriteString("entries:\n")
	for _, pem := range p.keys {
		b.WriteString("        - ")
		if len(p.annotations) > 0 {
			ann, _ := json.Marshal(p.annotations)
			fmt.Fprintf(&b, "annotations: %s\n          ", ann)
		}
		b.WriteString("keys:\n            rekor: {ignoreTlog: true}\n            ctlog: {ignoreSCT: true}\n            publicKeys: |-\n")
		for _, l := range strings.Split(strings.TrimSpace(pem), "\n") {
			b.WriteString("              " + l + "\n")
		}
	}
	return b.String()
}

func podYAML(image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: default}\nspec:\n  containers:\n  - {name: app, image: %q}\n", image)
}

// verifyCase is one Pod with one image (written host/repo:tag) evaluated against one policy.
type verifyCase struct {
	name   string
	image  string // host/repo:tag, as written in the Pod
	digest string // what the tag resolves to
	policy keyPolicy
	want   string // pass or fail
	msg    string // substring of the rule's message
}

// evaluateWithEngine evaluates the case through the engine API, wired as `vouch apply` wires it.
func evaluateWithEngine(t *testing.T, policyYAML, resourceYAML string) *report.Report {
	t.Helper()
	pdocs, err := manifest.Split("policy.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(pdocs)
	if err != nil {
		t.Fatalf("loading policy: %v\n%s", err, policyYAML)
	}
	rdocs, err := manifest.Split("pod.yaml", []byte(resourceYAML))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Objects(rdocs)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := newEngine(set, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := report.New()
	for _, o := range objs {
		resp, err := eng.Evaluate(context.Background(), engine.Request{Object: o.Value})
		if err != nil {
			t.Fatal(err)
		}
		rep.Add(resp)
	}
	return rep
}

// evaluateWithCLI runs the built binary: `vouch apply policy.yaml --resource pod.yaml -o json`.
// It checks the exit code against the report (0 without fail or error, else 1).
func evaluateWithCLI(t *testing.T, policyYAML, resourceYAML string) *report.Report {
	t.Helper()
	dir := t.TempDir()
	pol, res := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "pod.yaml")
	for path, body := range map[string]string{pol: policyYAML, res: resourceYAML} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(vouchBinary, "apply", pol, "--resource", res, "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	rep := &report.Report{}
	if err := json.Unmarshal(stdout.Bytes(), rep); err != nil {
		t.Fatalf("vouch apply exited %d with no JSON report (%v):\n%s\n%s", code, err, stdout.String(), stderr.String())
	}
	want := exitOK
	if rep.Failed() {
		want = exitFailed
	}
	if code != want {
		t.Errorf("vouch apply exited %d, want %d\nstderr:\n%s", code, want, stderr.String())
	}
	return rep
}

// checkVerifyCase checks the one result and the mutated Pod: the image pinned as
// host/repo:tag@digest and the verify-images annotation keyed host/repo@digest recording the
// outcome (Kyverno pins and records failures too, spec §2.6 step 4–5).
func checkVerifyCase(t *testing.T, c verifyCase, rep *report.Report) {
	t.Helper()
	if len(rep.Results) != 1 || len(rep.Resources) != 1 {
		t.Fatalf("want one result and one resource, got %+v", rep)
	}
	r := rep.Results[0]
	if r.Result != c.want || !strings.Contains(r.Message, c.msg) {
		t.Errorf("result %s %q, want %s containing %q", r.Result, r.Message, c.want, c.msg)
	}
	if got := r.Images[c.image]; got != c.want {
		t.Errorf("images[%s] = %q, want %s (images %v)", c.image, got, c.want, r.Images)
	}
	obj := rep.Resources[0]
	if got, want := atPointer(obj, "/spec/containers/0/image"), c.image+"@"+c.digest; got != want {
		t.Errorf("image = %v, want %s", got, want)
	}
	tag, err := name.NewTag(c.image)
	if err != nil {
		t.Fatal(err)
	}
	key := tag.Context().Name() + "@" + c.digest
	if got, want := atPointer(obj, "/metadata/annotations/"+patch.Escape(patch.AnnotationVerified)), fmt.Sprintf(`{%q:%q}`, key, c.want); got != want {
		t.Errorf("%s = %v, want %s", patch.AnnotationVerified, got, want)
	}
}

// runVerifyCases runs every case through the engine and the CLI, in parallel.
func runVerifyCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pol, pod := c.policy.yaml(), podYAML(c.image)
			t.Run("engine", func(t *testing.T) { checkVerifyCase(t, c, evaluateWithEngine(t, pol, pod)) })
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, c, evaluateWithCLI(t, pol, pod)) })
		})
	}
}

// TestIntegrationToolVersions logs the versions of the tools the integration tests run, and
// checks that cosign and cosign3 are the majors their names promise.
func TestIntegrationToolVersions(t *testing.T) {
	t.Parallel()
	e := newToolEnv(t)
	v2, v3 := e.toolVersion(t, toolPath(t, "cosign")), e.toolVersion(t, toolPath(t, "cosign3"))
	out := e.mustRun(t, "", nil, toolPath(t, "registry"), "--version")
	t.Logf("cosign %s, cosign3 %s, registry: %s", v2, v3, strings.TrimSpace(out))
	if !strings.HasPrefix(v2, "v2.") || !strings.HasPrefix(v3, "v3.") {
		t.Errorf("cosign is %s and cosign3 is %s: want v2.x and v3.x (hack/tools.sh)", v2, v3)
	}
}

// cosignV2World is a registry holding images signed with the cosign v2 CLI:
//
//	app:signed     signed with k1, -a env=prod
//	app:unsigned   no signature
//	app:elsewhere  signed with k1 into host/sigs (COSIGN_REPOSITORY)
//	app:twice      signed with k2 (-a env=prod) and with k1 (-a env=dev): two layers in one .sig
//	app:oci11      signed with k1 as an OCI 1.1 referrer (cosign's experimental layout; in the
//	               sha256-<hex> referrers tag index, as distribution has no referrers API)
type cosignV2World struct {
	env                                       *toolEnv
	cosign                                    string
	host                                      string
	k1, k2                                    keyPair
	signed, unsigned, elsewhere, oci11, twice string // digests
}

func newCosignV2World(t *testing.T) *cosignV2World {
	t.Helper()
	w := &cosignV2World{env: newToolEnv(t), cosign: toolPath(t, "cosign"), host: startDistribution(t)}
	w.k1 = w.env.generateKeyPair(t, w.cosign, "k1")
	w.k2 = w.env.generateKeyPair(t, w.cosign, "k2")
	w.signed = pushRandom(t, w.host, "app:signed")
	w.unsigned = pushRandom(t, w.host, "app:unsigned")
	w.elsewhere = pushRandom(t, w.host, "app:elsewhere")
	w.oci11 = pushRandom(t, w.host, "app:oci11")
	w.twice = pushRandom(t, w.host, "app:twice")
	w.env.mustRun(t, "", nil, w.cosign, "sign", "--key", w.k1.private, "--tlog-upload=false", "-y", "-a", "env=prod", w.host+"/app@"+w.signed)
	w.env.mustRun(t, "", []string{"COSIGN_REPOSITORY=" + w.host + "/sigs"}, w.cosign, "sign", "--key", w.k1.private, "--tlog-upload=false", "-y", w.host+"/app@"+w.elsewhere)
	w.env.mustRun(t, "", nil, w.cosign, "sign", "--key", w.k2.private, "--tlog-upload=false", "-y", "-a", "env=prod", w.host+"/app@"+w.twice)
	w.env.mustRun(t, "", nil, w.cosign, "sign", "--key", w.k1.private, "--tlog-upload=false", "-y", "-a", "env=dev", w.host+"/app@"+w.twice)
	w.env.mustRun(t, "", []string{"COSIGN_EXPERIMENTAL=1"}, w.cosign, "sign", "--key", w.k1.private, "--tlog-upload=false", "--registry-referrers-mode=oci-1-1", "-y", w.host+"/app@"+w.oci11)
	return w
}

// TestIntegrationCosignV2 verifies signatures made by the cosign v2 CLI.
func TestIntegrationCosignV2(t *testing.T) {
	t.Parallel()
	w := newCosignV2World(t)
	signed, unsigned, elsewhere, oci11 := w.host+"/app:signed", w.host+"/app:unsigned", w.host+"/app:elsewhere", w.host+"/app:oci11"
	twice := w.host + "/app:twice"
	prod, dev := map[string]string{"env": "prod"}, map[string]string{"env": "dev"}
	k1, k2 := w.k1.pem, w.k2.pem
	runVerifyCases(t, []verifyCase{
		{"signed", signed, w.signed, keyPolicy{keys: []string{k1}}, "pass", "verified image signatures for " + signed},
		{"unsigned", unsigned, w.unsigned, keyPolicy{keys: []string{k1}}, "fail", ".attestors[0].entries[0].keys: no signatures found"},
		{"wrong key", signed, w.signed, keyPolicy{keys: []string{k2}}, "fail", ".attestors[0].entries[0].keys: no matching signatures: "},
		{"annotations match", signed, w.signed, keyPolicy{keys: []string{k1}, annotations: prod}, "pass", "verified image signatures for " + signed},
		{"annotations mismatch", signed, w.signed, keyPolicy{keys: []string{k1}, annotations: dev}, "fail", "no signature matched the required annotations"},
		{"annotation absent from payload", signed, w.signed, keyPolicy{keys: []string{k1}, annotations: map[string]string{"team": "a"}}, "fail", "no signature matched the required annotations"},
		{"COSIGN_REPOSITORY with policy repository", elsewhere, w.elsewhere, keyPolicy{keys: []string{k1}, repository: w.host + "/sigs"}, "pass", "verified image signatures for " + elsewhere},
		{"COSIGN_REPOSITORY without policy repository", elsewhere, w.elsewhere, keyPolicy{keys: []string{k1}}, "fail", "no signatures found"},
		{"policy repository without the signature", signed, w.signed, keyPolicy{keys: []string{k1}, repository: w.host + "/sigs"}, "fail", "no signatures found"},
		{"multi-key PEM, count 1", signed, w.signed, keyPolicy{keys: []string{k2 + k1}, count: 1}, "pass", "verified image signatures for " + signed},
		{"multi-key PEM, all keys", signed, w.signed, keyPolicy{keys: []string{k2 + k1}}, "fail", ".attestors[0].entries[0].keys: no matching signatures"},
		{"two entries, count 1", signed, w.signed, keyPolicy{keys: []string{k2, k1}, count: 1}, "pass", "verified image signatures for " + signed},
		// Two signatures: annotations are matched only on payloads the key verified.
		{"two signatures, k1 and its annotation", twice, w.twice, keyPolicy{keys: []string{k1}, annotations: dev}, "pass", "verified image signatures for " + twice},
		{"two signatures, k1 and the other signature's annotation", twice, w.twice, keyPolicy{keys: []string{k1}, annotations: prod}, "fail", "no signature matched the required annotations"},
		{"two signatures, k2 and its annotation", twice, w.twice, keyPolicy{keys: []string{k2}, annotations: prod}, "pass", "verified image signatures for " + twice},
		{"OCI 1.1 referrer with cosignOCI11", oci11, w.oci11, keyPolicy{keys: []string{k1}, cosignOCI11: true}, "pass", "verified image signatures for " + oci11},
		// vouch's type Cosign reads every layout (docs/COMPATIBILITY.md): Kyverno fails this one.
		{"OCI 1.1 referrer without cosignOCI11", oci11, w.oci11, keyPolicy{keys: []string{k1}}, "pass", "verified image signatures for " + oci11},
		{"cosignOCI11 falls back to the .sig tag", signed, w.signed, keyPolicy{keys: []string{k1}, cosignOCI11: true}, "pass", "verified image signatures for " + signed},
	})
}

// TestIntegrationCosignVerifyAgrees: for the same image, key and options, vouch passes exactly
// when `cosign verify` (v2, offline) does — the layouts cosign writes and reads are the ones
// vouch reads. It includes an image signed by vouch's own test fixture (internal/fixture,
// behind every unit and conformance test), served by an in-process registry.
func TestIntegrationCosignVerifyAgrees(t *testing.T) {
	t.Parallel()
	w := newCosignV2World(t)

	fx := fixture.StartRegistry(false, nil)
	t.Cleanup(fx.Close)
	fxKey, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	fxDigest, err := fx.Push(context.Background(), "fixture:signed")
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.Sign(context.Background(), "fixture", fxDigest, fxKey.Private, map[string]string{"env": "prod"}, ""); err != nil {
		t.Fatal(err)
	}
	fxPub := filepath.Join(t.TempDir(), "fixture.pub")
	if err := os.WriteFile(fxPub, []byte(fxKey.PEM), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name        string
		image       string // host/repo@digest
		pub, pem    string // key file for cosign, PEM for vouch
		annotations map[string]string
		sigRepo     string // COSIGN_REPOSITORY for cosign, repository for vouch
		want        bool
	}{
		{"signed", w.host + "/app@" + w.signed, w.k1.public, w.k1.pem, nil, "", true},
		{"unsigned", w.host + "/app@" + w.unsigned, w.k1.public, w.k1.pem, nil, "", false},
		{"wrong key", w.host + "/app@" + w.signed, w.k2.public, w.k2.pem, nil, "", false},
		{"annotations match", w.host + "/app@" + w.signed, w.k1.public, w.k1.pem, map[string]string{"env": "prod"}, "", true},
		{"annotations mismatch", w.host + "/app@" + w.signed, w.k1.public, w.k1.pem, map[string]string{"env": "dev"}, "", false},
		{"signature repository", w.host + "/app@" + w.elsewhere, w.k1.public, w.k1.pem, nil, w.host + "/sigs", true},
		{"signature elsewhere, not looked for", w.host + "/app@" + w.elsewhere, w.k1.public, w.k1.pem, nil, "", false},
		{"vouch fixture signature", fx.Host + "/fixture@" + fxDigest, fxPub, fxKey.PEM, map[string]string{"env": "prod"}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"verify", "--key", c.pub, "--insecure-ignore-tlog=true", "--trusted-root", w.env.trustedRoot}
			for k, v := range c.annotations {
				args = append(args, "-a", k+"="+v)
			}
			var env []string
			if c.sigRepo != "" {
				env = append(env, "COSIGN_REPOSITORY="+c.sigRepo)
			}
			out, err := w.env.run(t, "", env, w.cosign, append(args, c.image)...)
			cosignPass := err == nil
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}

			rep := evaluateWithEngine(t, keyPolicy{keys: []string{c.pem}, annotations: c.annotations, repository: c.sigRepo}.yaml(), podYAML(c.image))
			vouchPass := len(rep.Results) == 1 && rep.Results[0].Result == "pass"
			if cosignPass != c.want || vouchPass != c.want {
				t.Errorf("cosign verify passed: %v, vouch passed: %v, want both %v\ncosign:\n%s\nvouch: %+v", cosignPass, vouchPass, c.want, out, rep.Results)
			}
		})
	}
}

// TestIntegrationCosignV3 verifies signatures made by the cosign v3 CLI. v3 refuses
// --tlog-upload=false unless --use-signing-config=false, and --new-bundle-format=false unless it
// also signs without a signing config. Its default, a Sigstore bundle stored as an OCI referrer,
// is made offline either with an empty signing config (no Rekor, no TSA) and an empty trusted
// root (no TUF), or with --use-signing-config=false --tlog-upload=false.
func TestIntegrationCosignV3(t *testing.T) {
	t.Parallel()
	e, cosign3, host := newToolEnv(t), toolPath(t, "cosign3"), startDistribution(t)
	key := e.generateKeyPair(t, cosign3, "k3")
	legacy, bundle, bundle2 := pushRandom(t, host, "v3/legacy:1"), pushRandom(t, host, "v3/bundle:1"), pushRandom(t, host, "v3/bundle2:1")

	// (a) The legacy layout: tag sha256-<hex>.sig, simple-signing payload.
	e.mustRun(t, "", nil, cosign3, "sign", "--key", key.private,
		"--new-bundle-format=false", "--use-signing-config=false", "--tlog-upload=false",
		"-y", "-a", "env=prod", host+"/v3/legacy@"+legacy)

	// (b) The new bundle format: a referrer (here, in the sha256-<hex> referrers tag index, as
	// distribution has no referrers API) holding a Sigstore bundle v0.3 with a DSSE envelope.
	signingConfig := filepath.Join(e.dir, "signing-config.json")
	e.mustRun(t, "", nil, cosign3, "signing-config", "create", "--out", signingConfig)
	e.mustRun(t, "", nil, cosign3, "sign", "--key", key.private,
		"--signing-config", signingConfig, "--trusted-root", e.trustedRoot,
		"-y", host+"/v3/bundle@"+bundle)
	checkV3BundleLayout(t, host+"/v3/bundle", bundle)
	// The same layout without a signing config: no TSA, no Rekor, nothing fetched.
	e.mustRun(t, "", nil, cosign3, "sign", "--key", key.private,
		"--use-signing-config=false", "--tlog-upload=false", "-y", host+"/v3/bundle2@"+bundle2)
	checkV3BundleLayout(t, host+"/v3/bundle2", bundle2)

	// The signatures are valid: cosign v3 itself verifies each offline.
	for _, image := range []string{host + "/v3/legacy@" + legacy, host + "/v3/bundle@" + bundle, host + "/v3/bundle2@" + bundle2} {
		e.mustRun(t, "", nil, cosign3, "verify", "--key", key.public, "--insecure-ignore-tlog=true", "--trusted-root", e.trustedRoot, image)
	}

	legacyImage, bundleImage, bundle2Image := host+"/v3/legacy:1", host+"/v3/bundle:1", host+"/v3/bundle2:1"
	runVerifyCases(t, []verifyCase{
		{"legacy layout", legacyImage, legacy, keyPolicy{keys: []string{key.pem}}, "pass", "verified image signatures for " + legacyImage},
		{"legacy layout, annotations", legacyImage, legacy, keyPolicy{keys: []string{key.pem}, annotations: map[string]string{"env": "prod"}}, "pass", "verified image signatures for " + legacyImage},
		// Kyverno's type: Cosign reads only the legacy tag scheme (spec §3.10, quirk 14); vouch's
		// reads cosign v3's bundles too (docs/COMPATIBILITY.md), here from the referrers tag
		// schema, distribution having no referrers API.
		{"new bundle format, type Cosign", bundleImage, bundle, keyPolicy{keys: []string{key.pem}}, "pass", "verified image signatures for " + bundleImage},
		{"new bundle format, cosignOCI11", bundleImage, bundle, keyPolicy{keys: []string{key.pem}, cosignOCI11: true}, "pass", "verified image signatures for " + bundleImage},
		{"new bundle format without signing config, type Cosign", bundle2Image, bundle2, keyPolicy{keys: []string{key.pem}}, "pass", "verified image signatures for " + bundle2Image},
		{"new bundle format, type SigstoreBundle", bundleImage, bundle, keyPolicy{keys: []string{key.pem}, typ: "SigstoreBundle"}, "pass", "verified image signatures for " + bundleImage},
		{"new bundle format without signing config, type SigstoreBundle", bundle2Image, bundle2, keyPolicy{keys: []string{key.pem}, typ: "SigstoreBundle"}, "pass", "verified image signatures for " + bundle2Image},
		{"legacy layout is not read by type SigstoreBundle", legacyImage, legacy, keyPolicy{keys: []string{key.pem}, typ: "SigstoreBundle"}, "fail", ".attestors[0].entries[0].keys: sigstore bundle verification failed: no matching signatures found"},
	})
}

// checkV3BundleLayout checks what cosign v3 wrote for a bundle signature on a registry without
// the referrers API: no .sig tag, and a sha256-<hex> tag holding an index of one manifest with
// the Sigstore bundle artifact type.
func checkV3BundleLayout(t *testing.T, repo, digest string) {
	t.Helper()
	hex := strings.TrimPrefix(digest, "sha256:")
	sigTag, err := name.NewTag(repo + ":sha256-" + hex + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(sigTag); err == nil {
		t.Errorf("cosign v3 wrote a legacy .sig tag for a new-bundle-format signature")
	}
	indexTag, err := name.NewTag(repo + ":sha256-" + hex)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(indexTag)
	if err != nil {
		t.Fatalf("reading the referrers tag index: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || !strings.HasPrefix(m.Manifests[0].ArtifactType, "application/vnd.dev.sigstore.bundle") {
		t.Errorf("referrers tag index = %+v, want one Sigstore bundle", m.Manifests)
	}
}
