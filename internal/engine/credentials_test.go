package engine

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

const (
	authUser     = "vouch-user"
	authPassword = "canary-Pa55-engine-41c7"
)

// authWorld is an in-process registry that requires basic auth (once set up) holding a signed
// image, and an engine whose Credentials are a fake: one keychain per entry secret name.
type authWorld struct {
	reg    *fixture.Registry
	key    *fixture.Key
	digest string
	creds  *fakeCredentials
	sigReq atomic.Int64 // requests for the signature tag
	// holdSig, when set, is called before a signature request is served.
	holdSig func()
}

func newAuthWorld(t *testing.T) *authWorld {
	t.Helper()
	w := &authWorld{}
	var enforce atomic.Bool
	w.reg = fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, ".sig") {
				w.sigReq.Add(1)
				if w.holdSig != nil {
					w.holdSig()
				}
			}
			if u, p, ok := r.BasicAuth(); enforce.Load() && (!ok || u != authUser || p != authPassword) {
				rw.Header().Set("WWW-Authenticate", `Basic realm="vouch-test"`)
				rw.WriteHeader(http.StatusUnauthorized)
				_, _ = rw.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
				return
			}
			h.ServeHTTP(rw, r)
		})
	})
	t.Cleanup(w.reg.Close)
	var err error
	if w.key, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if w.digest, err = w.reg.Push(ctx, "app:signed"); err != nil {
		t.Fatal(err)
	}
	if err := w.reg.Sign(ctx, "app", w.digest, w.key.Private, nil, ""); err != nil {
		t.Fatal(err)
	}
	enforce.Store(true)
	basic := func(password string) authn.Keychain {
		return hostKeychain{w.reg.Host: authn.FromConfig(authn.AuthConfig{Username: authUser, Password: password})}
	}
	w.creds = &fakeCredentials{keychains: map[string]authn.Keychain{"good": basic(authPassword), "bad": basic("wrong-password")}}
	return w
}

func (w *authWorld) engine(t *testing.T, policies string, c *cache.Cache) *Engine {
	t.Helper()
	e := newEngine(t, policies)
	regs, err := registry.NewPair(registry.Options{Keychain: authn.NewMultiKeychain()}) // anonymous without a scope
	if err != nil {
		t.Fatal(err)
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		t.Fatal(err)
	}
	e.registry, e.verifiers, e.credentials, e.cache, e.imageData = regs, map[string]verify.Verifier{"Cosign": cv}, w.creds, c, regs
	return e
}

// credsEntry is a key entry whose imageRegistryCredentials.secrets name the fake's keychain.
func (w *authWorld) credsEntry(secret string) string {
	e := keyEntry(w.key.PEM)
	if secret != "" {
		e += "      imageRegistryCredentials: {secrets: [" + secret + "]}\n"
	}
	return e
}

type hostKeychain map[string]authn.Authenticator

func (k hostKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[r.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

// fakeCredentials gives each entry the keychain its first secret names, records its calls,
// and fails for the names in fail.
type fakeCredentials struct {
	keychains map[string]authn.Keychain
	mu        sync.Mutex
	calls     []string
}

func (f *fakeCredentials) Scope(_ context.Context, entry *v1.ImageRegistryCredentials, namespace string, pullSecrets []string) (registry.Scope, error) {
	name := ""
	switch {
	case entry != nil && len(entry.Secrets) > 0:
		name = entry.Secrets[0]
	case len(pullSecrets) > 0:
		name = pullSecrets[0]
	}
	f.mu.Lock()
	f.calls = append(f.calls, name+" "+namespace+" "+strings.Join(pullSecrets, ","))
	f.mu.Unlock()
	if name == "gone" {
		return registry.Scope{}, errors.New("image pull secret vouch/gone: not found")
	}
	kc, ok := f.keychains[name]
	if !ok {
		kc = authn.NewMultiKeychain() // anonymous
	}
	return registry.Scope{Key: "scope-" + name, Keychain: kc}, nil
}

func (f *fakeCredentials) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func firstResult(t *testing.T, e *Engine, obj map[string]any) RuleResult {
	t.Helper()
	resp, err := e.Evaluate(context.Background(), Request{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) == 0 {
		t.Fatal("no result")
	}
	for _, r := range resp.Results {
		if strings.Contains(r.Message, authPassword) {
			t.Errorf("a message contains the password: %s", r.Message)
		}
	}
	return resp.Results[0]
}

// TestCredentialsAuthenticate: an entry's credentials authenticate both the tag resolution and
// the signature fetch; the engine asks for them once per entry with the object's namespace
// and the pod spec's imagePullSecrets.
func TestCredentialsAuthenticate(t *testing.T) {
	w := newAuthWorld(t)
	e := w.engine(t, policyYAML("  validationFailureAction: Enforce\n", w.credsEntry("good")), nil)
	img := w.reg.Host + "/app:signed"
	obj := pod(t, "team", img, img)
	obj["spec"].(map[string]any)["imagePullSecrets"] = []any{map[string]any{"name": "pod-cred"}, map[string]any{"name": "other"}}
	r := firstResult(t, e, obj)
	if r.Status != Pass || r.Images[0].Digest != w.digest {
		t.Fatalf("result %s %q (digest %s), want pass at %s", r.Status, r.Message, r.Images[0].Digest, w.digest)
	}
	if got := w.creds.recorded(); len(got) != 1 || got[0] != "good team pod-cred,other" {
		t.Errorf("Scope calls %q, want one with the entry's secret, the namespace and the Pod's pull secrets", got)
	}

	deploy := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d", "namespace": "ops"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"imagePullSecrets": []any{map[string]any{"name": "deploy-cred"}},
			"containers":       []any{map[string]any{"name": "c", "image": img}},
		}}},
	}
	e = w.engine(t, strings.Replace(policyYAML("  validationFailureAction: Enforce\n", w.credsEntry("good")), "kinds: [Pod]", "kinds: [Deployment]", 1), nil)
	if r := firstResult(t, e, deploy); r.Status != Pass {
		t.Fatalf("Deployment: %s %q", r.Status, r.Message)
	}
	if got := w.creds.recorded(); got[len(got)-1] != "good ops deploy-cred" {
		t.Errorf("Scope call for a Deployment %q", got[len(got)-1])
	}
}

// TestWrongCredentialsCouldNotVerify: refused credentials — while resolving the tag or while
// fetching the signatures of an image given by digest — make the image "could not verify"
// (error, failurePolicy decides) with a message saying authentication failed; never "no
// signatures found" (fail). Nothing refused is cached.
func TestWrongCredentialsCouldNotVerify(t *testing.T) {
	w := newAuthWorld(t)
	tag := w.reg.Host + "/app:signed"
	byDigest := w.reg.Host + "/app@" + w.digest
	for _, tc := range []struct {
		name, secret, image, want string
	}{
		{"wrong password, resolving the tag", "bad", tag,
			"could not verify image " + tag + ": registry authentication failed: resolving " + tag + ": "},
		{"no credentials, resolving the tag", "", tag,
			"could not verify image " + tag + ": registry authentication failed: resolving " + tag + ": "},
		{"wrong password, fetching signatures", "bad", byDigest,
			"could not verify image " + byDigest + ": .attestors[0].entries[0].keys: registry authentication failed: fetching signatures " + w.reg.Host + "/app:sha256-"},
		{"no credentials, fetching signatures", "", byDigest,
			"could not verify image " + byDigest + ": .attestors[0].entries[0].keys: registry authentication failed: fetching signatures " + w.reg.Host + "/app:sha256-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cache.New(cache.Options{Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			e := w.engine(t, policyYAML("  validationFailureAction: Enforce\n", w.credsEntry(tc.secret)), c)
			before := w.sigReq.Load()
			r := firstResult(t, e, pod(t, "team", tc.image))
			if r.Status != Error || !strings.HasPrefix(r.Message, tc.want) {
				t.Errorf("got %s %q\nwant error %q…", r.Status, r.Message, tc.want)
			}
			if strings.Contains(r.Message, "no signatures") || strings.Contains(r.Message, "failed to verify") {
				t.Errorf("an authentication failure reads as a verification failure: %q", r.Message)
			}
			if strings.Contains(tc.name, "signatures") && w.sigReq.Load() == before {
				t.Error("the signature tag was never asked for")
			}
			// Now with the right credentials, through the same cache: nothing refused was kept.
			e2 := e.With(newEngine(t, policyYAML("  validationFailureAction: Enforce\n", w.credsEntry("good"))).Policies())
			if r := firstResult(t, e2, pod(t, "team", tc.image)); r.Status != Pass {
				t.Errorf("right credentials after a refusal: %s %q", r.Status, r.Message)
			}
		})
	}
}

// TestCredentialErrorNamesSecret: credentials that cannot be read make the entry's images
// "could not verify", naming the Secret — whether the entry verifies or only pins digests.
func TestCredentialErrorNamesSecret(t *testing.T) {
	w := newAuthWorld(t)
	img := w.reg.Host + "/app:signed"
	e := w.engine(t, policyYAML("  validationFailureAction: Enforce\n", w.credsEntry("gone")), nil)
	r := firstResult(t, e, pod(t, "team", img))
	if want := "could not verify image " + img + ": registry auth: image pull secret vouch/gone: not found"; r.Status != Error || r.Message != want {
		t.Errorf("got %s %q, want error %q", r.Status, r.Message, want)
	}
	digestOnly := "    - imageReferences: [\"*\"]\n      imageRegistryCredentials: {secrets: [gone]}\n"
	e = w.engine(t, policyYAML("  validationFailureAction: Enforce\n", digestOnly), nil)
	r = firstResult(t, e, pod(t, "team", img))
	if want := "failed to update digest: failed to fetch image reference: " + img + ", error: registry auth: image pull secret vouch/gone: not found"; r.Status != Error || r.Message != want {
		t.Errorf("digest only: got %s %q, want error %q", r.Status, r.Message, want)
	}
}

// TestEachEntryItsOwnCredentials: in one evaluation, rules whose entries carry different
// credentials do not share failures or fetched signatures: a refusal under one entry's
// credentials does not fail another's, and signatures read with one entry's credentials are
// not reused for an entry whose credentials the registry refuses.
func TestEachEntryItsOwnCredentials(t *testing.T) {
	w := newAuthWorld(t)
	img := w.reg.Host + "/app:signed"
	rule := func(name, secret string) string {
		return "  - name: " + name + "\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n" + w.credsEntry(secret)
	}
	for _, order := range [][2]string{{"bad", "good"}, {"good", "bad"}} {
		policies := "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: pol}\nspec:\n  validationFailureAction: Enforce\n  rules:\n" +
			rule("r-"+order[0], order[0]) + rule("r-"+order[1], order[1])
		e := w.engine(t, policies, nil)
		resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "team", img)})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Status{}
		for _, r := range resp.Results {
			got[r.Rule.Name] = r.Status
			if r.Rule.Name == "r-bad" && !strings.Contains(r.Message, "registry authentication failed") {
				t.Errorf("order %v: r-bad says %q", order, r.Message)
			}
		}
		if got["r-good"] != Pass || got["r-bad"] != Error {
			t.Errorf("order %v: results %v, want r-good pass and r-bad error", order, got)
		}
	}
}

// TestSharedVerificationOwnCredentials: objects with different credentials coalesce on one
// verification in flight (same policy entry, same digest); when the registry refuses the
// credentials of the object that started it, the others are decided with their own.
func TestSharedVerificationOwnCredentials(t *testing.T) {
	w := newAuthWorld(t)
	c, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	e := w.engine(t, policyYAML("  validationFailureAction: Enforce\n", w.credsEntry("")), c)
	img := w.reg.Host + "/app@" + w.digest
	withSecret := func(name, secret string) map[string]any {
		obj := pod(t, "team", img)
		obj["metadata"].(map[string]any)["name"] = name
		obj["spec"].(map[string]any)["imagePullSecrets"] = []any{map[string]any{"name": secret}}
		return obj
	}
	// Hold the first signature request until the second object has joined the verification.
	release := make(chan struct{})
	var first sync.Once
	held := make(chan struct{})
	w.holdSig = func() {
		first.Do(func() {
			close(held)
			<-release
		})
	}
	results := make(chan RuleResult, 2)
	go func() { results <- firstResult(t, e, withSecret("refused", "bad")) }()
	<-held
	go func() { results <- firstResult(t, e, withSecret("allowed", "good")) }()
	for c.Stats().Coalesced == 0 {
		runtime.Gosched()
	}
	close(release)
	got := map[string]Status{}
	for range 2 {
		r := <-results
		got[r.Images[0].Ref.String()+" "+string(r.Status)] = r.Status
	}
	var statuses []string
	for k := range got {
		statuses = append(statuses, k)
	}
	sort.Strings(statuses)
	if want := []string{img + " error", img + " pass"}; strings.Join(statuses, ",") != strings.Join(want, ",") {
		t.Errorf("outcomes %v, want one error (refused credentials) and one pass", statuses)
	}
}

// TestImageRegistryContextCredentials: an imageRegistry context entry reads the image with its
// own imageRegistryCredentials (resolved like an entry's, spec §7): with the right secret the
// data loads and the rule verifies; with the wrong one the context cannot load (error, never a
// pass) and the password appears in no message.
func TestImageRegistryContextCredentials(t *testing.T) {
	w := newAuthWorld(t)
	img := w.reg.Host + "/app:signed"
	policy := func(secret string) string {
		return contextPolicy("    context:\n    - name: imageData\n      imageRegistry:\n        reference: \"{{ images.containers.c0.reference }}\"\n"+
			"        jmesPath: resolvedImage\n        imageRegistryCredentials: {secrets: ["+secret+"]}\n"+
			"    preconditions:\n      all:\n      - {key: \"{{ imageData }}\", operator: Equals, value: \""+w.reg.Host+"/app@"+w.digest+"\"}\n",
			w.credsEntry("good"))
	}
	e := w.engine(t, policy("good"), nil)
	if r := firstResult(t, e, pod(t, "default", img)); r.Status != Pass {
		t.Fatalf("right secret: %+v", r)
	}
	e = w.engine(t, policy("bad"), nil)
	r := firstResult(t, e, pod(t, "default", img))
	if r.Status != Error || !strings.HasPrefix(r.Message, `failed to load context: context entry "imageData": failed to fetch image data `+img+": ") {
		t.Fatalf("wrong secret: %+v", r)
	}
	calls := w.creds.recorded()
	if !slices.Contains(calls, "good default ") || !slices.Contains(calls, "bad default ") {
		t.Errorf("credentials asked %v, want the context entry's secrets", calls)
	}
}
