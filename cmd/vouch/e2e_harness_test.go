//go:build integration

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// admissionCall is what a webhook was asked, as recorded by recordingWebhook.
type admissionCall struct {
	Path      string // /mutate or /validate
	Kind      string // of the object, e.g. Pod
	Namespace string
	Name      string
	Operation admissionv1.Operation
	DryRun    bool
}

// recordingWebhook is an HTTPS admission webhook that allows everything and records each
// AdmissionReview v1 it is sent.
type recordingWebhook struct {
	URL string
	mu  sync.Mutex
	got []admissionCall
}

func newRecordingWebhook(t *testing.T, cert tls.Certificate) *recordingWebhook {
	t.Helper()
	w := &recordingWebhook{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

func (w *recordingWebhook) serve(rw http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil ||
		review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" {
		http.Error(rw, fmt.Sprintf("not an AdmissionReview v1 (%v): %s %s", err, review.APIVersion, review.Kind), http.StatusBadRequest)
		return
	}
	req := review.Request
	w.mu.Lock()
	w.got = append(w.got, admissionCall{
		Path: r.URL.Path, Kind: req.Kind.Kind, Namespace: req.Namespace, Name: req.Name,
		Operation: req.Operation, DryRun: req.DryRun != nil && *req.DryRun,
	})
	w.mu.Unlock()
	review.Response = &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	review.Request = nil
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(review)
}

// calls returns the calls recorded so far outside the probe namespace.
func (w *recordingWebhook) calls() []admissionCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []admissionCall
	for _, c := range w.got {
		if c.Namespace != webhookProbeNamespace {
			out = append(out, c)
		}
	}
	return out
}

const e2eClusterPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image
spec:
  webhookConfiguration:
    failurePolicy: Fail
    timeoutSeconds: 15
  rules:
    - name: check-image
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["127.0.0.1:5000/*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
                      -----BEGIN PUBLIC KEY-----
                      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmvl+6HAv0j0smyzvO9LJ8OtGVeu8
                      AuHPjOoK2gOAU7qCQNgqVPXOYPs87xukMmCFqQ0yGokNF1Jd0cRxY/TY0A==
                      -----END PUBLIC KEY-----
`

// TestE2EHarness proves the end-to-end harness: a real API server stores Kyverno policies
// through the chart's CRDs and calls a webhook registered with registerWebhook, for Pods in
// namespaces not excluded and only for those.
func TestE2EHarness(t *testing.T) {
	s := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()

	v, err := s.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.36.3" {
		t.Errorf("API server version = %s, want v1.36.3", v.GitVersion)
	}

	installKyvernoCRDs(t, s.Config)
	var policy unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(e2eClusterPolicy), &policy.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dynamic.Resource(clusterPolicyGVR).Create(ctx, &policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a ClusterPolicy: %v", err)
	}
	got, err := s.Dynamic.Resource(clusterPolicyGVR).Get(ctx, "check-image", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the ClusterPolicy back: %v", err)
	}
	// Compared as JSON: YAML decodes numbers as float64, the dynamic client as int64.
	if diff := cmp.Diff(asJSON(t, policy.Object["spec"]), asJSON(t, got.Object["spec"])); diff != "" {
		t.Errorf("ClusterPolicy spec read back differs (-created +read):\n%s", diff)
	}
	if out := s.kubectl(t, "get", "clusterpolicies", "-o", "name"); strings.TrimSpace(out) != "clusterpolicy.kyverno.io/check-image" {
		t.Errorf("kubectl get clusterpolicies = %q", out)
	}

	hook := newRecordingWebhook(t, s.PKI.ServingCert(t))
	registerWebhook(t, s.Client, s.PKI.CAPEM, hook.URL, 10, admissionregistrationv1.Fail)

	ns := createNamespace(t, s.Client, "e2e", nil)
	excluded := createNamespace(t, s.Client, "e2e-excluded", map[string]string{excludeLabel: "true"})
	for _, n := range []string{ns, excluded} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: n},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "127.0.0.1:5000/app:v1"}}},
		}
		if _, err := s.Client.CoreV1().Pods(n).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating a Pod in %s: %v", n, err)
		}
	}
	stored, err := s.Client.CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status.Phase != corev1.PodPending {
		t.Errorf("Pod phase = %s, want Pending (there is no kubelet)", stored.Status.Phase)
	}
	want := []admissionCall{
		{Path: "/mutate", Kind: "Pod", Namespace: ns, Name: "app", Operation: admissionv1.Create},
		{Path: "/validate", Kind: "Pod", Namespace: ns, Name: "app", Operation: admissionv1.Create},
	}
	if diff := cmp.Diff(want, hook.calls()); diff != "" {
		t.Errorf("webhook calls (-want +got):\n%s", diff)
	}
}

// asJSON returns v after a JSON round trip.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
