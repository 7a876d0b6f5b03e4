package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vouchproject/vouch/internal/credentials"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/report"
	"github.com/vouchproject/vouch/internal/webhook"
)

const (
	credUser   = "vouch-pull"
	credCanary = "canary-Pa55w0rd-cli-8e2b61"
)

// credRegistry is an in-process registry requiring basic auth (once set up), with a signed image
// in each of the repositories named, and the key that signed them.
func credRegistry(t *testing.T, repos ...string) (*fixture.Registry, *fixture.Key, map[string]string) {
	t.Helper()
	var enforce atomic.Bool
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); enforce.Load() && (!ok || u != credUser || p != credCanary) {
				// Like a careless registry, echo what was sent: vouch must scrub it.
				w.Header().Set("WWW-Authenticate", `Basic realm="vouch-test"`)
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials %s:%s (%s)"}]}`, u, p, r.Header.Get("Authorization"))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(reg.Close)
	key, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	ctx := context.Background()
	for _, repo := range repos {
		d, err := reg.Push(ctx, repo+":signed")
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Sign(ctx, repo, d, key.Private, nil, ""); err != nil {
			t.Fatal(err)
		}
		digests[repo] = d
	}
	enforce.Store(true)
	return reg, key, digests
}

func credDockerConfig(host, password string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(credUser + ":" + password))
	return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth)
}

func credSecret(ns, name, host, password string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "uid", ResourceVersion: "1"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: credDockerConfig(host, password)},
	}
}

// credPolicy verifies the images of each repository with the key; the entries of the repos
// in secrets name that Secret in imageRegistryCredentials.
func credPolicy(host, pem string, repos []string, secrets map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: private-images}\nspec:\n  validationFailureAction: Enforce\n  webhookTimeoutSeconds: 10\n  rules:\n")
	for _, repo := range repos {
		fmt.Fprintf(&b, "  - name: %s\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"%s/%s*\"]\n", repo, host, repo)
		if s := secrets[repo]; s != "" {
			fmt.Fprintf(&b, "      imageRegistryCredentials: {secrets: [%s]}\n", s)
		}
		b.WriteString("      attestors:\n      - entries:\n        - keys:\n            rekor: {ignoreTlog: true}\n            ctlog: {ignoreSCT: true}\n            publicKeys: |-\n")
		for _, l := range strings.Split(strings.TrimSpace(pem), "\n") {
			b.WriteString("              " + l + "\n")
		}
	}
	return b.String()
}

func credPod(ns, name, image string, pullSecrets ...string) map[string]any {
	spec := map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}}
	if len(pullSecrets) > 0 {
		var list []any
		for _, s := range pullSecrets {
			list = append(list, map[string]any{"name": s})
		}
		spec["imagePullSecrets"] = list
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec}
}

// credLogs is a log sink shared by the server's goroutines.
type credLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *credLogs) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *credLogs) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeCredentials runs admissions through the webhook wired as `vouch serve` wires it, with
// Secrets read through a (fake) Kubernetes API: pulls authenticated by a policy's secret, by the
// Pod's imagePullSecrets, by the global --imagePullSecrets; refused credentials and a missing
// Secret are "could not verify" denials saying so. The password appears in no log line, no
// admission response, no report and no metric.
func TestServeCredentials(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // the "default" helper finds nothing
	repos := []string{"policy", "pod", "global", "wrong", "missing"}
	reg, key, digests := credRegistry(t, repos...)
	host := reg.Host
	kube := fake.NewClientset(
		credSecret("vouch", "policy-cred", host, credCanary),
		credSecret("vouch", "wrong-cred", host, "not-the-password"),
		credSecret("team", "team-cred", host, credCanary),
		credSecret("vouch", "global-cred", host, credCanary),
	)
	docs, err := manifest.Split("p.yaml", []byte(credPolicy(host, key.PEM, repos,
		map[string]string{"policy": "policy-cred", "wrong": "wrong-cred", "missing": "nope"})))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		t.Fatal(err)
	}
	logs := &credLogs{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var scrape []func() string

	// Two servers: one without global secrets (so that a pass is due to the policy's or the
	// Pod's Secret), one with --imagePullSecrets=global-cred.
	server := func(global ...string) (*httptest.Server, *engine.Engine) {
		flags := &credentialFlags{namespace: "vouch", imagePullSecrets: global, helpers: credentials.AllHelpers, podSecrets: true}
		creds, err := flags.resolver(kube)
		if err != nil {
			t.Fatal(err)
		}
		eng, err := newEngine(set, registry.Options{}, engineExtras{credentials: creds})
		if err != nil {
			t.Fatal(err)
		}
		metrics := prometheus.NewRegistry()
		srv, err := webhook.New(webhook.Options{TLS: &tls.Config{}, Engine: func() *engine.Engine { return eng }, Registry: metrics, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		t.Cleanup(hs.Close)
		scrape = append(scrape, func() string { return credGet(t, hs.URL+"/metrics") })
		return hs, eng
	}
	plain, plainEngine := server()
	global, globalEngine := server("global-cred")

	img := func(repo string) string { return host + "/" + repo + ":signed" }
	var seen []string // every admission response and report, for the canary check
	for _, tc := range []struct {
		name    string
		srv     *httptest.Server
		eng     *engine.Engine
		pod     map[string]any
		allowed bool
		message string // a substring of the denial
	}{
		{"policy secret", plain, plainEngine, credPod("team", "a", img("policy")), true, ""},
		{"the Pod's imagePullSecrets", plain, plainEngine, credPod("team", "b", img("pod"), "team-cred"), true, ""},
		{"the Pod's missing imagePullSecrets are skipped", plain, plainEngine, credPod("team", "c", img("pod"), "not-there"), false,
			"could not verify image " + img("pod") + ": registry authentication failed: resolving " + img("pod")},
		{"global --imagePullSecrets", global, globalEngine, credPod("team", "d", img("global")), true, ""},
		{"no credentials", plain, plainEngine, credPod("team", "e", img("global")), false,
			"could not verify image " + img("global") + ": registry authentication failed"},
		{"wrong password in the policy's secret", global, globalEngine, credPod("team", "f", img("wrong")), false,
			"could not verify image " + img("wrong") + ": registry authentication failed: resolving " + img("wrong")},
		{"wrong password, image by digest: the signature fetch is refused", global, globalEngine,
			credPod("team", "g", host+"/wrong@"+digests["wrong"]), false,
			"could not verify image " + host + "/wrong@" + digests["wrong"] + ": .attestors[0].entries[0].keys: registry authentication failed: fetching signatures"},
		{"the policy's secret is missing", global, globalEngine, credPod("team", "h", img("missing")), false,
			"could not verify image " + img("missing") + ": registry auth: image pull secret vouch/nope: not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			allowed, message, patch := credAdmit(t, tc.srv.URL, tc.pod)
			seen = append(seen, message, patch)
			message = strings.Join(strings.Fields(message), " ") // the denial is YAML, folded
			if allowed != tc.allowed || !strings.Contains(message, tc.message) {
				t.Errorf("allowed=%v %q, want allowed=%v with %q", allowed, message, tc.allowed, tc.message)
			}
			if strings.Contains(message, "no signatures") || strings.Contains(message, "failed to verify image") {
				t.Errorf("an authentication problem reads as a verification failure: %s", message)
			}
			if tc.allowed {
				repo := strings.TrimSuffix(strings.TrimPrefix(tc.pod["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"].(string), host+"/"), ":signed")
				if !strings.Contains(patch, digests[repo]) {
					t.Errorf("patch %s does not pin %s", patch, digests[repo])
				}
			}
			// The same object through the CLI's report: what `vouch apply -o json` and the
			// table print.
			resp, err := tc.eng.Evaluate(context.Background(), engine.Request{Object: tc.pod})
			if err != nil {
				t.Fatal(err)
			}
			rep := report.New()
			rep.Add(resp)
			var out bytes.Buffer
			if err := rep.WriteJSON(&out); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteTable(&out, false); err != nil {
				t.Fatal(err)
			}
			seen = append(seen, out.String())
		})
	}
	for _, m := range scrape {
		seen = append(seen, m())
	}
	seen = append(seen, logs.String())
	// The check is worth something only if the denials went through the logs and the registry
	// requests through the metrics.
	if !strings.Contains(logs.String(), "registry authentication failed") {
		t.Errorf("the logs hold no denial:\n%s", logs.String())
	}
	assertNoCanary(t, credCanary, seen...)
}

// assertNoCanary fails when a text holds the password, in clear or in any encoding a
// credential travels in.
func assertNoCanary(t *testing.T, password string, texts ...string) {
	t.Helper()
	forms := []string{password, base64.StdEncoding.EncodeToString([]byte(credUser + ":" + password))}
	for _, text := range texts {
		for _, f := range forms {
			if i := strings.Index(text, f); i >= 0 {
				lo, hi := max(0, i-200), min(len(text), i+len(f)+50)
				t.Errorf("a credential leaked: …%s…", text[lo:hi])
			}
		}
	}
}

// credAdmit posts a CREATE AdmissionReview for obj to /mutate and returns the decision, the
// denial message and the JSON patch.
func credAdmit(t *testing.T, url string, obj map[string]any) (bool, string, string) {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	meta := obj["metadata"].(map[string]any)
	review := map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "u-" + meta["name"].(string), "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace": meta["namespace"], "name": meta["name"], "operation": "CREATE",
			"userInfo": map[string]any{"username": "alice"}, "object": json.RawMessage(raw),
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/mutate?timeout=10s", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Response struct {
			Allowed bool   `json:"allowed"`
			Patch   []byte `json:"patch"`
			Status  struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return out.Response.Allowed, out.Response.Status.Message, string(out.Response.Patch)
}

func credGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestApplyRegistryCredentials: `vouch apply` authenticates with a docker config file given
// with --registry-credentials, or with the docker config ($DOCKER_CONFIG) through the default
// helper; wrong or no credentials are errors saying authentication failed; a policy's secrets
// are not read (no cluster) and a warning says so. No output holds the password.
func TestApplyRegistryCredentials(t *testing.T) {
	reg, key, _ := credRegistry(t, "app")
	image := reg.Host + "/app:signed"
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pol := write("policy.yaml", []byte(credPolicy(reg.Host, key.PEM, []string{"app"}, map[string]string{"app": "regcred"})))
	podYAML, err := json.Marshal(credPod("default", "p", image))
	if err != nil {
		t.Fatal(err)
	}
	pod := write("pod.json", podYAML)
	good := write("good.json", credDockerConfig(reg.Host, credCanary))
	bad := write("bad.json", credDockerConfig(reg.Host, "not-the-password"))
	write("docker/config.json", credDockerConfig(reg.Host, credCanary))
	empty := filepath.Join(dir, "empty-docker")

	var outputs []string
	for _, tc := range []struct {
		name         string
		dockerConfig string
		args         []string
		code         int
		want         string
	}{
		{"--registry-credentials", empty, []string{"--registry-credentials", good}, exitOK, `"result": "pass"`},
		{"docker config", filepath.Join(dir, "docker"), nil, exitOK, `"result": "pass"`},
		{"docker config, helpers off", filepath.Join(dir, "docker"), []string{"--registryCredentialHelpers="}, exitFailed, "registry authentication failed"},
		{"wrong password", empty, []string{"--registry-credentials", bad}, exitFailed, "could not verify image " + image + ": registry authentication failed"},
		{"no credentials", empty, nil, exitFailed, "could not verify image " + image + ": registry authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", tc.dockerConfig)
			code, out, errOut := runCLI(append([]string{"apply", pol, "--resource", pod, "-o", "json"}, tc.args...)...)
			outputs = append(outputs, out, errOut)
			if code != tc.code || !strings.Contains(strings.ReplaceAll(out, `":"`, `": "`), tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
			if !strings.Contains(errOut, "warning: policy private-images: imageRegistryCredentials.secrets regcred are not read without a cluster") {
				t.Errorf("no warning about the unread secret:\n%s", errOut)
			}
			if strings.Contains(out, "no signatures") {
				t.Errorf("an authentication failure reads as no signatures:\n%s", out)
			}
		})
	}
	assertNoCanary(t, credCanary, outputs...)

	code, _, errOut := runCLI("apply", pol, "--resource", pod, "--registryCredentialHelpers", "docker")
	if code != exitInvalid || !strings.Contains(errOut, `unknown registry credential helper "docker"`) {
		t.Errorf("unknown helper: exit %d: %s", code, errOut)
	}
}
