//go:build integration

package main

// End-to-end tests of `vouch serve`: the built binary runs as a process in front of a real
// kube-apiserver (startAPIServer), registered with webhook configurations, reading Kyverno
// policies from the API server. Images live in the distribution registry process, signed with
// the real cosign v2 CLI. Every admission below goes through the API server as `kubectl apply`
// would: client-go → kube-apiserver → vouch's /mutate and /validate → etcd.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/source"
)

// e2eWebhookTimeout is the timeoutSeconds of vouch's webhook configurations: the API server
// sends it as ?timeout= and gives up on the webhook after it.
const e2eWebhookTimeout = 10

// vouchServe is a running `vouch serve` process.
type vouchServe struct {
	URL  string // https://127.0.0.1:PORT
	proc *process
}

// startServeProcess starts the built vouch binary as `vouch serve` against the API server, with a
// serving certificate from the API server's test CA, and waits until /readyz answers 200 (the
// cluster's policies are loaded).
func startServeProcess(t *testing.T, s *apiServer, args ...string) *vouchServe {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := s.PKI.ServingPEM(t)
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v := &vouchServe{}
	v.URL = startWithFreePorts(t, "vouch serve", func() (*process, string, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, "", err
		}
		url := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
		// Registries other than loopback ones are unreachable: a refused proxy.
		env := []string{"HOME=" + dir, "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY="}
		p, err := startProcess(t, "vouch serve", vouchBinary, env, append([]string{"serve",
			"--listen", fmt.Sprintf("127.0.0.1:%d", ports[0]),
			"--kubeconfig", s.Kubeconfig,
			"--tls-cert-file", cert, "--tls-key-file", key,
			"--shutdown-grace", "2s",
		}, args...)...)
		if err != nil {
			return nil, "", err
		}
		v.proc = p
		hc := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: s.PKI.clientTLS()}, Timeout: time.Second}
		err = p.waitReady(controlPlaneTimeout, func() error {
			resp, err := hc.Get(url + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz: %s", resp.Status)
			}
			return nil
		})
		return p, url, err
	})
	return v
}

// warningRecorder collects the admission warnings the API server passes to a client.
type warningRecorder struct {
	mu   sync.Mutex
	list []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// e2ePolicy is a Kyverno policy verifying the images matching ref with one public key, offline.
type e2ePolicy struct {
	kind, name, namespace string // namespace only for kind Policy
	action, failurePolicy string
	namespaces            []string // match: resources.namespaces
	clusterRoles          []string // match: clusterRoles
	ref, key              string
	noPin                 bool // mutateDigest: false (Kyverno requires it with Audit)
}

func (p e2ePolicy) object(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kyverno.io/v1\nkind: %s\nmetadata:\n  name: %s\n", p.kind, p.name)
	if p.namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", p.namespace)
	}
	fmt.Fprintf(&b, "spec:\n  validationFailureAction: %s\n  failurePolicy: %s\n  background: false\n  rules:\n  - name: check-signature\n", p.action, p.failurePolicy)
	b.WriteString("    match:\n      any:\n      - resources:\n          kinds: [Pod]\n")
	if len(p.namespaces) > 0 {
		ns, _ := json.Marshal(p.namespaces)
		fmt.Fprintf(&b, "          namespaces: %s\n", ns)
	}
	if len(p.clusterRoles) > 0 {
		cr, _ := json.Marshal(p.clusterRoles)
		fmt.Fprintf(&b, "        clusterRoles: %s\n", cr)
	}
	fmt.Fprintf(&b, "    verifyImages:\n    - imageReferences: [%q]\n      mutateDigest: %t\n      attestors:\n      - entries:\n        - keys:\n            rekor: {ignoreTlog: true}\n            ctlog: {ignoreSCT: true}\n            publicKeys: |-\n", p.ref, !p.noPin)
	for _, l := range strings.Split(strings.TrimSpace(p.key), "\n") {
		b.WriteString("              " + l + "\n")
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(b.String()), &obj.Object); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return obj
}

// createPolicyYAML creates the ClusterPolicy written in YAML.
func createPolicyYAML(t *testing.T, s *apiServer, doc string) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	var err error
	if obj.GetKind() == "Policy" {
		_, err = s.Dynamic.Resource(namespacePolicyGVR).Namespace(obj.GetNamespace()).Create(ctx, obj, metav1.CreateOptions{})
	} else {
		_, err = s.Dynamic.Resource(clusterPolicyGVR).Create(ctx, obj, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

func (p e2ePolicy) create(t *testing.T, s *apiServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	var err error
	if p.kind == "Policy" {
		_, err = s.Dynamic.Resource(namespacePolicyGVR).Namespace(p.namespace).Create(ctx, p.object(t), metav1.CreateOptions{})
	} else {
		_, err = s.Dynamic.Resource(clusterPolicyGVR).Create(ctx, p.object(t), metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("creating %s %s: %v", p.kind, p.name, err)
	}
}

func e2ePod(ns, name string, annotations map[string]string, images ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return p
}

func podTemplate(image string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			RestartPolicy: restart,
			Containers:    []corev1.Container{{Name: "web", Image: image}},
		},
	}
}

// deniedBy checks that err is the API server's report of a webhook denial, by webhook name, and
// that its message holds every want.
func deniedBy(t *testing.T, err error, webhook string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted; want denied by %s", webhook)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("admission webhook %q denied the request", webhook)) {
		t.Errorf("error is not a denial by %s: %v", webhook, err)
	}
	// The message is Kyverno's YAML-like block, folded at 80 columns: compare words.
	flat := strings.Join(strings.Fields(msg), " ")
	for _, w := range want {
		if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
			t.Errorf("denial message lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "context deadline exceeded") {
		t.Errorf("denial message says context deadline exceeded:\n%s", msg)
	}
}

// deniedOnce checks a denial that follows a change vouch reads on its own clock (a policy or a
// RoleBinding update seen through an informer, a ConfigMap kept for source.ConfigMapTTL). The mutating and the
// validating webhook are two admissions: when the change lands between them, the mutating webhook
// verified and pinned under the old state and the validating webhook denies the pinned image under
// the new one. Both are the enforcement wanted; each names the image as it saw it.
func deniedOnce(t *testing.T, err error, tagRef, digestRef string, want ...string) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), fmt.Sprintf("admission webhook %q denied", validatingHookName)) {
		deniedBy(t, err, validatingHookName, append([]string{"failed to verify image " + digestRef}, want...)...)
		return
	}
	deniedBy(t, err, mutatingWebhookName, append([]string{"failed to verify image " + tagRef}, want...)...)
}

// TestE2EWebhook drives vouch serve through a real API server: every acceptance scenario of
// the admission webhook, in one control plane.
func TestE2EWebhook(t *testing.T) {
	s := startAPIServer(t)
	installKyvernoCRDs(t, s.Config)

	// Images in a registry process, signed with the cosign CLI with k1 or k2.
	env := newToolEnv(t)
	cosign := toolPath(t, "cosign")
	host, stopRegistry := startStoppableDistribution(t)
	k1, k2 := env.generateKeyPair(t, cosign, "k1"), env.generateKeyPair(t, cosign, "k2")
	digests := map[string]string{}
	for img, key := range map[string]*keyPair{
		"app:signed": &k1, "app:unsigned": nil, "app:fresh": &k1,
		"team/app:k1": &k1, "team/app:k2": &k2,
	} {
		d := pushRandom(t, host, img)
		digests[img] = d
		if key != nil {
			repo, _, _ := strings.Cut(img, ":")
			env.mustRun(t, "", nil, cosign, "sign", "--key", key.private, "--tlog-upload=false", "-y", host+"/"+repo+"@"+d)
		}
	}
	image := func(img string) string { return host + "/" + img }
	pinned := func(img string) string { return host + "/" + img + "@" + digests[img] }
	// byDigest is how Kyverno's annotations and messages name a verified image.
	byDigest := func(img string) string {
		repo, _, _ := strings.Cut(img, ":")
		return host + "/" + repo + "@" + digests[img]
	}

	// Policies, in the API server before vouch starts (a second replica would find them so).
	verifySigned := e2ePolicy{kind: "ClusterPolicy", name: "verify-signed", action: "Enforce", failurePolicy: "Fail",
		namespaces: []string{"e2e", "forged"}, ref: host + "/app*", key: k1.pem}
	for _, p := range []e2ePolicy{
		verifySigned,
		{kind: "ClusterPolicy", name: "audit-signed", action: "Audit", failurePolicy: "Fail",
			namespaces: []string{"e2e-audit"}, ref: host + "/app*", key: k1.pem, noPin: true},
		{kind: "ClusterPolicy", name: "ignore-errors", action: "Enforce", failurePolicy: "Ignore",
			namespaces: []string{"e2e-ignore"}, ref: host + "/app*", key: k1.pem},
		// Kyverno refuses mutateDigest with Audit: this policy cannot be loaded, so its rules
		// fail closed.
		{kind: "ClusterPolicy", name: "broken", action: "Audit", failurePolicy: "Fail",
			namespaces: []string{"e2e-broken"}, ref: host + "/app*", key: k1.pem},
		// Only for users bound to ClusterRole vouch-e2e-deployer.
		{kind: "ClusterPolicy", name: "deployers-signed", action: "Enforce", failurePolicy: "Fail",
			namespaces: []string{"e2e-roles"}, clusterRoles: []string{"vouch-e2e-deployer"}, ref: host + "/app*", key: k1.pem},
		{kind: "Policy", name: "team-key", namespace: "team-a", action: "Enforce", failurePolicy: "Fail",
			ref: host + "/team/*", key: k2.pem},
	} {
		if p.kind == "Policy" {
			createNamespace(t, s.Client, p.namespace, nil)
		}
		p.create(t, s)
	}
	for _, ns := range []string{"e2e", "e2e-audit", "e2e-ignore", "e2e-broken", "e2e-roles", "team-b", "e2e-cm"} {
		createNamespace(t, s.Client, ns, nil)
	}
	// The key of namespace e2e-cm is in a ConfigMap of that namespace (Kyverno's configMap
	// context entry); it starts as k1.
	if _, err := s.Client.CoreV1().ConfigMaps("e2e-cm").Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vouch-keys", Namespace: "e2e-cm"}, Data: map[string]string{"pub": k1.pem},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPolicyYAML(t, s, `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: configmap-key}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod], namespaces: [e2e-cm]}}]}
    context:
    - name: keys
      configMap: {name: vouch-keys, namespace: "{{ request.namespace }}"}
    verifyImages:
    - imageReferences: ["`+host+`/app*"]
      attestors:
      - entries:
        - keys:
            publicKeys: "{{ keys.data.pub }}"
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
`)
	// The key of namespace e2e-secret is the cosign.pub of a Secret there (Kyverno's
	// keys.secret), named by a Policy of that namespace; it starts as k1.
	createNamespace(t, s.Client, "e2e-secret", nil)
	if _, err := s.Client.CoreV1().Secrets("e2e-secret").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cosign", Namespace: "e2e-secret"}, Data: map[string][]byte{"cosign.pub": []byte(k1.pem)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPolicyYAML(t, s, `apiVersion: kyverno.io/v1
kind: Policy
metadata: {name: secret-key, namespace: e2e-secret}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["`+host+`/app*"]
      attestors:
      - entries:
        - keys:
            secret: {name: cosign, namespace: e2e-secret}
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
`)
	// The key of namespace e2e-api is an annotation of the namespace, read with an apiCall.
	if _, err := s.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-api", Annotations: map[string]string{"vouch.dev/cosign-key": k2.pem}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPolicyYAML(t, s, `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: namespace-key}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod], namespaces: [e2e-api]}}]}
    context:
    - name: nsKey
      apiCall:
        urlPath: "/api/v1/namespaces/{{ request.namespace }}"
        jmesPath: 'metadata.annotations."vouch.dev/cosign-key"'
    verifyImages:
    - imageReferences: ["`+host+`/team/*"]
      attestors:
      - entries:
        - keys:
            publicKeys: "{{ nsKey }}"
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
`)
	createNamespace(t, s.Client, "forged", map[string]string{skipMutationLabel: "true"})

	vouch := startServeProcess(t, s)
	registerWebhook(t, s.Client, s.PKI.CAPEM, vouch.URL, e2eWebhookTimeout, admissionregistrationv1.Fail)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vouch serve log (last lines):\n%s", lastLines(vouch.proc.logs.String(), 40))
		}
	})

	warnings := &warningRecorder{}
	cfg := rest.CopyConfig(s.Config)
	cfg.WarningHandler = warnings
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	createPod := func(p *corev1.Pod) (*corev1.Pod, error) {
		return kc.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	}

	t.Run("signed Pod is admitted, pinned and annotated", func(t *testing.T) {
		got, err := createPod(e2ePod("e2e", "signed", nil, image("app:signed")))
		if err != nil {
			t.Fatalf("creating a Pod with a signed image: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != pinned("app:signed") {
			t.Errorf("stored image = %s, want it pinned to %s", img, digests["app:signed"])
		}
		var flat map[string]string
		if err := json.Unmarshal([]byte(got.Annotations[patch.AnnotationVerified]), &flat); err != nil {
			t.Fatalf("annotation %s = %q: %v", patch.AnnotationVerified, got.Annotations[patch.AnnotationVerified], err)
		}
		if len(flat) != 1 || flat[byDigest("app:signed")] != "pass" {
			t.Errorf("annotation %s = %v, want the pinned image passed", patch.AnnotationVerified, flat)
		}
		var scoped struct {
			Version  int                                     `json:"version"`
			Policies map[string]map[string]map[string]string `json:"policies"`
		}
		if err := json.Unmarshal([]byte(got.Annotations[patch.AnnotationScoped]), &scoped); err != nil {
			t.Fatalf("annotation %s: %v", patch.AnnotationScoped, err)
		}
		if scoped.Version != 1 || scoped.Policies["/verify-signed"]["check-signature"][byDigest("app:signed")] != "pass" {
			t.Errorf("annotation %s = %s, want /verify-signed check-signature pass", patch.AnnotationScoped, got.Annotations[patch.AnnotationScoped])
		}
	})

	t.Run("unsigned Pod is denied with vouch's message", func(t *testing.T) {
		_, err := createPod(e2ePod("e2e", "unsigned", nil, image("app:unsigned")))
		deniedBy(t, err, mutatingWebhookName, "verify-signed", "check-signature",
			"failed to verify image "+image("app:unsigned"), "no signatures found")
	})

	t.Run("Deployment and CronJob are pinned in their Pod templates", func(t *testing.T) {
		replicas := int32(1)
		d, err := kc.AppsV1().Deployments("e2e").Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "e2e"},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: podTemplate(image("app:signed"), corev1.RestartPolicyAlways),
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating a Deployment: %v", err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != pinned("app:signed") {
			t.Errorf("Deployment template image = %s, want %s", img, pinned("app:signed"))
		}
		cj, err := kc.BatchV1().CronJobs("e2e").Create(ctx, &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "e2e"},
			Spec: batchv1.CronJobSpec{
				Schedule:    "0 3 * * *",
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate(image("app:signed"), corev1.RestartPolicyOnFailure)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating a CronJob: %v", err)
		}
		if img := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image; img != pinned("app:signed") {
			t.Errorf("CronJob template image = %s, want %s", img, pinned("app:signed"))
		}
		_, err = kc.AppsV1().Deployments("e2e").Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "unsigned", Namespace: "e2e"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: podTemplate(image("app:unsigned"), corev1.RestartPolicyAlways),
			},
		}, metav1.CreateOptions{})
		deniedBy(t, err, mutatingWebhookName, "failed to verify image "+image("app:unsigned"))
	})

	t.Run("Audit admits with a warning", func(t *testing.T) {
		warnings.take()
		got, err := createPod(e2ePod("e2e-audit", "unsigned", nil, image("app:unsigned")))
		if err != nil {
			t.Fatalf("an Audit policy denied: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != image("app:unsigned") {
			t.Errorf("stored image = %s, want it unchanged", img)
		}
		w := strings.Join(warnings.take(), "\n")
		for _, want := range []string{"audit-signed", "failed to verify image " + image("app:unsigned")} {
			if !strings.Contains(w, want) {
				t.Errorf("admission warnings lack %q:\n%s", want, w)
			}
		}
	})

	t.Run("a policy that cannot be loaded fails closed", func(t *testing.T) {
		_, err := createPod(e2ePod("e2e-broken", "signed", nil, image("app:signed")))
		deniedBy(t, err, mutatingWebhookName, "broken", "policy broken could not be loaded",
			"spec.rules[0].verifyImages[0].mutateDigest")
	})

	t.Run("forged verification annotations are not trusted", func(t *testing.T) {
		// The mutating webhook skips namespace "forged"; the Pod arrives at the validating
		// webhook pinned, claiming Kyverno's annotations for an unsigned image.
		img := pinned("app:unsigned")
		forged := map[string]string{
			patch.AnnotationVerified: fmt.Sprintf(`{%q:"pass"}`, img),
			patch.AnnotationScoped:   fmt.Sprintf(`{"version":1,"policies":{"/verify-signed":{"check-signature":{%q:"pass"}}}}`, img),
		}
		_, err := createPod(e2ePod("forged", "forged", forged, img))
		deniedBy(t, err, validatingHookName, "verify-signed", "failed to verify image "+byDigest("app:unsigned"), "no signatures found")
		// The same route admits a signed image pinned by digest: the validating webhook
		// verified it itself.
		if _, err := createPod(e2ePod("forged", "signed", nil, pinned("app:signed"))); err != nil {
			t.Errorf("a signed image pinned by digest, mutating webhook skipped: %v", err)
		}
	})

	t.Run("a namespaced Policy applies only in its namespace", func(t *testing.T) {
		_, err := createPod(e2ePod("team-a", "k1", nil, image("team/app:k1")))
		deniedBy(t, err, mutatingWebhookName, "team-key", "failed to verify image "+image("team/app:k1"))
		got, err := createPod(e2ePod("team-a", "k2", nil, image("team/app:k2")))
		if err != nil {
			t.Fatalf("team-a Pod signed with the Policy's key: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != pinned("team/app:k2") {
			t.Errorf("stored image = %s, want %s", img, pinned("team/app:k2"))
		}
		got, err = createPod(e2ePod("team-b", "k1", nil, image("team/app:k1")))
		if err != nil {
			t.Fatalf("team-a's Policy applied in team-b: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != image("team/app:k1") {
			t.Errorf("stored image in team-b = %s, want it untouched", img)
		}
	})

	t.Run("clusterRoles match the roles bound to the requesting user", func(t *testing.T) {
		rbac := s.Client.RbacV1()
		if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "vouch-e2e-deployer"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "vouch-e2e-deployers"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "vouch-e2e-deployer"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "vouch-e2e-developers"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		devCfg := rest.CopyConfig(s.Config)
		devCfg.BearerToken = e2eDevToken
		dev, err := kubernetes.NewForConfig(devCfg)
		if err != nil {
			t.Fatal(err)
		}
		// vouch's binding informer sees the new binding within moments.
		wctx, wcancel := context.WithTimeout(ctx, apiWaitTimeout)
		defer wcancel()
		var last error
		waitFor(t, wctx, "the policy to apply to the developer", func() error {
			_, last = dev.CoreV1().Pods("e2e-roles").Create(wctx, e2ePod("e2e-roles", "dev", nil, image("app:unsigned")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if last == nil {
				return fmt.Errorf("still admitted")
			}
			return nil
		})
		deniedOnce(t, last, image("app:unsigned"), byDigest("app:unsigned"), "deployers-signed")
		// The admin holds no binding to vouch-e2e-deployer: the policy does not apply.
		if _, err := createPod(e2ePod("e2e-roles", "admin", nil, image("app:unsigned"))); err != nil {
			t.Errorf("a user without the cluster role: %v", err)
		}
	})

	t.Run("a policy updated through the API takes effect without restart", func(t *testing.T) {
		pc := s.Dynamic.Resource(clusterPolicyGVR)
		cur, err := pc.Get(ctx, "verify-signed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		updated := verifySigned
		updated.key = k2.pem
		next := updated.object(t)
		next.SetResourceVersion(cur.GetResourceVersion())
		if _, err := pc.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating the ClusterPolicy: %v", err)
		}
		start := time.Now()
		wctx, wcancel := context.WithTimeout(ctx, apiWaitTimeout)
		defer wcancel()
		// app:signed carries only k1's signature: once vouch enforces the update it is denied.
		var last error
		waitFor(t, wctx, "the updated policy to deny k1's signature", func() error {
			_, last = kc.CoreV1().Pods("e2e").Create(wctx, e2ePod("e2e", "after-update", nil, image("app:signed")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if last == nil {
				return fmt.Errorf("still admitted")
			}
			return nil
		})
		t.Logf("policy update enforced after %v", time.Since(start).Round(time.Millisecond))
		deniedOnce(t, last, image("app:signed"), byDigest("app:signed"), "verify-signed", "no matching signatures")
	})

	// rotation: k1 (which signed app:signed) is where the policy of ns reads its key; rotate
	// puts k2 there; admissions are then denied within the TTL vouch keeps what it read.
	rotation := func(t *testing.T, ns, where, policyName string, rotate func() error) {
		got, err := createPod(e2ePod(ns, "k1", nil, image("app:signed")))
		if err != nil {
			t.Fatalf("k1 in the %s, image signed with k1: %v", where, err)
		}
		if img := got.Spec.Containers[0].Image; img != pinned("app:signed") {
			t.Errorf("stored image = %s, want %s", img, pinned("app:signed"))
		}
		if err := rotate(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		wctx, wcancel := context.WithTimeout(ctx, apiWaitTimeout)
		defer wcancel()
		var last error
		waitFor(t, wctx, "the rotated key to deny k1's signature", func() error {
			_, last = kc.CoreV1().Pods(ns).Create(wctx, e2ePod(ns, "k2", nil, image("app:signed")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if last == nil {
				return fmt.Errorf("still admitted")
			}
			return nil
		})
		took := time.Since(start)
		t.Logf("key rotated in the %s: enforced after %v", where, took.Round(time.Millisecond))
		deniedOnce(t, last, image("app:signed"), byDigest("app:signed"), policyName, "no matching signatures")
		if took > source.ConfigMapTTL+5*time.Second {
			t.Errorf("the rotation took %v, want about the TTL (%v)", took, source.ConfigMapTTL)
		}
	}

	t.Run("a key read from a ConfigMap, rotated there", func(t *testing.T) {
		rotation(t, "e2e-cm", "ConfigMap", "configmap-key", func() error {
			cms := s.Client.CoreV1().ConfigMaps("e2e-cm")
			cm, err := cms.Get(ctx, "vouch-keys", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cm.Data["pub"] = k2.pem
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
			return err
		})
	})

	t.Run("a key read from a Secret (keys.secret), rotated there", func(t *testing.T) {
		rotation(t, "e2e-secret", "Secret", "secret-key", func() error {
			secrets := s.Client.CoreV1().Secrets("e2e-secret")
			sec, err := secrets.Get(ctx, "cosign", metav1.GetOptions{})
			if err != nil {
				return err
			}
			sec.Data["cosign.pub"] = []byte(k2.pem)
			_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
			return err
		})
	})

	t.Run("a key read from the namespace with an apiCall", func(t *testing.T) {
		got, err := createPod(e2ePod("e2e-api", "k2", nil, image("team/app:k2")))
		if err != nil {
			t.Fatalf("the namespace's key (k2) signed the image: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != pinned("team/app:k2") {
			t.Errorf("stored image = %s, want %s", img, pinned("team/app:k2"))
		}
		_, err = createPod(e2ePod("e2e-api", "k1", nil, image("team/app:k1")))
		deniedBy(t, err, mutatingWebhookName, "namespace-key", "failed to verify image "+image("team/app:k1"))
	})

	t.Run("registry down: Fail denies with could not verify inside the timeout, Ignore admits", func(t *testing.T) {
		stopRegistry()
		start := time.Now()
		_, err := createPod(e2ePod("e2e", "outage", nil, image("app:fresh")))
		took := time.Since(start)
		deniedBy(t, err, mutatingWebhookName, "verify-signed", "could not verify image "+image("app:fresh"))
		if took >= e2eWebhookTimeout*time.Second {
			t.Errorf("denial took %v, not inside the webhook timeout of %ds", took, e2eWebhookTimeout)
		}
		t.Logf("registry down: denied in %v", took.Round(time.Millisecond))
		got, err := createPod(e2ePod("e2e-ignore", "outage", nil, image("app:fresh")))
		if err != nil {
			t.Fatalf("failurePolicy Ignore denied a could-not-verify outcome: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != image("app:fresh") {
			t.Errorf("stored image = %s, want it unpinned (nothing verified)", img)
		}
	})
}

// clientTLS is a client TLS configuration trusting the CA.
func (p *e2ePKI) clientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	return &tls.Config{RootCAs: pool}
}
