//go:build integration

package main

// What operators see of vouch serve, through a real API server: registry credentials from
// Secrets created through the API (a policy's imageRegistryCredentials.secrets and the Pod's
// imagePullSecrets) for a private registry, Events for denials, PolicyReports for Audit
// results — and a password that appears in none of it.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var policyReportGVR = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "policyreports"}

// credentialsPolicy is e2ePolicy with imageRegistryCredentials.secrets on its verifyImages entry.
func credentialsPolicy(t *testing.T, p e2ePolicy, secrets ...string) *unstructured.Unstructured {
	t.Helper()
	obj := p.object(t)
	if len(secrets) == 0 {
		return obj
	}
	rules, _, _ := unstructured.NestedSlice(obj.Object, "spec", "rules")
	rule := rules[0].(map[string]any)
	entry := rule["verifyImages"].([]any)[0].(map[string]any)
	list := make([]any, len(secrets))
	for i, s := range secrets {
		list[i] = s
	}
	entry["imageRegistryCredentials"] = map[string]any{"secrets": list}
	if err := unstructured.SetNestedSlice(obj.Object, rules, "spec", "rules"); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestE2EOperations(t *testing.T) {
	s := startAPIServer(t)
	installKyvernoCRDs(t, s.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A private registry: htpasswd with a random canary password.
	reg := startPrivateDistribution(t, "vouch-e2e", "canary-e2e-")
	user, password, host, dockerConfig := reg.User, reg.Password, reg.Host, reg.DockerConfig
	basic := remote.WithAuth(&authn.Basic{Username: user, Password: password})
	digests := map[string]string{}
	for _, repoTag := range []string{"private/app:signed", "private/app:unsigned"} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(host + "/" + repoTag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx), basic); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
		d, _ := img.Digest()
		digests[repoTag] = d.String()
	}
	env := newToolEnv(t)
	if err := os.MkdirAll(filepath.Join(env.home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.home, ".docker", "config.json"), dockerConfig(password), 0o600); err != nil {
		t.Fatal(err)
	}
	cosign := toolPath(t, "cosign")
	key := env.generateKeyPair(t, cosign, "k")
	env.mustRun(t, "", nil, cosign, "sign", "--key", key.private, "--tlog-upload=false", "-y", host+"/private/app@"+digests["private/app:signed"])
	image := func(repoTag string) string { return host + "/" + repoTag }
	pinned := func(repoTag string) string { return host + "/" + repoTag + "@" + digests[repoTag] }

	// Secrets through the API: vouch's namespace holds the policy's, the Pod's namespace its own.
	for _, ns := range []string{"vouch", "private", "podsecret", "wrongcred", "audit"} {
		createNamespace(t, s.Client, ns, nil)
	}
	secret := func(ns, name, pass string) {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(pass)}}
		if _, err := s.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating Secret %s/%s: %v", ns, name, err)
		}
	}
	secret("vouch", "regcred", password)
	secret("vouch", "wrong", "not-the-password")
	secret("podsecret", "pull", password)

	base := e2ePolicy{kind: "ClusterPolicy", action: "Enforce", failurePolicy: "Fail", ref: host + "/private/*", key: key.pem}
	for _, p := range []struct {
		policy  e2ePolicy
		secrets []string
	}{
		{withName(base, "private-signed", "private"), []string{"regcred"}},
		{withName(base, "pod-secret", "podsecret"), nil},
		{withName(base, "wrong-secret", "wrongcred"), []string{"wrong"}},
		{func() e2ePolicy {
			p := withName(base, "audit-private", "audit")
			p.action, p.noPin = "Audit", true
			return p
		}(), []string{"regcred"}},
	} {
		if _, err := s.Dynamic.Resource(clusterPolicyGVR).Create(ctx, credentialsPolicy(t, p.policy, p.secrets...), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating ClusterPolicy %s: %v", p.policy.name, err)
		}
	}

	vouch := startServeProcess(t, s, "--namespace", "vouch")
	registerWebhook(t, s.Client, s.PKI.CAPEM, vouch.URL, e2eWebhookTimeout, admissionregistrationv1.Fail)
	pods := s.Client.CoreV1().Pods

	var seen []string // everything an operator or client can read, scanned for the password
	t.Run("a policy's imageRegistryCredentials.secrets authenticate", func(t *testing.T) {
		got, err := pods("private").Create(ctx, e2ePod("private", "signed", nil, image("private/app:signed")), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("signed image in the private registry: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != pinned("private/app:signed") {
			t.Errorf("stored image = %s, want %s", img, pinned("private/app:signed"))
		}
	})

	t.Run("the Pod's imagePullSecrets authenticate", func(t *testing.T) {
		pod := e2ePod("podsecret", "signed", nil, image("private/app:signed"))
		pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
		got, err := pods("podsecret").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("signed image with the Pod's pull secret: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != pinned("private/app:signed") {
			t.Errorf("stored image = %s, want %s", img, pinned("private/app:signed"))
		}
		_, err = pods("podsecret").Create(ctx, e2ePod("podsecret", "nosecret", nil, image("private/app:signed")), metav1.CreateOptions{})
		deniedBy(t, err, mutatingWebhookName, "pod-secret", "could not verify image "+image("private/app:signed"), "registry authentication failed")
		seen = append(seen, err.Error())
	})

	t.Run("wrong credentials: could not verify, not unsigned", func(t *testing.T) {
		_, err := pods("wrongcred").Create(ctx, e2ePod("wrongcred", "signed", nil, image("private/app:signed")), metav1.CreateOptions{})
		deniedBy(t, err, mutatingWebhookName, "wrong-secret", "could not verify image "+image("private/app:signed"), "registry authentication failed")
		if strings.Contains(err.Error(), "no signatures found") {
			t.Errorf("an authentication failure reported as unsigned: %v", err)
		}
		seen = append(seen, err.Error())
	})

	t.Run("a denial is an Event on the policy", func(t *testing.T) {
		_, err := pods("private").Create(ctx, e2ePod("private", "unsigned", nil, image("private/app:unsigned")), metav1.CreateOptions{})
		deniedBy(t, err, mutatingWebhookName, "private-signed", "no signatures found")
		wctx, wcancel := context.WithTimeout(ctx, apiWaitTimeout)
		defer wcancel()
		waitFor(t, wctx, "a PolicyViolation Event on ClusterPolicy private-signed", func() error {
			events, err := s.Client.EventsV1().Events("").List(wctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, e := range events.Items {
				raw, _ := json.Marshal(e)
				seen = append(seen, string(raw))
				if e.Regarding.Kind == "ClusterPolicy" && e.Regarding.Name == "private-signed" && e.Reason == "PolicyViolation" {
					if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, "private/unsigned") || !strings.Contains(e.Note, "failed to verify image") {
						return fmt.Errorf("event %s: type %s, note %q", e.Name, e.Type, e.Note)
					}
					return nil
				}
			}
			return fmt.Errorf("%d events, none for private-signed", len(events.Items))
		})
	})

	t.Run("an Audit result is a PolicyReport", func(t *testing.T) {
		got, err := pods("audit").Create(ctx, e2ePod("audit", "unsigned", nil, image("private/app:unsigned")), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("Audit denied: %v", err)
		}
		wctx, wcancel := context.WithTimeout(ctx, apiWaitTimeout)
		defer wcancel()
		reportName := "vouch-" + string(got.UID)
		waitFor(t, wctx, "PolicyReport "+reportName, func() error {
			rep, err := s.Dynamic.Resource(policyReportGVR).Namespace("audit").Get(wctx, reportName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			raw, _ := json.Marshal(rep.Object)
			seen = append(seen, string(raw))
			results, _, _ := unstructured.NestedSlice(rep.Object, "results")
			for _, r := range results {
				r, _ := r.(map[string]any)
				if r["policy"] == "audit-private" && r["result"] == "fail" && strings.Contains(fmt.Sprint(r["message"]), "failed to verify image") {
					scope, _, _ := unstructured.NestedString(rep.Object, "scope", "uid")
					if scope != string(got.UID) {
						return fmt.Errorf("report scope uid %q, want the Pod's %q", scope, got.UID)
					}
					return nil
				}
			}
			return fmt.Errorf("report results %v", results)
		})
	})

	t.Run("the password appears nowhere", func(t *testing.T) {
		seen = append(seen, vouch.proc.logs.String())
		metrics := scrape(t, vouch.URL, s.PKI.clientTLS())
		seen = append(seen, metrics)
		if !strings.Contains(metrics, "vouch_registry_requests_total") {
			t.Errorf("/metrics has no vouch_registry_requests_total:\n%s", lastLines(metrics, 20))
		}
		for _, text := range seen {
			for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))} {
				if strings.Contains(text, secret) {
					t.Errorf("the registry password leaked into: %s", lastLines(text, 5))
				}
			}
		}
	})
}

func withName(p e2ePolicy, name, namespace string) e2ePolicy {
	p.name, p.namespaces = name, []string{namespace}
	return p
}

// scrape returns vouch serve's /metrics.
func scrape(t *testing.T, url string, cfg *tls.Config) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s %v", resp.Status, err)
	}
	return string(b)
}
