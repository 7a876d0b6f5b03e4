package credentials

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

const (
	host   = "registry.example.com:5000"
	canary = "canary-Cr3d-9d1e77f0"
)

// dockerConfig is a docker config JSON with one user:password for a registry.
func dockerConfig(registry, user, password string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, registry, auth)
}

func secretObj(ns, name, user string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(host, user, canary)},
	}
}

// userFor resolves the scope's keychain for the test registry and returns the user name.
func userFor(t *testing.T, kc authn.Keychain, registry string) string {
	t.Helper()
	repo, err := name.NewRepository(registry + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(repo)
	if err != nil {
		t.Fatal(err)
	}
	if auth == authn.Anonymous {
		return "anonymous"
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Username
}

// isolate gives the test an empty docker config and HOME, so "default" finds nothing.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, ".docker"))
	return dir
}

// TestMergeOrder: the entry's secrets, then the Pod's imagePullSecrets, then the global ones,
// then docker config files, then the helpers — first match per registry wins; anonymous when
// nothing matches.
func TestMergeOrder(t *testing.T) {
	dir := isolate(t)
	if err := os.MkdirAll(filepath.Join(dir, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".docker", "config.json"), dockerConfig(host, "helper-default", canary), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(file, dockerConfig(host, "file-user", canary), 0o600); err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset(
		secretObj("vouch", "policy-cred", "policy-user"),
		secretObj("team", "pod-cred", "pod-user"),
		secretObj("vouch", "global-cred", "global-user"),
	)
	r, err := New(Options{Kube: kube, ImagePullSecrets: []string{"global-cred"}, ConfigFiles: []string{file}, Helpers: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	noGlobal, err := New(Options{Kube: kube, ConfigFiles: []string{file}, Helpers: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	onlyHelpers, err := New(Options{Kube: kube, Helpers: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	noHelpers, err := New(Options{Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	policyCreds := &v1.ImageRegistryCredentials{Secrets: []string{"policy-cred"}}
	for _, tc := range []struct {
		name     string
		r        *Resolver
		entry    *v1.ImageRegistryCredentials
		pod      []string
		registry string
		want     string
	}{
		{"policy secret first", r, policyCreds, []string{"pod-cred"}, host, "policy-user"},
		{"then the Pod's", r, nil, []string{"pod-cred"}, host, "pod-user"},
		{"then the global flag", r, nil, nil, host, "global-user"},
		{"then the files", noGlobal, nil, nil, host, "file-user"},
		{"then the helpers", onlyHelpers, nil, nil, host, "helper-default"},
		{"an entry's providers replace the helpers", onlyHelpers, &v1.ImageRegistryCredentials{Providers: []v1.CredentialProvider{"github"}}, nil, host, "anonymous"},
		{"nothing matches: anonymous", noHelpers, nil, nil, host, "anonymous"},
		{"another registry: anonymous", r, policyCreds, []string{"pod-cred"}, "other.example.com", "anonymous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.r.Scope(context.Background(), tc.entry, "team", tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if got := userFor(t, s.Keychain, tc.registry); got != tc.want {
				t.Errorf("user = %s, want %s", got, tc.want)
			}
			if strings.Contains(s.Key, canary) || strings.Contains(s.Key, "policy-cred") {
				t.Errorf("scope key %q shows what it identifies", s.Key)
			}
		})
	}
}

// TestScopeKey: equal configurations share a key (and so a registry client and its tokens);
// a changed Secret, another Pod secret or other providers make another one.
func TestScopeKey(t *testing.T) {
	isolate(t)
	kube := fake.NewClientset(secretObj("vouch", "a", "a"), secretObj("team", "p", "p"))
	r, err := New(Options{Kube: kube, Helpers: AllHelpers, SecretTTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	key := func(entry *v1.ImageRegistryCredentials, pod ...string) string {
		s, err := r.Scope(context.Background(), entry, "team", pod)
		if err != nil {
			t.Fatal(err)
		}
		return s.Key
	}
	a := &v1.ImageRegistryCredentials{Secrets: []string{"a"}}
	base := key(a)
	if key(a) != base {
		t.Error("the same configuration gave another key")
	}
	if key(nil) == base || key(a, "p") == base || key(&v1.ImageRegistryCredentials{Secrets: []string{"a"}, Providers: []v1.CredentialProvider{"amazon"}}) == base {
		t.Error("another configuration gave the same key")
	}
	if key(nil, "missing") != key(nil) {
		t.Error("a missing Pod secret changed the key")
	}
	s := secretObj("vouch", "a", "a2")
	s.ResourceVersion = "2"
	if _, err := kube.CoreV1().Secrets("vouch").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if key(a) == base {
		t.Error("an updated Secret kept its key")
	}
}

// TestSecretErrors: a Secret named by a policy or by --imagePullSecrets that is missing,
// forbidden or not a pull secret is an error naming it and never quoting it; a Pod's missing
// or non-pull secret is skipped as the kubelet skips it, a forbidden one is an error.
func TestSecretErrors(t *testing.T) {
	isolate(t)
	opaque := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "vouch", Name: "opaque"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte(canary)},
	}
	malformed := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "vouch", Name: "malformed"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"x":` + canary + `}}`)},
	}
	podOpaque := opaque.DeepCopy()
	podOpaque.Namespace = "team"
	kube := fake.NewClientset(opaque, malformed, podOpaque)
	kube.PrependReactor("get", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "locked" || a.(k8stesting.GetAction).GetName() == "locked" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "locked", errors.New("RBAC: "+canary))
		}
		return false, nil, nil
	})
	r, err := New(Options{Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		entry   []string
		global  []string
		pod     []string
		podNS   string
		wantErr string
		is      error
	}{
		{name: "policy secret missing", entry: []string{"regcred"}, wantErr: "image pull secret vouch/regcred: not found", is: ErrSecretNotFound},
		{name: "policy secret in another namespace", entry: []string{"other/regcred"}, wantErr: "image pull secret other/regcred: not found", is: ErrSecretNotFound},
		{name: "policy secret forbidden", entry: []string{"locked"}, wantErr: "image pull secret vouch/locked: vouch is not allowed to read it", is: ErrSecretForbidden},
		{name: "policy secret opaque", entry: []string{"opaque"}, wantErr: `image pull secret vouch/opaque: not a pull secret: type "Opaque"`, is: ErrNotPullSecret},
		{name: "policy secret malformed", entry: []string{"malformed"}, wantErr: "image pull secret vouch/malformed: not a pull secret: its .dockerconfigjson is malformed", is: ErrNotPullSecret},
		{name: "global secret missing", global: []string{"gone"}, wantErr: "image pull secret vouch/gone: not found", is: ErrSecretNotFound},
		{name: "global secret elsewhere missing", global: []string{"ns/gone"}, wantErr: "image pull secret ns/gone: not found", is: ErrSecretNotFound},
		{name: "pod secret missing: skipped", pod: []string{"gone"}, podNS: "team"},
		{name: "pod secret opaque: skipped", pod: []string{"opaque"}, podNS: "team"},
		{name: "pod secret forbidden", pod: []string{"x"}, podNS: "locked", wantErr: "image pull secret locked/x: vouch is not allowed to read it", is: ErrSecretForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr := r
			if tc.global != nil {
				if rr, err = New(Options{Kube: kube, ImagePullSecrets: tc.global}); err != nil {
					t.Fatal(err)
				}
			}
			var entry *v1.ImageRegistryCredentials
			if tc.entry != nil {
				entry = &v1.ImageRegistryCredentials{Secrets: tc.entry}
			}
			_, err := rr.Scope(ctx, entry, tc.podNS, tc.pod)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.wantErr == "":
				return
			case err == nil:
				t.Fatalf("no error, want %q", tc.wantErr)
			case !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.is):
				t.Errorf("error %q, want one containing %q and matching %v", err, tc.wantErr, tc.is)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error quotes the Secret: %v", err)
			}
		})
	}
}

// TestSecretCache: a Secret is read once per TTL however many admissions need it, concurrent
// reads are one request, "not found" is kept for the shorter TTL, and when the API server is
// unavailable the last value read goes on being used.
func TestSecretCache(t *testing.T) {
	isolate(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	kube := fake.NewClientset(secretObj("vouch", "a", "a"))
	var down atomic.Bool
	var gets atomic.Int64
	kube.PrependReactor("get", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		if down.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	r, err := New(Options{Kube: kube, Now: clock, SecretTTL: time.Minute, MissingSecretTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	entry := &v1.ImageRegistryCredentials{Secrets: []string{"a"}}
	scope := func() error {
		_, err := r.Scope(context.Background(), entry, "team", nil)
		return err
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := scope(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := gets.Load(); n != 1 {
		t.Errorf("20 concurrent admissions read the Secret %d times, want 1", n)
	}
	advance(30 * time.Second)
	_ = scope()
	if n := gets.Load(); n != 1 {
		t.Errorf("within the TTL: %d reads, want 1", n)
	}
	advance(31 * time.Second)
	_ = scope()
	if n := gets.Load(); n != 2 {
		t.Errorf("after the TTL: %d reads, want 2", n)
	}
	down.Store(true)
	advance(2 * time.Minute)
	if err := scope(); err != nil {
		t.Errorf("API server down, Secret read before: %v, want the last value", err)
	}
	down.Store(false)

	missing := &v1.ImageRegistryCredentials{Secrets: []string{"later"}}
	before := gets.Load()
	for range 3 {
		if _, err := r.Scope(context.Background(), missing, "team", nil); !errors.Is(err, ErrSecretNotFound) {
			t.Fatalf("missing secret: %v", err)
		}
	}
	if n := gets.Load() - before; n != 1 {
		t.Errorf("a missing Secret was read %d times within its TTL, want 1", n)
	}
	if _, err := kube.CoreV1().Secrets("vouch").Create(context.Background(), secretObj("vouch", "later", "l"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	advance(11 * time.Second)
	if _, err := r.Scope(context.Background(), missing, "team", nil); err != nil {
		t.Errorf("a Secret created after the missing TTL: %v", err)
	}

	downNew, err := New(Options{Kube: kube, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	_, err = downNew.Scope(context.Background(), entry, "team", nil)
	if err == nil || !strings.Contains(err.Error(), "reading image pull secret vouch/a: the API server answered 503 ServiceUnavailable") {
		t.Errorf("API server down, nothing read before: %v", err)
	}
}

// TestNoCluster: without a cluster, Secret names are not read (as in the Kyverno CLI), and
// --imagePullSecrets is refused.
func TestNoCluster(t *testing.T) {
	isolate(t)
	if _, err := New(Options{ImagePullSecrets: []string{"regcred"}}); err == nil {
		t.Error("global pull secrets without a cluster were accepted")
	}
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Scope(context.Background(), &v1.ImageRegistryCredentials{Secrets: []string{"regcred"}}, "team", []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	if got := userFor(t, s.Keychain, host); got != "anonymous" {
		t.Errorf("user %s, want anonymous", got)
	}
}

// TestConfigFileErrors: a docker config file that does not parse is refused without quoting it.
func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"auths": `+canary), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bad, filepath.Join(dir, "missing.json")} {
		_, err := New(Options{ConfigFiles: []string{f}})
		if err == nil || !strings.Contains(err.Error(), f) || strings.Contains(err.Error(), canary) {
			t.Errorf("file %s: error %v", f, err)
		}
	}
}

func TestParseHelpers(t *testing.T) {
	got, err := ParseHelpers([]string{"Default", " amazon", "", "default", "github"})
	if err != nil || strings.Join(got, ",") != "default,amazon,github" {
		t.Errorf("ParseHelpers = %v, %v", got, err)
	}
	if _, err := ParseHelpers([]string{"docker"}); err == nil || !strings.Contains(err.Error(), `"docker"`) {
		t.Errorf("unknown helper: %v", err)
	}
	if _, err := New(Options{Helpers: []string{"gcp"}}); err == nil {
		t.Error("New accepted an unknown helper")
	}
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Scope(context.Background(), &v1.ImageRegistryCredentials{Providers: []v1.CredentialProvider{"gcp"}}, "", nil); err == nil {
		t.Error("Scope accepted an unknown provider")
	}
}

func TestParseSecretRef(t *testing.T) {
	for in, want := range map[string]string{"a": "vouch/a", "ns/a": "ns/a", " a ": "vouch/a"} {
		if r, err := ParseSecretRef(in, "vouch"); err != nil || r.String() != want {
			t.Errorf("ParseSecretRef(%q) = %v, %v", in, r, err)
		}
	}
	for _, in := range []string{"", "/a", "ns/", "a/b/c"} {
		if _, err := ParseSecretRef(in, "vouch"); err == nil {
			t.Errorf("ParseSecretRef(%q) accepted", in)
		}
	}
}

// TestHelperHostMatching: each cloud helper is consulted for its own hosts only, matched
// exactly — not for look-alikes such as "x.azurecr.io.example.com", which the ACR helper's own
// unanchored pattern would accept.
func TestHelperHostMatching(t *testing.T) {
	for _, tc := range []struct {
		match func(string) bool
		yes   []string
		no    []string
	}{
		{isGoogleHost, []string{"gcr.io", "eu.gcr.io", "europe-docker.pkg.dev"}, []string{"gcr.io.example.com", "notgcr.io", "pkg.dev.example.com"}},
		{isECRHost, []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "public.ecr.aws"},
			[]string{"123456789012.dkr.ecr.us-east-1.amazonaws.com.example.com", "dkr.ecr.us-east-1.amazonaws.com", "ecr.aws"}},
		{isACRHost, []string{"myregistry.azurecr.io", "my-reg.azurecr.cn", "a.b.azurecr.us"},
			[]string{"x.azurecr.io.example.com", "azurecr.io", "x.azurecr.me", "mcr.microsoft.com"}},
		{isGitHubHost, []string{"ghcr.io"}, []string{"ghcr.io.example.com", "docker.pkg.github.com"}},
	} {
		for _, h := range tc.yes {
			if !tc.match(h) {
				t.Errorf("%s not matched", h)
			}
		}
		for _, h := range append(tc.no, "127.0.0.1", "localhost", "::1", "registry.internal", "10.0.0.5") {
			if tc.match(h) {
				t.Errorf("%s matched", h)
			}
		}
	}
	for in, want := range map[string]string{"GHCR.io": "ghcr.io", "ghcr.io:443": "ghcr.io", "[::1]:5000": "::1", "127.0.0.1:5000": "127.0.0.1"} {
		if got := hostName(in); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}

	// The guard passes exactly the matching hosts to the helper.
	var asked []string
	kc := guarded{match: isACRHost, inner: recordingKeychain{&asked}}
	for _, r := range []string{"myregistry.azurecr.io/app", "x.azurecr.io.example.com/app", "127.0.0.1:5000/app"} {
		repo, err := name.NewRepository(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kc.Resolve(repo); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(asked, ",") != "myregistry.azurecr.io" {
		t.Errorf("the helper was asked for %v, want only myregistry.azurecr.io", asked)
	}
}

type recordingKeychain struct{ asked *[]string }

func (k recordingKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	*k.asked = append(*k.asked, r.RegistryStr())
	return authn.Anonymous, nil
}

// TestHelpersMakeNoCallForOtherRegistries: with every helper enabled, credentials for a
// loopback, private or look-alike registry are resolved without any network call. Every
// endpoint the cloud SDKs could call (instance metadata, service endpoints, proxies) points at
// a recorder that must stay silent.
func TestHelpersMakeNoCallForOtherRegistries(t *testing.T) {
	isolate(t)
	var calls atomic.Int64
	var mu sync.Mutex
	var seen []string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Host+r.URL.Path)
		mu.Unlock()
		http.Error(w, "no network", http.StatusForbidden)
	}))
	defer rec.Close()
	addr := strings.TrimPrefix(rec.URL, "http://")
	for k, v := range map[string]string{
		"HTTPS_PROXY": rec.URL, "HTTP_PROXY": rec.URL, "NO_PROXY": "", "https_proxy": rec.URL, "http_proxy": rec.URL,
		"GCE_METADATA_HOST": addr, "GCE_METADATA_IP": addr,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": rec.URL, "AWS_ENDPOINT_URL": rec.URL, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ECR_DISABLE_CACHE": "true",
		"AZURE_CLIENT_ID": "id", "AZURE_CLIENT_SECRET": "secret", "AZURE_TENANT_ID": "tenant", "AZURE_AUTHORITY_HOST": rec.URL,
		"GITHUB_TOKEN": "",
	} {
		t.Setenv(k, v)
	}
	kc := helpersKeychain(AllHelpers)
	for _, reg := range []string{
		"127.0.0.1:5000", "localhost:5000", "[::1]:5000", "registry.internal:5000", "10.1.2.3",
		"x.azurecr.io.example.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com.example.com", "gcr.io.example.com", "ghcr.io.example.com",
	} {
		repo, err := name.NewRepository(reg+"/app", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		auth, err := kc.Resolve(repo)
		if err != nil || auth != authn.Anonymous {
			t.Errorf("%s: %v, %v, want anonymous", reg, auth, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: resolving took %v", reg, d)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the helpers made %d network calls: %v", n, seen)
	}
}
