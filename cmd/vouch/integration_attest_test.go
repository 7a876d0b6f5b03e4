//go:build integration

package main

// Integration tests of attestations: images in a real distribution registry attested with the
// real cosign v2 CLI exactly as users attest offline (`cosign attest --key K --type T
// --predicate P --tlog-upload=false -y`), verified by vouch through the engine API and the
// built binary with conditions, and cross-checked with `cosign verify-attestation`.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouchproject/vouch/internal/fixture"
)

// slsaPredicate is an SLSA v0.2 provenance predicate as a builder writes it.
const slsaPredicate = `{
  "builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0"},
  "buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
  "invocation": {"configSource": {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}, "entryPoint": ".github/workflows/build.yml"}},
  "metadata": {"buildInvocationID": "1234", "completeness": {"parameters": true, "environment": false, "materials": false}, "reproducible": false},
  "materials": [{"uri": "git+https://github.com/acme/app", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}}]
}`

// reviewPredicate is a custom predicate (cosign attest --type <URI>: the JSON is the predicate).
const reviewPredicate = `{"repo": {"uri": "https://github.com/acme/app", "branch": "main"}, "approvals": 2}`

const customReviewType = "https://example.com/CodeReview/v1"

// attestPolicy is a ClusterPolicy with one attestation of type typ, checked with the public
// key pem offline, under the given conditions (YAML, indented for the attestation).
func attestPolicy(typ, pem, conditions string) string {
	var b strings.Builder
	b.WriteString(`apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: attested}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: check-attestation
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      attestations:
      - type: ` + typ + `
        attestors:
        - entries:
          - keys:
              rekor: {ignoreTlog: true}
              ctlog: {ignoreSCT: true}
              publicKeys: |-
`)
	for _, l := range strings.Split(strings.TrimSpace(pem), "\n") {
		b.WriteString("                " + l + "\n")
	}
	b.WriteString(conditions)
	return b.String()
}

const slsaConditions = `        conditions:
        - all:
          - key: "{{ builder.id }}"
            operator: Equals
            value: "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v*"
          - key: "{{ buildType }}"
            operator: Equals
            value: "https://github.com/slsa-framework/slsa-github-generator/container@v1"
          - key: "{{ regex_match('^git\\+https://github.com/acme/', invocation.configSource.uri) }}"
            operator: Equals
            value: true
`

// cosignAttestWorld is a distribution registry holding images attested with the cosign v2 CLI:
//
//	app:slsa     SLSA provenance (--type slsaprovenance) by k1
//	app:review   custom predicate type https://example.com/CodeReview/v1 by k1
//	app:custom   cosign's generic type (--type custom: {"Data": "<text>", "Timestamp": ...}) by k1
//	app:none     no attestation
type cosignAttestWorld struct {
	env                        *toolEnv
	cosign                     string
	host                       string
	k1, k2                     keyPair
	slsa, review, custom, none string // digests
}

func newCosignAttestWorld(t *testing.T) *cosignAttestWorld {
	t.Helper()
	w := &cosignAttestWorld{env: newToolEnv(t), cosign: toolPath(t, "cosign"), host: startDistribution(t)}
	w.k1 = w.env.generateKeyPair(t, w.cosign, "k1")
	w.k2 = w.env.generateKeyPair(t, w.cosign, "k2")
	w.slsa = pushRandom(t, w.host, "app:slsa")
	w.review = pushRandom(t, w.host, "app:review")
	w.custom = pushRandom(t, w.host, "app:custom")
	w.none = pushRandom(t, w.host, "app:none")
	predicates := map[string]string{"slsa.json": slsaPredicate, "review.json": reviewPredicate, "notes.txt": "reviewed by the release team"}
	for file, body := range predicates {
		if err := os.WriteFile(filepath.Join(w.env.dir, file), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	attest := func(typ, predicate, digest string) {
		w.env.mustRun(t, "", nil, w.cosign, "attest", "--key", w.k1.private, "--type", typ, "--predicate", predicate,
			"--tlog-upload=false", "-y", w.host+"/app@"+digest)
	}
	attest("slsaprovenance", "slsa.json", w.slsa)
	attest(customReviewType, "review.json", w.review)
	attest("custom", "notes.txt", w.custom)
	return w
}

// TestIntegrationCosignAttest verifies attestations made by the cosign v2 CLI, with conditions,
// through the engine and the built binary.
func TestIntegrationCosignAttest(t *testing.T) {
	t.Parallel()
	w := newCosignAttestWorld(t)
	const slsa = "https://slsa.dev/provenance/v0.2"
	img := func(tag string) string { return w.host + "/app:" + tag }
	byDigest := func(d string) string { return w.host + "/app@" + d }
	prefix := "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: "
	k1, k2 := w.k1.pem, w.k2.pem
	reviewConditions := "        conditions:\n        - all:\n          - {key: \"{{ repo.branch }}\", operator: Equals, value: main}\n" +
		"          - {key: \"{{ approvals }}\", operator: GreaterThanOrEquals, value: 2}\n"
	customConditions := "        conditions:\n        - all:\n          - {key: \"{{ Data }}\", operator: Equals, value: \"reviewed by *\"}\n"
	cases := []struct {
		name, image, digest, policy, want, msg string
	}{
		{"slsaprovenance with three conditions", img("slsa"), w.slsa, attestPolicy(slsa, k1, slsaConditions),
			"pass", "verified image attestations for " + byDigest(w.slsa)},
		{"slsaprovenance, a condition false", img("slsa"), w.slsa,
			attestPolicy(slsa, k1, strings.Replace(slsaConditions, "refs/tags/v*", "refs/tags/v2*", 1)),
			"fail", prefix + ".attestations[0].attestors[0].entries[0].keys: attestation checks failed for " + byDigest(w.slsa) + " and predicate " + slsa + ": "},
		{"slsaprovenance, wrong key", img("slsa"), w.slsa, attestPolicy(slsa, k2, slsaConditions),
			"fail", prefix + "no matching attestations: "},
		{"custom predicate type", img("review"), w.review, attestPolicy(customReviewType, k1, reviewConditions),
			"pass", "verified image attestations for " + byDigest(w.review)},
		{"SLSA required, only a custom type attested", img("review"), w.review, attestPolicy(slsa, k1, ""),
			"fail", prefix + ".attestations[0].attestors[0].entries[0].keys: attestions not found for predicate type " + slsa},
		{"cosign custom type: Data holds the text", img("custom"), w.custom, attestPolicy("https://cosign.sigstore.dev/attestation/v1", k1, customConditions),
			"pass", "verified image attestations for " + byDigest(w.custom)},
		{"no attestation", img("none"), w.none, attestPolicy(slsa, k1, ""),
			"fail", prefix + "no matching attestations: no attestations found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vc := verifyCase{name: c.name, image: c.image, digest: c.digest, want: c.want, msg: c.msg}
			pod := podYAML(c.image)
			t.Run("engine", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithEngine(t, c.policy, pod)) })
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithCLI(t, c.policy, pod)) })
		})
	}
}

// TestIntegrationCosignVerifyAttestationAgrees: for the same image, key and predicate type,
// vouch (without conditions) passes exactly when `cosign verify-attestation` (v2, offline) does.
// It includes images attested by vouch's own test fixture (internal/fixture, behind every unit
// and conformance test of attestations), served by an in-process registry.
func TestIntegrationCosignVerifyAttestationAgrees(t *testing.T) {
	t.Parallel()
	w := newCosignAttestWorld(t)
	const slsa = "https://slsa.dev/provenance/v0.2"

	fx := fixture.StartRegistry(false, nil)
	t.Cleanup(fx.Close)
	fxKey, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fxGood, err := fx.Push(ctx, "fixture:good")
	if err != nil {
		t.Fatal(err)
	}
	fxCopied, err := fx.Push(ctx, "fixture:copied")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ digest, subject string }{{fxGood, ""}, {fxCopied, fxGood}} {
		spec := fixture.AttestSpec{Key: fxKey.Private, PredicateType: slsa, SubjectDigest: a.subject,
			Predicate: map[string]any{"builder": map[string]any{"id": "https://github.com/acme/builder"}, "buildType": "https://example.com/make@v1"}}
		if err := fx.Attest(ctx, "fixture", a.digest, spec); err != nil {
			t.Fatal(err)
		}
	}
	fxPub := keyPair{public: filepath.Join(t.TempDir(), "fixture.pub"), pem: fxKey.PEM}
	if err := os.WriteFile(fxPub.public, []byte(fxKey.PEM), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		image    string
		key      keyPair
		flagType string // cosign verify-attestation --type
		typ      string // the policy's type
		want     bool
	}{
		{"slsaprovenance", w.host + "/app@" + w.slsa, w.k1, "slsaprovenance", slsa, true},
		{"wrong key", w.host + "/app@" + w.slsa, w.k2, "slsaprovenance", slsa, false},
		{"custom predicate type", w.host + "/app@" + w.review, w.k1, customReviewType, customReviewType, true},
		{"type not attested", w.host + "/app@" + w.review, w.k1, "slsaprovenance", slsa, false},
		{"no attestation", w.host + "/app@" + w.none, w.k1, "slsaprovenance", slsa, false},
		{"vouch fixture attestation", fx.Host + "/fixture@" + fxGood, fxPub, "slsaprovenance", slsa, true},
		{"vouch fixture, statement for another digest", fx.Host + "/fixture@" + fxCopied, fxPub, "slsaprovenance", slsa, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			image := c.image
			out, err := w.env.run(t, "", nil, w.cosign, "verify-attestation", "--key", c.key.public, "--type", c.flagType,
				"--insecure-ignore-tlog=true", "--trusted-root", w.env.trustedRoot, image)
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			cosignPass := err == nil
			rep := evaluateWithEngine(t, attestPolicy(c.typ, c.key.pem, ""), podYAML(image))
			vouchPass := len(rep.Results) == 1 && rep.Results[0].Result == "pass"
			if cosignPass != c.want || vouchPass != c.want {
				t.Errorf("cosign verify-attestation passed: %v, vouch passed: %v, want both %v\ncosign:\n%s\nvouch: %+v", cosignPass, vouchPass, c.want, out, rep.Results)
			}
		})
	}
}

// TestIntegrationCosignV3Attest verifies attestations made by the cosign v3 CLI, whose default
// is a Sigstore bundle stored as an OCI referrer (here in the sha256-<hex> referrers tag index,
// distribution having no referrers API), made offline without a signing config, and its
// legacy layout (--new-bundle-format=false: the .att tag). Type Cosign reads both (a vouch
// extension), type SigstoreBundle only the bundle; `cosign verify-attestation` (v3) agrees.
func TestIntegrationCosignV3Attest(t *testing.T) {
	t.Parallel()
	e, cosign3, host := newToolEnv(t), toolPath(t, "cosign3"), startDistribution(t)
	key := e.generateKeyPair(t, cosign3, "k3")
	other := e.generateKeyPair(t, cosign3, "other")
	if err := os.WriteFile(filepath.Join(e.dir, "slsa.json"), []byte(slsaPredicate), 0o600); err != nil {
		t.Fatal(err)
	}
	bundle, legacy := pushRandom(t, host, "v3/bundle:1"), pushRandom(t, host, "v3/legacy:1")
	e.mustRun(t, "", nil, cosign3, "attest", "--key", key.private, "--type", "slsaprovenance", "--predicate", "slsa.json",
		"--use-signing-config=false", "--tlog-upload=false", "-y", host+"/v3/bundle@"+bundle)
	e.mustRun(t, "", nil, cosign3, "attest", "--key", key.private, "--type", "slsaprovenance", "--predicate", "slsa.json",
		"--new-bundle-format=false", "--use-signing-config=false", "--tlog-upload=false", "-y", host+"/v3/legacy@"+legacy)
	for _, image := range []string{host + "/v3/bundle@" + bundle, host + "/v3/legacy@" + legacy} {
		e.mustRun(t, "", nil, cosign3, "verify-attestation", "--key", key.public, "--type", "slsaprovenance",
			"--insecure-ignore-tlog=true", "--trusted-root", e.trustedRoot, image)
	}
	const slsa = "https://slsa.dev/provenance/v0.2"
	withType := func(policy, typ string) string {
		return strings.Replace(policy, "    - imageReferences: [\"*\"]\n", "    - imageReferences: [\"*\"]\n      type: "+typ+"\n", 1)
	}
	bundleImage, legacyImage := host+"/v3/bundle:1", host+"/v3/legacy:1"
	prefix := "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: "
	cases := []struct {
		name, image, digest, policy, want, msg string
	}{
		{"bundle, type Cosign", bundleImage, bundle, attestPolicy(slsa, key.pem, slsaConditions), "pass", "verified image attestations for " + host + "/v3/bundle@" + bundle},
		{"bundle, type SigstoreBundle", bundleImage, bundle, withType(attestPolicy(slsa, key.pem, slsaConditions), "SigstoreBundle"), "pass", "verified image attestations for " + host + "/v3/bundle@" + bundle},
		{"bundle, wrong key", bundleImage, bundle, attestPolicy(slsa, other.pem, ""), "fail", prefix + "no matching attestations: "},
		{"bundle, condition false", bundleImage, bundle, attestPolicy(slsa, key.pem, strings.Replace(slsaConditions, "refs/tags/v*", "refs/tags/v2*", 1)),
			"fail", "attestation checks failed for " + host + "/v3/bundle@" + bundle},
		{"legacy layout, type Cosign", legacyImage, legacy, attestPolicy(slsa, key.pem, slsaConditions), "pass", "verified image attestations for " + host + "/v3/legacy@" + legacy},
		{"legacy layout is not read by type SigstoreBundle", legacyImage, legacy, withType(attestPolicy(slsa, key.pem, ""), "SigstoreBundle"), "fail", prefix + "no matching attestations: no attestations found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vc := verifyCase{name: c.name, image: c.image, digest: c.digest, want: c.want, msg: c.msg}
			pod := podYAML(c.image)
			t.Run("engine", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithEngine(t, c.policy, pod)) })
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithCLI(t, c.policy, pod)) })
		})
	}
}
