//go:build integration

package main

// Integration tests on a registry WITH the OCI 1.1 referrers API: go-containerregistry's
// in-process registry (internal/fixture, on 127.0.0.1) behind a small middleware that makes
// its referrers spec-correct where the tools and vouch look — the OCI-Subject header on a
// manifest PUT with a subject, each referrer's artifactType read from the manifest's
// artifactType field, the ?artifactType= filter honoured. The real cosign v2 and v3 and
// notation CLIs sign and attest against it (no sha256-<hex> fallback tag is then written,
// except by notation's default --force-referrers-tag); vouch verifies through the engine API
// and the built binary, reporting the route (and, for bundles, the listing) that found each
// signature.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/report"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// Artifact types of the layouts on a registry with the referrers API (TOOLCHAIN.md).
const (
	artifactBundleV03    = "application/vnd.dev.sigstore.bundle.v0.3+json"
	artifactNotarySig    = "application/vnd.cncf.notary.signature"
	artifactCosignOCI11  = "application/vnd.dev.cosign.artifact.sig.v1+json"
	headerOCISubject     = "OCI-Subject"
	headerFiltersApplied = "OCI-Filters-Applied"
)

// referrersRegistry is go-containerregistry's registry with the referrers API, made
// spec-correct by a middleware (see wrap), recording every request it answers.
type referrersRegistry struct {
	*fixture.Registry
	mu  sync.Mutex
	log []servedRequest
}

// servedRequest is one request the registry answered.
type servedRequest struct {
	method, path, query string
	status              int
	userAgent           string
	subject             string // the OCI-Subject header sent back, if any
}

// startReferrersRegistry starts the registry on 127.0.0.1 and stops it when the test ends.
func startReferrersRegistry(t *testing.T) *referrersRegistry {
	t.Helper()
	r := &referrersRegistry{}
	r.Registry = fixture.StartRegistry(true, r.wrap)
	t.Cleanup(r.Close)
	t.Logf("registry with the referrers API on %s", r.Host)
	return r
}

// wrap is the middleware: on a manifest PUT whose body has a subject, the 201 carries
// OCI-Subject (distribution-spec v1.1 §"Pushing Manifests with Subject"), which tells clients
// the registry indexed the referrer, so they write no referrers tag; a referrers listing gets
// each descriptor's artifactType from the manifest (its artifactType, else its config media
// type; ggcr reports the config media type only), and is filtered by ?artifactType= with
// OCI-Filters-Applied (ggcr ignores the filter).
func (reg *referrersRegistry) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &subjectWriter{ResponseWriter: w}
		repo, kind, ref := splitV2Path(r.URL.Path)
		switch {
		case r.Method == http.MethodPut && kind == "manifests":
			body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				Subject *struct{ Digest string } `json:"subject"`
			}
			if json.Unmarshal(body, &m) == nil && m.Subject != nil {
				sw.subject = m.Subject.Digest
			}
			next.ServeHTTP(sw, r)
		case r.Method == http.MethodGet && kind == "referrers":
			reg.serveReferrers(next, sw, r, repo, ref)
		default:
			next.ServeHTTP(sw, r)
		}
		reg.mu.Lock()
		reg.log = append(reg.log, servedRequest{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery,
			status: sw.status, userAgent: r.UserAgent(), subject: sw.sentSubject})
		reg.mu.Unlock()
	})
}

// splitV2Path splits /v2/<repo>/<kind>/<ref> (kind manifests, blobs, referrers, tags).
func splitV2Path(p string) (repo, kind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	for _, k := range []string{"/manifests/", "/referrers/", "/blobs/", "/tags/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			return rest[:i], strings.Trim(k, "/"), rest[i+len(k):]
		}
	}
	return "", "", ""
}

// serveReferrers answers a referrers listing from ggcr's, with spec-correct artifact types
// and the artifactType filter applied.
func (reg *referrersRegistry) serveReferrers(next http.Handler, w http.ResponseWriter, r *http.Request, repo, subject string) {
	inner := httptest.NewRecorder()
	plain := r.Clone(r.Context())
	plain.URL.RawQuery = ""
	next.ServeHTTP(inner, plain)
	if inner.Code != http.StatusOK {
		for k, v := range inner.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(inner.Code)
		_, _ = w.Write(inner.Body.Bytes())
		return
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(inner.Body.Bytes(), &idx); err != nil {
		http.Error(w, "referrers listing: "+err.Error(), http.StatusInternalServerError)
		return
	}
	filter := r.URL.Query()["artifactType"]
	kept := []v1.Descriptor{}
	for _, d := range idx.Manifests {
		get := httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/manifests/"+d.Digest.String(), nil)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, get)
		var m struct {
			ArtifactType string `json:"artifactType"`
			Config       struct{ MediaType string }
			Annotations  map[string]string `json:"annotations"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
			http.Error(w, fmt.Sprintf("referrer %s of %s: %d", d.Digest, subject, rec.Code), http.StatusInternalServerError)
			return
		}
		d.ArtifactType = m.ArtifactType
		if d.ArtifactType == "" {
			d.ArtifactType = m.Config.MediaType
		}
		d.Annotations = m.Annotations
		if len(filter) > 0 && !contains(filter, d.ArtifactType) {
			continue
		}
		kept = append(kept, d)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Digest.String() < kept[j].Digest.String() })
	idx.Manifests = kept
	body, err := json.Marshal(idx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if len(filter) > 0 {
		w.Header().Set(headerFiltersApplied, "artifactType")
	}
	w.Header().Set("Content-Type", string(types.OCIImageIndex))
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// subjectWriter sends OCI-Subject with a 201 when subject is set, and remembers the status.
type subjectWriter struct {
	http.ResponseWriter
	subject, sentSubject string
	status               int
}

func (s *subjectWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
		if code == http.StatusCreated && s.subject != "" {
			s.Header().Set(headerOCISubject, s.subject)
			s.sentSubject = s.subject
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *subjectWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(p)
}

// requests returns the answered requests that match.
func (reg *referrersRegistry) requests(match func(servedRequest) bool) []servedRequest {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	var out []servedRequest
	for _, r := range reg.log {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// push pushes a small random image as repo:tag and returns its digest.
func (reg *referrersRegistry) push(t *testing.T, repoTag string) string {
	t.Helper()
	d, err := reg.Push(context.Background(), repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// listReferrers lists the referrers of repo@digest through the API, with an optional
// artifactType filter, and returns them with the OCI-Filters-Applied header.
func (reg *referrersRegistry) listReferrers(t *testing.T, repo, digest, artifactType string) ([]v1.Descriptor, string) {
	t.Helper()
	u := "http://" + reg.Host + "/v2/" + repo + "/referrers/" + digest
	if artifactType != "" {
		u += "?artifactType=" + url.QueryEscape(artifactType)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	var idx v1.IndexManifest
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil {
		t.Fatal(err)
	}
	return idx.Manifests, resp.Header.Get(headerFiltersApplied)
}

// tagExists tells whether repo:tag exists.
func (reg *referrersRegistry) tagExists(t *testing.T, repo, tag string) bool {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	req, err := http.NewRequest(http.MethodHead, "http://"+reg.Host+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", string(types.OCIImageIndex)+","+string(types.OCIManifestSchema1))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("HEAD %s:%s: %s", repo, tag, resp.Status)
	return false
}

// fallbackTag is the referrers tag schema's tag of a digest.
func fallbackTag(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// checkReferrerLayout checks what a tool stored for repo@digest: exactly one referrer, of
// artifact type want, listed by the referrers API (unfiltered, and with the artifactType
// filter: itself only), its manifest pushed with a subject and answered with OCI-Subject,
// and — unless fallbackWanted — no sha256-<hex> referrers tag. It returns the referrer.
func checkReferrerLayout(t *testing.T, reg *referrersRegistry, repo, digest, want string, fallbackWanted bool) v1.Descriptor {
	t.Helper()
	all, _ := reg.listReferrers(t, repo, digest, "")
	if len(all) != 1 || all[0].ArtifactType != want {
		t.Fatalf("referrers of %s@%s = %+v, want one of artifact type %s", repo, digest, all, want)
	}
	filtered, applied := reg.listReferrers(t, repo, digest, want)
	if len(filtered) != 1 || filtered[0].Digest != all[0].Digest || applied != "artifactType" {
		t.Errorf("referrers filtered by %s = %+v (%s %q), want the one referrer", want, filtered, headerFiltersApplied, applied)
	}
	if none, _ := reg.listReferrers(t, repo, digest, "application/vnd.example.other"); len(none) != 0 {
		t.Errorf("referrers filtered by another artifact type = %+v, want none", none)
	}
	puts := reg.requests(func(r servedRequest) bool {
		return r.method == http.MethodPut && r.path == "/v2/"+repo+"/manifests/"+all[0].Digest.String()
	})
	if len(puts) == 0 {
		// Tools PUT by digest or by tag; find it by the subject header sent back.
		puts = reg.requests(func(r servedRequest) bool { return r.method == http.MethodPut && r.subject == digest })
	}
	if len(puts) == 0 || puts[0].status != http.StatusCreated || puts[0].subject != digest {
		t.Errorf("the referrer manifest's PUT: %+v, want 201 with %s: %s", puts, headerOCISubject, digest)
	}
	if got := reg.tagExists(t, repo, fallbackTag(digest)); got != fallbackWanted {
		t.Errorf("referrers tag %s:%s exists: %v, want %v", repo, fallbackTag(digest), got, fallbackWanted)
	}
	if reg.tagExists(t, repo, fallbackTag(digest)+".sig") {
		t.Errorf("a legacy .sig tag was written for %s@%s", repo, digest)
	}
	return all[0]
}

// vouchReferrersCalls counts vouch's (User-Agent vouch…) referrers API calls for repo@digest
// answered 200.
func vouchReferrersCalls(reg *referrersRegistry, repo, digest string) int {
	return len(reg.requests(func(r servedRequest) bool {
		return r.method == http.MethodGet && r.path == "/v2/"+repo+"/referrers/"+digest &&
			r.status == http.StatusOK && strings.HasPrefix(r.userAgent, registry.DefaultUserAgent)
	}))
}

// expectVouchReferrersCalls checks, when the test and its subtests end, that vouch listed the
// referrers of repo@digest through the referrers API (answered 200) meanwhile.
func expectVouchReferrersCalls(t *testing.T, reg *referrersRegistry, repo, digest string) {
	t.Helper()
	before := vouchReferrersCalls(reg, repo, digest)
	t.Cleanup(func() {
		if n := vouchReferrersCalls(reg, repo, digest); n <= before {
			t.Errorf("vouch made no referrers API call for %s@%s", repo, digest)
		}
	})
}

// routedCase is one Pod image evaluated with one policy, with the routes the engine must
// report (type, route, result; sorted) — none checked when nil.
type routedCase struct {
	verifyCase
	policy string
	routes []string
}

// runRoutedCases runs each case through the engine (with a route recorder) and the CLI.
func runRoutedCases(t *testing.T, cases []routedCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pod := podYAML(c.image)
			t.Run("engine", func(t *testing.T) {
				rec := &routeRecorder{}
				checkVerifyCase(t, c.verifyCase, evaluateObserved(t, c.policy, pod, rec))
				if c.routes != nil {
					rec.check(t, c.routes)
				}
			})
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, c.verifyCase, evaluateWithCLI(t, c.policy, pod)) })
		})
	}
}

// evaluateObserved is evaluateWithEngine with an observer of the verifications.
func evaluateObserved(t *testing.T, policyYAML, resourceYAML string, obs engine.Observer) *report.Report {
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
	eng, err := newEngine(set, registry.Options{}, engineExtras{observer: obs})
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

// cosignEvidence verifies image (host/repo:tag) with vouch's cosign verifier directly, with an
// offline key attestor, and returns the evidence's "route (detail)".
func cosignEvidence(t *testing.T, image, digest, typ, keyPEM string) string {
	t.Helper()
	v, err := cosign.New(cosign.Options{Remote: func(ctx context.Context, _ bool) []remote.Option {
		return []remote.Option{remote.WithContext(ctx)}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(keyPEM))
	if block == nil {
		t.Fatal("key PEM does not parse")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	a := &verify.Attestor{Path: ".attestors[0].entries[0].keys", Kind: "keys", Keys: []verify.PublicKey{{Key: pub, PEM: keyPEM}},
		Rekor: &verify.Rekor{IgnoreTlog: true}, CTLog: &verify.CTLog{IgnoreSCT: true}}
	ev, err := v.Verify(context.Background(), verify.Subject{Ref: ref, Digest: digest, Memo: &verify.Memo{}}, &verify.Entry{Type: typ}, a)
	if err != nil {
		t.Fatalf("vouch's cosign verifier (type %s) on %s: %v", typ, image, err)
	}
	return ev.Route + " (" + ev.Detail + ")"
}

// TestIntegrationReferrers signs and attests with the real CLIs on a registry with the
// referrers API and verifies with vouch.
func TestIntegrationReferrers(t *testing.T) {
	t.Parallel()
	reg := startReferrersRegistry(t)
	e := newToolEnv(t)
	t.Run("cosign v3 bundle", func(t *testing.T) { t.Parallel(); testReferrersCosignV3Sign(t, e, reg) })
	t.Run("cosign v3 attestation bundle", func(t *testing.T) { t.Parallel(); testReferrersCosignV3Attest(t, e, reg) })
	t.Run("notation", func(t *testing.T) { t.Parallel(); testReferrersNotation(t, e, reg) })
	t.Run("cosign v2 oci-1-1", func(t *testing.T) { t.Parallel(); testReferrersCosignV2OCI11(t, e, reg) })
}

// signingConfig makes (once per label) an empty cosign v3 signing config: no Rekor, no TSA.
func (e *toolEnv) signingConfig(t *testing.T, cosign3, label string) string {
	t.Helper()
	path := filepath.Join(e.dir, label+"-signing-config.json")
	e.mustRun(t, "", nil, cosign3, "signing-config", "create", "--out", path)
	return path
}

// (a) cosign v3's default: a Sigstore bundle v0.3 stored as an OCI 1.1 referrer.
func testReferrersCosignV3Sign(t *testing.T, e *toolEnv, reg *referrersRegistry) {
	cosign3 := toolPath(t, "cosign3")
	key := e.generateKeyPair(t, cosign3, "v3-sign")
	other := e.generateKeyPair(t, cosign3, "v3-sign-other")
	const repo = "v3/sign"
	digest := reg.push(t, repo+":1")
	sc := e.signingConfig(t, cosign3, "v3-sign")
	e.mustRun(t, "", nil, cosign3, "sign", "--key", key.private, "--signing-config", sc, "--trusted-root", e.trustedRoot,
		"-y", "-a", "env=prod", reg.Host+"/"+repo+"@"+digest)
	d := checkReferrerLayout(t, reg, repo, digest, artifactBundleV03, false)
	if d.Annotations["dev.sigstore.bundle.predicateType"] != "https://sigstore.dev/cosign/sign/v1" || d.Annotations["dev.sigstore.bundle.content"] != "dsse-envelope" {
		t.Errorf("bundle referrer annotations %v, want a DSSE envelope of predicate type https://sigstore.dev/cosign/sign/v1", d.Annotations)
	}
	e.mustRun(t, "", nil, cosign3, "verify", "--key", key.public, "--insecure-ignore-tlog=true", "--trusted-root", e.trustedRoot,
		reg.Host+"/"+repo+"@"+digest)

	image := reg.Host + "/" + repo + ":1"
	// vouch's verifier names the listing that found the bundle: the referrers API.
	for _, typ := range []string{"Cosign", "SigstoreBundle"} {
		got := cosignEvidence(t, image, digest, typ, key.pem)
		want := "sigstore-bundle (Sigstore bundle v0.3 (DSSE https://sigstore.dev/cosign/sign/v1) in referrer " + d.Digest.String() + " (referrers API))"
		if got != want {
			t.Errorf("type %s evidence %q, want %q", typ, got, want)
		}
	}
	expectVouchReferrersCalls(t, reg, repo, digest)
	ok := "verified image signatures for " + image
	kp := func(p keyPolicy) string { return p.yaml() }
	runRoutedCases(t, []routedCase{
		{verifyCase{name: "type Cosign", image: image, digest: digest, want: "pass", msg: ok},
			kp(keyPolicy{keys: []string{key.pem}}), []string{"Cosign sigstore-bundle pass"}},
		{verifyCase{name: "type Cosign, annotations from the statement", image: image, digest: digest, want: "pass", msg: ok},
			kp(keyPolicy{keys: []string{key.pem}, annotations: map[string]string{"env": "prod"}}), []string{"Cosign sigstore-bundle pass"}},
		{verifyCase{name: "type Cosign, cosignOCI11", image: image, digest: digest, want: "pass", msg: ok},
			kp(keyPolicy{keys: []string{key.pem}, cosignOCI11: true}), []string{"Cosign sigstore-bundle pass"}},
		{verifyCase{name: "type SigstoreBundle", image: image, digest: digest, want: "pass", msg: ok},
			kp(keyPolicy{keys: []string{key.pem}, typ: "SigstoreBundle"}), []string{"SigstoreBundle sigstore-bundle pass"}},
		{verifyCase{name: "type Cosign, another key", image: image, digest: digest, want: "fail",
			msg: ".attestors[0].entries[0].keys: no matching signatures: Sigstore bundle v0.3 (DSSE https://sigstore.dev/cosign/sign/v1) in referrer " + d.Digest.String() + " (referrers API)"},
			kp(keyPolicy{keys: []string{other.pem}}), nil},
		{verifyCase{name: "type SigstoreBundle, another key", image: image, digest: digest, want: "fail",
			msg: ".attestors[0].entries[0].keys: sigstore bundle verification failed: no matching signatures found"},
			kp(keyPolicy{keys: []string{other.pem}, typ: "SigstoreBundle"}), []string{"SigstoreBundle sigstore-bundle fail"}},
	})
}

// (b) cosign v3 attest: an in-toto attestation in a Sigstore bundle referrer.
func testReferrersCosignV3Attest(t *testing.T, e *toolEnv, reg *referrersRegistry) {
	cosign3 := toolPath(t, "cosign3")
	key := e.generateKeyPair(t, cosign3, "v3-attest")
	const repo = "v3/attest"
	digest := reg.push(t, repo+":1")
	if err := os.WriteFile(filepath.Join(e.dir, "referrers-slsa.json"), []byte(slsaPredicate), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := e.signingConfig(t, cosign3, "v3-attest")
	e.mustRun(t, "", nil, cosign3, "attest", "--key", key.private, "--type", "slsaprovenance", "--predicate", "referrers-slsa.json",
		"--signing-config", sc, "--trusted-root", e.trustedRoot, "-y", reg.Host+"/"+repo+"@"+digest)
	const slsa = "https://slsa.dev/provenance/v0.2"
	d := checkReferrerLayout(t, reg, repo, digest, artifactBundleV03, false)
	if d.Annotations["dev.sigstore.bundle.predicateType"] != slsa {
		t.Errorf("bundle referrer annotations %v, want predicate type %s", d.Annotations, slsa)
	}
	e.mustRun(t, "", nil, cosign3, "verify-attestation", "--key", key.public, "--type", "slsaprovenance",
		"--insecure-ignore-tlog=true", "--trusted-root", e.trustedRoot, reg.Host+"/"+repo+"@"+digest)

	image, byDigest := reg.Host+"/"+repo+":1", reg.Host+"/"+repo+"@"+digest
	withType := func(p, typ string) string {
		return strings.Replace(p, "    - imageReferences: [\"*\"]\n", "    - imageReferences: [\"*\"]\n      type: "+typ+"\n", 1)
	}
	falseCondition := strings.Replace(slsaConditions, "refs/tags/v*", "refs/tags/v2*", 1)
	ok := "verified image attestations for " + byDigest
	// Routes are not checked: an entry with attestations only reports the route its
	// configuration selects first (engine.Route: legacy-tag for type Cosign), not where the
	// statement was found — attestation evidence carries no route.
	expectVouchReferrersCalls(t, reg, repo, digest)
	runRoutedCases(t, []routedCase{
		{verifyCase{name: "type Cosign, conditions", image: image, digest: digest, want: "pass", msg: ok},
			attestPolicy(slsa, key.pem, slsaConditions), nil},
		{verifyCase{name: "type SigstoreBundle, conditions", image: image, digest: digest, want: "pass", msg: ok},
			withType(attestPolicy(slsa, key.pem, slsaConditions), "SigstoreBundle"), nil},
		{verifyCase{name: "a condition false", image: image, digest: digest, want: "fail",
			msg: "attestation checks failed for " + byDigest + " and predicate " + slsa + ": spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0]: "},
			attestPolicy(slsa, key.pem, falseCondition), nil},
		{verifyCase{name: "another predicate type", image: image, digest: digest, want: "fail",
			msg: ".attestations[0].attestors[0].entries[0].keys: attestions not found for predicate type " + customReviewType},
			attestPolicy(customReviewType, key.pem, ""), nil},
	})
}

// (c) notation JWS and COSE signatures. notation v1.3.2 defaults to --force-referrers-tag
// (always the referrers tag schema, whatever the registry); with --force-referrers-tag=false
// the OCI-Subject answer tells it the registry indexed the signature.
func testReferrersNotation(t *testing.T, e *toolEnv, reg *referrersRegistry) {
	w := &notationWorld{env: e, notation: toolPath(t, "notation"), host: reg.Host, certs: map[string]string{}, digests: map[string]string{}}
	w.config = filepath.Join(e.home, ".config")
	for _, key := range []string{"vouch.test", "other.test"} {
		args := []string{"cert", "generate-test", key}
		if key == "vouch.test" {
			args = append(args, "--default")
		}
		w.env.mustRun(t, "", w.notationEnv(), w.notation, args...)
		cert, err := os.ReadFile(filepath.Join(w.config, "notation", "localkeys", key+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		w.certs[key] = string(cert)
	}
	for _, tag := range []string{"jws", "cose", "default", "unsigned"} {
		w.digests[tag] = reg.push(t, "app:"+tag)
	}
	w.sign(t, "jws", "--force-referrers-tag=false", "--signature-format", "jws")
	w.sign(t, "cose", "--force-referrers-tag=false", "--signature-format", "cose")
	w.sign(t, "default")
	checkReferrerLayout(t, reg, "app", w.digests["jws"], artifactNotarySig, false)
	checkReferrerLayout(t, reg, "app", w.digests["cose"], artifactNotarySig, false)
	// The default: the registry indexed the signature (OCI-Subject sent back) and notation
	// still wrote the referrers tag, an index listing the same manifest.
	d := checkReferrerLayout(t, reg, "app", w.digests["default"], artifactNotarySig, true)
	idx := fetchIndex(t, reg.Host+"/app:"+fallbackTag(w.digests["default"]))
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != d.Digest || idx.Manifests[0].ArtifactType != artifactNotarySig {
		t.Errorf("notation's referrers tag index %+v, want the signature %s", idx.Manifests, d.Digest)
	}

	trustPolicy := `{"version":"1.0","trustPolicies":[{"name":"vouch","registryScopes":["*"],
	  "signatureVerification":{"level":"strict"},"trustStores":["ca:vouch.test"],"trustedIdentities":["*"]}]}`
	policyFile := filepath.Join(e.dir, "referrers-trustpolicy.json")
	if err := os.WriteFile(policyFile, []byte(trustPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env.mustRun(t, "", w.notationEnv(), w.notation, "policy", "import", "--force", policyFile)
	for _, tag := range []string{"jws", "cose", "default"} {
		w.env.mustRun(t, "", w.notationEnv(), w.notation, "verify", "--insecure-registry", w.host+"/app@"+w.digests[tag])
	}

	trusted := notaryPolicy(reg.Host, w.certs["vouch.test"])
	var cases []routedCase
	for _, c := range []struct {
		tag, want, msg, policy string
	}{
		{"jws", "pass", "verified image signatures for " + reg.Host + "/app:jws", trusted},
		{"cose", "pass", "verified image signatures for " + reg.Host + "/app:cose", trusted},
		{"default", "pass", "verified image signatures for " + reg.Host + "/app:default", trusted},
		{"unsigned", "fail", "no signature is associated with", trusted},
		{"jws", "fail", "does not contain any trusted certificate", notaryPolicy(reg.Host, w.certs["other.test"])},
	} {
		cases = append(cases, routedCase{verifyCase{name: c.tag + "/" + c.want, image: reg.Host + "/app:" + c.tag, digest: w.digests[c.tag],
			want: c.want, msg: c.msg}, c.policy, []string{"Notary oci11-referrer " + c.want}})
	}
	expectVouchReferrersCalls(t, reg, "app", w.digests["cose"])
	runRoutedCases(t, cases)
}

// fetchIndex reads an image index by reference.
func fetchIndex(t *testing.T, ref string) *v1.IndexManifest {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// (d) cosign v2's experimental OCI 1.1 layout (--registry-referrers-mode=oci-1-1).
func testReferrersCosignV2OCI11(t *testing.T, e *toolEnv, reg *referrersRegistry) {
	cosign2 := toolPath(t, "cosign")
	key := e.generateKeyPair(t, cosign2, "v2-oci11")
	const repo = "v2/oci11"
	digest := reg.push(t, repo+":1")
	e.mustRun(t, "", []string{"COSIGN_EXPERIMENTAL=1"}, cosign2, "sign", "--key", key.private, "--tlog-upload=false",
		"--registry-referrers-mode=oci-1-1", "-y", "-a", "env=prod", reg.Host+"/"+repo+"@"+digest)
	checkReferrerLayout(t, reg, repo, digest, artifactCosignOCI11, false)
	e.mustRun(t, "", []string{"COSIGN_EXPERIMENTAL=1"}, cosign2, "verify", "--key", key.public, "--insecure-ignore-tlog=true",
		"--experimental-oci11", "--trusted-root", e.trustedRoot, reg.Host+"/"+repo+"@"+digest)

	image := reg.Host + "/" + repo + ":1"
	if got := cosignEvidence(t, image, digest, "Cosign", key.pem); !strings.HasPrefix(got, verify.RouteOCI11Referrer+" ") {
		t.Errorf("evidence %q, want route %s", got, verify.RouteOCI11Referrer)
	}
	ok := "verified image signatures for " + image
	expectVouchReferrersCalls(t, reg, repo, digest)
	runRoutedCases(t, []routedCase{
		{verifyCase{name: "cosignOCI11", image: image, digest: digest, want: "pass", msg: ok},
			keyPolicy{keys: []string{key.pem}, cosignOCI11: true}.yaml(), []string{"Cosign oci11-referrer pass"}},
		{verifyCase{name: "without cosignOCI11", image: image, digest: digest, want: "pass", msg: ok},
			keyPolicy{keys: []string{key.pem}}.yaml(), []string{"Cosign oci11-referrer pass"}},
		{verifyCase{name: "annotations", image: image, digest: digest, want: "pass", msg: ok},
			keyPolicy{keys: []string{key.pem}, annotations: map[string]string{"env": "prod"}}.yaml(), []string{"Cosign oci11-referrer pass"}},
		{verifyCase{name: "type SigstoreBundle does not read it", image: image, digest: digest, want: "fail",
			msg: ".attestors[0].entries[0].keys: sigstore bundle verification failed: no matching signatures found"},
			keyPolicy{keys: []string{key.pem}, typ: "SigstoreBundle"}.yaml(), []string{"SigstoreBundle sigstore-bundle fail"}},
	})
}
