package engine

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
)

const slsaType = fixture.SLSAProvenanceV02

// attestedImage pushes app:<tag> to the world's registry and attests it with each spec.
func (w *world) attestedImage(t *testing.T, tag string, specs ...fixture.AttestSpec) string {
	t.Helper()
	ctx := context.Background()
	digest, err := w.reg.Push(ctx, "app:"+tag)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if err := w.reg.Attest(ctx, "app", digest, s); err != nil {
			t.Fatal(err)
		}
	}
	return digest
}

// keysYAML is a keys attestor set for an attestation, indented for attestEntry.
func keysYAML(pem string) string {
	var b strings.Builder
	b.WriteString("        attestors:\n        - entries:\n          - keys:\n              rekor: {ignoreTlog: true}\n              ctlog: {ignoreSCT: true}\n              publicKeys: |-\n")
	for _, l := range strings.Split(strings.TrimSpace(pem), "\n") {
		b.WriteString("                " + l + "\n")
	}
	return b.String()
}

// attestEntry is a verifyImages entry with attestations (each "- type: ..." block given
// without indentation beyond the list item) and an optional validate block.
func attestEntry(attestations []string, validate string) string {
	var b strings.Builder
	b.WriteString("    - imageReferences: [\"*\"]\n      attestations:\n")
	for _, a := range attestations {
		b.WriteString(a)
	}
	b.WriteString(validate)
	return b.String()
}

func provenance(id string) map[string]any {
	return map[string]any{
		"builder":   map[string]any{"id": id},
		"buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
		"invocation": map[string]any{
			"configSource": map[string]any{"uri": "git+https://github.com/acme/app@refs/heads/main"},
		},
	}
}

const builderID = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0"

// threeConditions are the conditions of the SLSA attestation in tests and benchmarks.
const threeConditions = `        conditions:
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
            message: "the source must be an acme repository"
`

func TestAttestationConditions(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	good := w.attestedImage(t, "good", fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)})
	bad := w.attestedImage(t, "bad", fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance("https://evil.example/builder")})
	other := w.attestedImage(t, "other", fixture.AttestSpec{Key: w.k1.Private, PredicateType: fixture.CosignVuln, Predicate: map[string]any{}})
	e := w.engine(t, attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(w.k1.PEM) + threeConditions}, ""))
	repo := w.reg.Host + "/app"
	path := ".attestations[0].attestors[0].entries[0].keys"
	tests := []struct {
		tag, digest string
		status      Status
		message     string
	}{
		{"good", good, Pass, "verified image attestations for " + repo + "@" + good},
		{"bad", bad, Fail, "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: " + path +
			": attestation checks failed for " + repo + "@" + bad + " and predicate " + slsaType + ": " +
			`spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0]: "https://evil.example/builder" (from "{{ builder.id }}") Equals "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v*"`},
		{"other", other, Fail, "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: " + path +
			": attestions not found for predicate type " + slsaType},
		{"signed", w.signed, Fail, "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: no matching attestations: no attestations found"},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			res := evaluate(t, e, pod(t, "default", repo+":"+tt.tag), nil)
			if len(res) != 1 || res[0].Status != tt.status || res[0].Message != tt.message {
				t.Fatalf("results = %+v\nwant %s %q", res, tt.status, tt.message)
			}
		})
	}
}

// TestLandscapeGroup8CacheHitStillEvaluatesConditions: a cache hit reuses the verified
// statements, never the decision; conditions (here reading the admitted object) and
// validate.deny are evaluated again on every admission, without registry traffic.
func TestLandscapeGroup8CacheHitStillEvaluatesConditions(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.attestedImage(t, "prov", fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)})
	cond := `        conditions:
        - all:
          - key: "{{ request.object.metadata.labels.builder }}"
            operator: Equals
            value: "{{ builder.id }}"
`
	deny := `      validate:
        message: "{{ request.object.metadata.name }} is not allowed"
        deny:
          conditions:
            any:
            - key: "{{ request.object.metadata.labels.deny || 'no' }}"
              operator: Equals
              value: "yes"
`
	e := w.engine(t, attestEntry([]string{"      - type: " + slsaType + "\n        name: prov\n" + keysYAML(w.k1.PEM) + cond}, deny))
	c, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
	img := w.reg.Host + "/app:prov"
	obj := func(labels map[string]any) map[string]any {
		p := pod(t, "default", img)
		p["metadata"].(map[string]any)["labels"] = labels
		return p
	}
	first := evaluate(t, e, obj(map[string]any{"builder": builderID}), nil)
	if len(first) != 1 || first[0].Status != Pass || first[0].Message != "verifyImages validation is passed in r rule" {
		t.Fatalf("first = %+v", first)
	}
	before := w.served.Load()
	second := evaluate(t, e, obj(map[string]any{"builder": "https://other.example"}), nil)
	if len(second) != 1 || second[0].Status != Fail || !strings.Contains(second[0].Message, "attestation checks failed") {
		t.Fatalf("second (condition false on a cache hit) = %+v", second)
	}
	third := evaluate(t, e, obj(map[string]any{"builder": builderID, "deny": "yes"}), nil)
	if len(third) != 1 || third[0].Status != Fail || third[0].Message != "validation in verifyImages failed: p is not allowed" {
		t.Fatalf("third (deny true on a cache hit) = %+v", third)
	}
	if st := c.Stats(); st.Hits != 2 || st.Misses != 1 {
		t.Errorf("cache stats %+v, want 2 hits and 1 miss", st)
	}
	// Only the tag is resolved again: nothing about signatures or attestations is fetched.
	if n := w.served.Load() - before; n > 2*2 {
		t.Errorf("the cache hits cost %d registry requests, want only tag resolutions", n)
	}
}

// TestMissingAttestationIsCachedBriefly: an image without its attestation is kept as a
// failure for the cache's failure TTL, not its pass TTL, so that the attestation pushed after
// the denial is seen soon; an attestor that could not decide is not cached at all.
func TestMissingAttestationIsCachedBriefly(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	digest := w.attestedImage(t, "later")
	e := w.engine(t, attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(w.k1.PEM)}, ""))
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	c, err := cache.New(cache.Options{Enabled: true, TTL: time.Hour, FailTTL: 30 * time.Second, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
	img := pod(t, "default", w.reg.Host+"/app:later")
	if res := evaluate(t, e, img, nil); res[0].Status != Fail {
		t.Fatalf("before attesting: %+v", res)
	}
	if err := w.reg.Attest(context.Background(), "app", digest, fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType}); err != nil {
		t.Fatal(err)
	}
	if res := evaluate(t, e, img, nil); res[0].Status != Fail {
		t.Fatalf("within the failure TTL: %+v", res)
	}
	now.Add(int64(31 * time.Second))
	if res := evaluate(t, e, img, nil); res[0].Status != Pass {
		t.Fatalf("after the failure TTL: %+v", res)
	}
}

// TestValidateDenyWithNames: each attestation's verified predicate is visible to
// validate.deny under its name, and to validate.message.
func TestValidateDenyWithNames(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	vuln := func(critical float64) map[string]any {
		return map[string]any{"scanner": map[string]any{"uri": "pkg:github/aquasecurity/trivy@0.50.0", "result": map[string]any{"critical": critical}}}
	}
	w.attestedImage(t, "clean",
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)},
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: fixture.CosignVuln, Predicate: vuln(0)})
	w.attestedImage(t, "vulnerable",
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)},
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: fixture.CosignVuln, Predicate: vuln(3)})
	deny := `      validate:
        message: "{{ vuln.scanner.result.critical }} critical vulnerabilities in an image built by {{ prov.builder.id }}"
        deny:
          conditions:
            any:
            - key: "{{ vuln.scanner.result.critical }}"
              operator: GreaterThan
              value: 0
`
	e := w.engine(t, attestEntry([]string{
		"      - type: " + slsaType + "\n        name: prov\n" + keysYAML(w.k1.PEM),
		"      - type: " + fixture.CosignVuln + "\n        name: vuln\n" + keysYAML(w.k1.PEM),
	}, deny))
	if res := evaluate(t, e, pod(t, "default", w.reg.Host+"/app:clean"), nil); res[0].Status != Pass || res[0].Message != "verifyImages validation is passed in r rule" {
		t.Errorf("clean: %+v", res)
	}
	res := evaluate(t, e, pod(t, "default", w.reg.Host+"/app:vulnerable"), nil)
	if want := "validation in verifyImages failed: 3 critical vulnerabilities in an image built by " + builderID; res[0].Status != Fail || res[0].Message != want {
		t.Errorf("vulnerable: %+v\nwant %q", res, want)
	}
}

func TestValidateDenyMessages(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.attestedImage(t, "v", fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)})
	att := "      - type: " + slsaType + "\n        name: prov\n" + keysYAML(w.k1.PEM)
	tests := []struct {
		name, validate, want string
		status               Status
	}{
		{"deny true, no messages", `      validate:
        deny: {conditions: {all: [{key: "{{ prov.builder.id }}", operator: Equals, value: "https://github.com/*"}]}}
`, "validation in verifyImages failed: validation error: imageVerify  failed", Fail},
		{"deny true, condition message substituted", `      validate:
        deny: {conditions: {all: [{key: "{{ prov.buildType }}", operator: NotEquals, value: "x", message: "build type {{ prov.buildType }}"}]}}
`, "validation in verifyImages failed: build type https://github.com/slsa-framework/slsa-github-generator/container@v1", Fail},
		{"deny false", `      validate:
        message: never shown
        deny: {conditions: {all: [{key: "{{ prov.builder.id }}", operator: Equals, value: "https://evil.example/*"}]}}
`, "verifyImages validation is passed in r rule", Pass},
		{"deny referring to an unknown name fails", `      validate:
        deny: {conditions: {all: [{key: "{{ sbom.version }}", operator: Equals, value: 1}]}}
`, "validation in verifyImages failed: failed to check deny conditions: spec.rules[0].verifyImages[0].validate.deny.conditions.all[0].key: variable substitution failed: ", Fail},
		{"message that is not a string", `      validate:
        message: "{{ prov.builder }}"
        deny: {conditions: {all: [{key: "{{ prov.builder.id }}", operator: Equals, value: "https://github.com/*"}]}}
`, "validation in verifyImages failed: the produced message didn't resolve to a string, check your policy definition.", Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := w.engine(t, attestEntry([]string{att}, tt.validate))
			res := evaluate(t, e, pod(t, "default", w.reg.Host+"/app:v"), nil)
			if len(res) != 1 || res[0].Status != tt.status || !strings.HasPrefix(res[0].Message, tt.want) {
				t.Fatalf("results = %+v\nwant %s %q", res, tt.status, tt.want)
			}
		})
	}
}

// TestValidateDenyWithoutAttestations: an entry with signature attestors and validate.deny
// evaluates its deny after the signatures pass (Kyverno skips it, docs/COMPATIBILITY.md).
func TestValidateDenyWithoutAttestations(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	entry := keyEntry(w.k1.PEM) + `      validate:
        message: "{{ image.tag }} is not allowed in {{ request.namespace }}"
        deny: {conditions: {any: [{key: "{{ image.tag }}", operator: Equals, value: signed}]}}
`
	e := w.engine(t, entry)
	res := evaluate(t, e, pod(t, "prod", w.reg.Host+"/app:signed"), nil)
	if len(res) != 1 || res[0].Status != Fail || res[0].Message != "validation in verifyImages failed: signed is not allowed in prod" {
		t.Fatalf("results = %+v", res)
	}
}

// TestAttestationRequestBudget: a cold evaluation of an attested image resolves the tag once
// (and reads its manifest once, to check that it parses) and reads each place attestations are
// kept once — the .att tag and its layers, the referrers API and the referrers tag schema (both
// empty here) — however many attestors and containers
// ask; a warm one only resolves the tag.
func TestAttestationRequestBudget(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.attestedImage(t, "budget",
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)},
		fixture.AttestSpec{Key: w.k2.Private, PredicateType: slsaType, Predicate: provenance(builderID)})
	sets := "        attestors:\n        - entries:\n" + strings.SplitN(keysYAML(w.k1.PEM), "- entries:\n", 2)[1] + strings.SplitN(keysYAML(w.k2.PEM), "- entries:\n", 2)[1]
	e := w.engine(t, attestEntry([]string{"      - type: " + slsaType + "\n" + sets + threeConditions}, ""))
	c, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
	img := w.reg.Host + "/app:budget"
	count := func() map[string]int {
		out := map[string]int{}
		for k, n := range w.counter.Snapshot() {
			if k.Status != 0 {
				out[k.Method+" "+string(k.Kind)] += n
			}
		}
		return out
	}
	for round, want := range []map[string]int{
		{"HEAD manifest": 1, "GET manifest": 3, "GET referrers": 1, "GET blob": 2}, // cold: the image's manifest (checked once per digest), .att manifest and layers, referrers, tag schema
		{"HEAD manifest": 2, "GET manifest": 3, "GET referrers": 1, "GET blob": 2}, // warm: one more HEAD
	} {
		res := evaluate(t, e, pod(t, "default", img, img), nil)
		if len(res) != 1 || res[0].Status != Pass {
			t.Fatalf("round %d: %+v", round, res)
		}
		got := count()
		delete(got, "GET ping")
		for k, n := range want {
			if got[k] != n {
				t.Errorf("round %d: %d %s requests, want %d (all: %v)", round, got[k], k, n, got)
			}
		}
	}
}

// TestAttestationsInSigstoreBundles: cosign v3 `cosign attest` stores a Sigstore bundle (a
// DSSE envelope of the statement) as a referrer instead of a layer of the .att tag; type
// Cosign reads it beside the .att tag (a vouch extension, docs/COMPATIBILITY.md) and type
// SigstoreBundle reads only bundles. The same conditions and the same checks apply.
func TestAttestationsInSigstoreBundles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	digest, err := w.reg.Push(ctx, "app:bundle")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.reg.SignBundle(ctx, "app", digest, fixture.BundleSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)}); err != nil {
		t.Fatal(err)
	}
	if err := w.reg.SignBundle(ctx, "app", digest, fixture.BundleSpec{Key: w.k2.Private, PredicateType: fixture.CosignVuln, Predicate: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	img := w.reg.Host + "/app:bundle"
	path := ".attestations[0].attestors[0].entries[0].keys"
	prefix := "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: "
	tests := []struct {
		name, typ, key, conds, entryType string
		status                           Status
		message                          string
	}{
		{"type Cosign", slsaType, w.k1.PEM, threeConditions, "", Pass, "verified image attestations for " + w.reg.Host + "/app@" + digest},
		{"type SigstoreBundle", slsaType, w.k1.PEM, threeConditions, "SigstoreBundle", Pass, "verified image attestations for " + w.reg.Host + "/app@" + digest},
		{"condition false", slsaType, w.k1.PEM, strings.Replace(threeConditions, "refs/tags/v*", "refs/tags/v2*", 1), "", Fail,
			prefix + path + ": attestation checks failed for " + w.reg.Host + "/app@" + digest + " and predicate " + slsaType + ": "},
		{"type signed by another key only", fixture.CosignVuln, w.k1.PEM, "", "", Fail, prefix + path + ": attestions not found for predicate type " + fixture.CosignVuln},
		{"wrong key", slsaType, mustKeyPEM(t), "", "", Fail, prefix + "no matching attestations: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entry := attestEntry([]string{"      - type: " + tt.typ + "\n" + keysYAML(tt.key) + tt.conds}, "")
			if tt.entryType != "" {
				entry = strings.Replace(entry, "    - imageReferences: [\"*\"]\n", "    - imageReferences: [\"*\"]\n      type: "+tt.entryType+"\n", 1)
			}
			e := w.engine(t, entry)
			e.verifiers["SigstoreBundle"] = e.verifiers["Cosign"] // as cmd/vouch wires them
			res := evaluate(t, e, pod(t, "default", img), nil)
			if len(res) != 1 || res[0].Status != tt.status || !strings.HasPrefix(res[0].Message, tt.message) {
				t.Fatalf("results = %+v\nwant %s %q", res, tt.status, tt.message)
			}
		})
	}
}

func mustKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PEM
}

// TestLandscapeGroup5AbsentPredicateTypeDenies: a required predicate type that is absent
// denies admission under Enforce even though other attestations signed by the trusted key
// exist — including one whose unsigned annotation claims the required type.
func TestLandscapeGroup5AbsentPredicateTypeDenies(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.attestedImage(t, "confused",
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: fixture.CosignVuln, Predicate: map[string]any{}},
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: fixture.CosignCustom, AnnotationType: slsaType, Predicate: provenance(builderID)},
		fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType + "/", Predicate: provenance(builderID)})
	e := w.engine(t, attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(w.k1.PEM)}, ""))
	resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", w.reg.Host+"/app:confused")})
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.Decide(); d.Allowed || !strings.Contains(strings.Join(strings.Fields(d.Message), " "), "attestions not found for predicate type "+slsaType) {
		t.Fatalf("decision %+v", d)
	}
}
