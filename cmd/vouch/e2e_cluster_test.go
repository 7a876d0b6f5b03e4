//go:build integration

package main

// What the end-to-end tests put into the API server of startAPIServer: the Kyverno policy CRDs
// the Helm chart ships, and vouch's webhook configurations.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

const (
	// kyvernoCRDDir holds the CRDs of Kyverno's policies the Helm chart ships for clusters
	// without Kyverno (seen from this package).
	kyvernoCRDDir = "../../charts/vouch/crds"
	// apiWaitTimeout bounds every wait for the API server to act on something created.
	apiWaitTimeout = 30 * time.Second

	// Names of the webhook configurations and their webhooks.
	webhookConfigName   = "vouch"
	mutatingWebhookName = "mutate.vouch.dev"
	validatingHookName  = "validate.vouch.dev"
	// excludeLabel on a namespace keeps the webhooks away from its objects.
	excludeLabel = "vouch.dev/exclude"
	// skipMutationLabel on a namespace keeps only the mutating webhook away: its objects reach
	// the validating webhook as they were sent (the forged-annotation test).
	skipMutationLabel = "vouch.dev/e2e-skip-mutation"
	// webhookProbeNamespace is where registerWebhook's probe Pods are created (dry run, so
	// never stored). Tests counting admission requests ignore this namespace.
	webhookProbeNamespace = "vouch-webhook-probe"
	// webhookProbeImage is the probe Pod's image: loopback port 1, so a webhook that tries to
	// resolve it is refused at once and nothing leaves the machine.
	webhookProbeImage = "127.0.0.1:1/vouch/webhook-probe:v1"
)

var (
	crdGVR             = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	clusterPolicyGVR   = schema.GroupVersionResource{Group: "kyverno.io", Version: "v1", Resource: "clusterpolicies"}
	namespacePolicyGVR = schema.GroupVersionResource{Group: "kyverno.io", Version: "v1", Resource: "policies"}
)

// installKyvernoCRDs creates the CRDs of charts/vouch/crds (kyverno.io/v1 ClusterPolicy and
// Policy) and waits until they are Established and their resources answer a list.
func installKyvernoCRDs(t *testing.T, cfg *rest.Config) {
	t.Helper()
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	files, err := filepath.Glob(filepath.Join(kyvernoCRDDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s (%v)", kyvernoCRDDir, err)
	}
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := dc.Resource(crdGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating the CRD of %s: %v", f, err)
		}
		names = append(names, obj.GetName())
	}
	for _, name := range names {
		waitFor(t, ctx, "CRD "+name+" Established", func() error {
			crd, err := dc.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				c, _ := c.(map[string]any)
				if c["type"] == "Established" && c["status"] == "True" {
					return nil
				}
			}
			return fmt.Errorf("conditions %v", conds)
		})
	}
	// Established can come a moment before the resource is served.
	for _, gvr := range []schema.GroupVersionResource{clusterPolicyGVR, namespacePolicyGVR} {
		waitFor(t, ctx, gvr.Resource+" served", func() error {
			_, err := dc.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		})
	}
}

// registerWebhook registers vouch's webhooks at url (https://127.0.0.1:PORT, without a path):
// a MutatingWebhookConfiguration calling url+"/mutate" and a ValidatingWebhookConfiguration
// calling url+"/validate", both trusting caBundle, for CREATE and UPDATE of Pods and the
// workloads that hold Pod templates, in every namespace not labelled vouch.dev/exclude=true
// (and, for the mutating webhook, not labelled vouch.dev/e2e-skip-mutation=true).
// It returns once the API server has called both webhooks (see waitForWebhooks), and deletes
// the configurations when the test ends.
func registerWebhook(t *testing.T, cs kubernetes.Interface, caBundle []byte, url string, timeoutSeconds int32, failurePolicy admissionregistrationv1.FailurePolicyType) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	mutate, validate := url+"/mutate", url+"/validate"
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun // vouch records Events and reports
	reinvocation := admissionregistrationv1.IfNeededReinvocationPolicy
	matchPolicy := admissionregistrationv1.Equivalent
	selector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: excludeLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}},
	}}
	mutateSelector := selector.DeepCopy()
	mutateSelector.MatchExpressions = append(mutateSelector.MatchExpressions,
		metav1.LabelSelectorRequirement{Key: skipMutationLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}})
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookConfigName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    mutatingWebhookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &mutate, CABundle: caBundle},
			Rules:                   webhookRules(),
			FailurePolicy:           &failurePolicy,
			MatchPolicy:             &matchPolicy,
			NamespaceSelector:       mutateSelector,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeoutSeconds,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &reinvocation,
		}},
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookConfigName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    validatingHookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &validate, CABundle: caBundle},
			Rules:                   webhookRules(),
			FailurePolicy:           &failurePolicy,
			MatchPolicy:             &matchPolicy,
			NamespaceSelector:       selector,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeoutSeconds,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	before := webhookCalls(t, ctx, cs)
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the MutatingWebhookConfiguration: %v", err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the ValidatingWebhookConfiguration: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
		defer cancel()
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, webhookConfigName, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, webhookConfigName, metav1.DeleteOptions{})
	})
	waitForWebhooks(t, ctx, cs, before)
}

// webhookRules are the operations and resources vouch's webhooks intercept: Pods and every
// built-in workload that holds a Pod template, in every version the API server serves.
func webhookRules() []admissionregistrationv1.RuleWithOperations {
	scope := admissionregistrationv1.AllScopes
	rule := func(group string, resources ...string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{group},
				APIVersions: []string{"*"},
				Resources:   resources,
				Scope:       &scope,
			},
		}
	}
	return []admissionregistrationv1.RuleWithOperations{
		rule("", "pods", "replicationcontrollers"),
		rule("apps", "deployments", "statefulsets", "daemonsets", "replicasets"),
		rule("batch", "jobs", "cronjobs"),
	}
}

// waitForWebhooks returns once the API server has called both webhooks with an admission
// review and had an answer — its webhook configuration cache is eventually consistent, and the
// webhook server may still be starting. It creates probe Pods in webhookProbeNamespace with
// dryRun=All (never stored; webhooks with sideEffects None are still called) and reads the API
// server's counters of webhook calls: an answer is a call counted with HTTP code 200, or a
// rejection counted with error_type no_error (the webhook denied the request). When the
// mutating webhook denies the probe, the validating one is never called; its configuration was
// created in the same moment and is then taken as loaded too.
func waitForWebhooks(t *testing.T, ctx context.Context, cs kubernetes.Interface, before webhookCallCounts) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhookProbeNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the probe namespace: %v", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "webhook-probe", Namespace: webhookProbeNamespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: webhookProbeImage}}},
	}
	start := time.Now()
	probes := 0
	waitFor(t, ctx, "the API server to call the webhooks", func() error {
		probes++
		_, createErr := cs.CoreV1().Pods(webhookProbeNamespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		now := webhookCalls(t, ctx, cs)
		mutated := now.answered(mutatingWebhookName) > before.answered(mutatingWebhookName)
		validated := now.answered(validatingHookName) > before.answered(validatingHookName)
		denied := now.denied(mutatingWebhookName) > before.denied(mutatingWebhookName)
		if mutated && (validated || denied) {
			return nil
		}
		return fmt.Errorf("answered: mutating %v, validating %v; probe: %v", mutated, validated, createErr)
	})
	t.Logf("webhooks called by the API server after %v (%d probes)", time.Since(start).Round(time.Millisecond), probes)
}

// webhookCallCounts are the API server's counters of webhook calls by webhook name.
type webhookCallCounts struct {
	ok       map[string]float64 // apiserver_admission_webhook_request_total, code 200
	rejected map[string]float64 // apiserver_admission_webhook_rejection_count, error_type no_error
}

func (c webhookCallCounts) answered(name string) float64 { return c.ok[name] + c.rejected[name] }
func (c webhookCallCounts) denied(name string) float64   { return c.rejected[name] }

// webhookCalls reads the webhook call counters from the API server's /metrics.
func webhookCalls(t *testing.T, ctx context.Context, cs kubernetes.Interface) webhookCallCounts {
	t.Helper()
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("reading the API server's /metrics: %v", err)
	}
	c := webhookCallCounts{ok: map[string]float64{}, rejected: map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		metric, labels, value, ok := parseSample(sc.Text())
		if !ok {
			continue
		}
		switch {
		case metric == "apiserver_admission_webhook_request_total" && labels["code"] == "200":
			c.ok[labels["name"]] += value
		case metric == "apiserver_admission_webhook_rejection_count" && labels["error_type"] == "no_error":
			c.rejected[labels["name"]] += value
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the API server's /metrics: %v", err)
	}
	return c
}

// parseSample parses one sample line of the Prometheus text format,
// `name{label="value",...} 12`. Label values holding `",` are not expected in the counters read.
func parseSample(line string) (metric string, labels map[string]string, value float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	open, closing := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
	if open < 0 || closing < open {
		return "", nil, 0, false
	}
	metric = line[:open]
	labels = map[string]string{}
	for _, kv := range strings.Split(line[open+1:closing], `",`) {
		k, v, found := strings.Cut(kv, `="`)
		if found {
			labels[k] = strings.TrimSuffix(v, `"`)
		}
	}
	fields := strings.Fields(line[closing+1:])
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	value, err := strconv.ParseFloat(fields[0], 64)
	return metric, labels, value, err == nil
}

// waitFor calls check every 100ms until it returns nil; it fails the test when ctx ends first.
func waitFor(t *testing.T, ctx context.Context, what string, check func() error) {
	t.Helper()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// createNamespace creates a namespace with labels and returns its name.
func createNamespace(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}
