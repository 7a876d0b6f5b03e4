package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/manifest"
)

func testPublicKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// insecurePolicy uses every insecure setting once, plus secure spellings of each that must
// not be reported.
const insecurePolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: insecure}
spec:
  validationFailureAction: Enforce
  failurePolicy: Ignore
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*", "ghcr.io/org/*", "*.example.com/*"]
      skipImageReferences: ["*/trusted/*", "ghcr.io/org/base:*"]
      imageRegistryCredentials: {allowInsecureRegistry: true}
      mutateDigest: false
      attestors:
      - entries:
        - keys:
            publicKeys: |-
KEY
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
        - keyless:
            subjectRegExp: 'https://github\.com/org/.*'
            issuerRegExp: '^https://token\.actions\.githubusercontent\.com$'
            rekor: {url: https://rekor.sigstore.dev}
        - attestor:
            entries:
            - keyless:
                subject: alice@example.com
                issuerRegExp: '^https://accounts\.example\.com\$'
                rekor: {url: https://rekor.sigstore.dev}
`

func insecureYAML(t *testing.T) string {
	key := testPublicKey(t)
	indented := "              " + strings.ReplaceAll(strings.TrimSpace(key), "\n", "\n              ")
	return strings.Replace(insecurePolicy, "KEY", indented, 1)
}

func TestInsecureFindsEverySettingWithItsPath(t *testing.T) {
	set := load(t, insecureYAML(t))
	var got []string
	for _, f := range set.Policies()[0].Insecure {
		got = append(got, string(f.Setting)+" "+f.Path)
	}
	want := []string{
		"failurePolicyIgnore spec.failurePolicy",
		"hostWildcard spec.rules[0].verifyImages[0].imageReferences[2]",
		"hostWildcard spec.rules[0].verifyImages[0].skipImageReferences[0]",
		"allowInsecureRegistry spec.rules[0].verifyImages[0].imageRegistryCredentials.allowInsecureRegistry",
		"ignoreTlog spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.rekor.ignoreTlog",
		"ignoreSCT spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.ctlog.ignoreSCT",
		"unanchoredRegExp spec.rules[0].verifyImages[0].attestors[0].entries[1].keyless.subjectRegExp",
		"unanchoredRegExp spec.rules[0].verifyImages[0].attestors[0].entries[2].attestor.entries[0].keyless.issuerRegExp",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestSecurePolicyHasNoFindings(t *testing.T) {
	set := load(t, `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: fine}
spec:
  validationFailureAction: Enforce
  webhookConfiguration: {failurePolicy: Fail}
  failurePolicy: Ignore
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*", "ghcr.io/*", "localhost:5000/app:*"]
      skipImageReferences: ["ghcr.io/org/base*"]
      mutateDigest: false
`)
	if f := set.Policies()[0].Insecure; len(f) != 0 {
		t.Errorf("findings on a secure policy (webhookConfiguration.failurePolicy wins over spec.failurePolicy): %v", f)
	}
}

func TestAnchored(t *testing.T) {
	for expr, want := range map[string]bool{
		`^a$`: true, `\Aa\z`: true, `^https://x\.io/.*$`: true, `^(a|b)$`: true,
		`a$`: false, `^a`: false, `a`: false, `^a\$`: false, `^a\\$`: true, `.*@example\.com`: false,
	} {
		if got := Anchored(expr); got != want {
			t.Errorf("Anchored(%q) = %v, want %v", expr, got, want)
		}
	}
}

// TestHostWildcardExamplesMatch checks the definition against Kyverno's matcher: for every
// reported pattern, the example reference on another registry really matches it.
func TestHostWildcardExamplesMatch(t *testing.T) {
	for pattern, want := range map[string]bool{
		"*.example.com/*": true, "*/app": true, "ghcr.io*": true, "reg?.io/*": true, "*": true,
		"ghcr.io/*": false, "ghcr.io/org*": false, "localhost:5000/*": false, "docker.io/library/nginx": false,
	} {
		if got := HostWildcard(pattern); got != want {
			t.Errorf("HostWildcard(%q) = %v, want %v", pattern, got, want)
		}
		if !want {
			continue
		}
		ex := HostWildcardExample(pattern)
		if !imageref.Match(pattern, ex) {
			t.Errorf("example %q does not match %q", ex, pattern)
		}
		if strings.SplitN(pattern, "/", 2)[0] == strings.SplitN(ex, "/", 2)[0] {
			t.Errorf("example %q of %q is on the same host", ex, pattern)
		}
	}
}

// TestCheckMessagesAreApplys checks that Check rejects with exactly the lines `vouch apply`
// prints (after the location), and warns with field paths.
func TestCheckMessagesAreApplys(t *testing.T) {
	bad := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: bad}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      attestors: [{count: 2, entries: [{keys: {publicKeys: "not a key"}}]}]
    - mutateDigest: false
`
	docs, err := manifest.Split("bad.yaml", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, _, applyErr := LoadDocuments(docs)
	if applyErr == nil {
		t.Fatal("apply accepted the policy")
	}
	_, checkErr := Check(docs[0].JSON)
	if checkErr == nil || checkErr.Error() != Problems(applyErr) {
		t.Fatalf("Check error is not apply's:\ncheck: %v\napply: %v", checkErr, applyErr)
	}
	// apply prints "<location>: " and the problems, indented one per line.
	if want := strings.ReplaceAll("\n"+checkErr.Error(), "\n", "\n  "); !strings.HasSuffix(applyErr.Error(), want) {
		t.Errorf("apply's error %q does not end with the problems %q", applyErr, want)
	}
	if !strings.Contains(checkErr.Error(), `spec.rules[0].verifyImages[0].attestors[0]`) || !strings.Contains(checkErr.Error(), "\n") {
		t.Errorf("no field path in %v", checkErr)
	}

	data, err := yaml.YAMLToJSON([]byte(insecureYAML(t)))
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := Check(data)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{
		"spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.rekor.ignoreTlog: true accepts signatures without a transparency-log entry",
		`spec.rules[0].verifyImages[0].skipImageReferences[0]: "*/trusted/*" does not fix the registry host`,
		"evil.example/x/trusted/x",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
}

// TestTrustFromRequest: trust material that reads the object being admitted, directly or
// through context entries (one built on another), is reported; material from the namespace,
// the user or a context entry of the policy's own values is not.
func TestTrustFromRequest(t *testing.T) {
	set := load(t, `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: teamKeys
      variable: {value: {a: x}}
    - name: owner
      variable: {jmesPath: request.object.metadata.labels.owner}
    - name: ownerKey
      variable: {jmesPath: 'teamKeys."{{ owner }}"'}
    - name: nsKey
      variable: {jmesPath: 'teamKeys."{{ request.namespace }}"'}
    - name: chosenKeys
      configMap: {name: "{{ request.object.metadata.annotations.keys }}", namespace: kyverno}
    - name: fixedKeys
      configMap: {name: keys, namespace: kyverno}
    verifyImages:
    - imageReferences: ["ghcr.io/*"]
      mutateDigest: false
      attestors:
      - entries:
        - keys: {publicKeys: "{{ request.object.metadata.annotations.key }}"}
        - keys: {publicKeys: "{{ ownerKey }}"}
        - keys: {publicKeys: "{{ nsKey }}"}
        - keyless: {subject: "{{ request.userInfo.username }}", rekor: {url: https://rekor.sigstore.dev}}
        - keyless: {subject: "{{request.oldObject.metadata.name}}@example.com", rekor: {url: https://rekor.sigstore.dev}}
        - keys: {publicKeys: "{{ ownerKeys }}"}
        - keys: {publicKeys: "{{ chosenKeys.data.pub }}"}
        - keys: {publicKeys: "{{ fixedKeys.data.pub }}"}
`)
	var got []string
	for _, f := range set.Policies()[0].Insecure {
		got = append(got, string(f.Setting)+" "+f.Path)
	}
	want := []string{
		"trustFromRequest spec.rules[0].verifyImages[0].attestors[0].entries[0].keys",
		"trustFromRequest spec.rules[0].verifyImages[0].attestors[0].entries[1].keys",
		"trustFromRequest spec.rules[0].verifyImages[0].attestors[0].entries[4].keyless",
		"trustFromRequest spec.rules[0].verifyImages[0].attestors[0].entries[6].keys",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}
