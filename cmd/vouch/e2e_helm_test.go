//go:build integration

package main

// End-to-end tests of the Helm chart in charts/vouch with the real helm CLI (built pinned by
// `make tools`), offline: helm lint; helm template in each TLS mode with every rendered object
// sent as a server-side dry run to a real API server (startAPIServer); and helm install,
// upgrade and uninstall against that API server, with the chart's webhook configurations
// pointing (webhook.url) at a `vouch serve` process on the host — there is no kubelet to run
// the chart's Deployment — so that the API server calls vouch through what the chart installed.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/manifest"
)

const (
	// helmChartDir is the chart, seen from this package.
	helmChartDir = "../../charts/vouch"
	// helmRelease and helmNamespace are the release the tests install: the chart's objects are
	// named after the release ("vouch"), like the harness's webhook configurations.
	helmRelease   = "vouch"
	helmNamespace = "vouch"
	// policyWebhookName is the chart's validating webhook of Kyverno policies.
	policyWebhookName = "validate-policy.vouch.dev"
)

// helmCLI runs the helm binary built by `make tools` as a user would, offline: a private HOME
// and XDG folders (no repositories, no plugins, no cache), no kubeconfig but one given with
// --kubeconfig, and every proxied request (anything but loopback) sent to the recording proxy
// of a toolEnv, which fails the test when helm tried the network.
type helmCLI struct {
	bin string
	dir string // working folder: values files
	env []string
}

func newHelm(t *testing.T) *helmCLI {
	t.Helper()
	te := newToolEnv(t)
	home := t.TempDir()
	return &helmCLI{
		bin: toolPath(t, "helm"),
		dir: t.TempDir(),
		env: []string{
			"HOME=" + home,
			"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
			"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
			"XDG_DATA_HOME=" + filepath.Join(home, "data"),
			"TMPDIR=" + te.tmp,
			"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"),
			"HTTPS_PROXY=" + te.proxy, "HTTP_PROXY=" + te.proxy, "NO_PROXY=",
		},
	}
}

// run runs helm with args and returns its standard output and, on failure, an error holding
// its standard error. The command line is logged with its duration.
func (h *helmCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Dir, cmd.Env = h.dir, h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("$ helm %s  [%v, exit %d]", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), cmd.ProcessState.ExitCode())
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", args[0], err, stderr.String(), lastLines(stdout.String(), 10))
	}
	return stdout.String(), nil
}

func (h *helmCLI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.run(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// valuesFile writes a values file and returns its path.
func (h *helmCLI) valuesFile(t *testing.T, values string) string {
	t.Helper()
	f, err := os.CreateTemp(h.dir, "values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(values); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func chartPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(helmChartDir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// template runs `helm template` of the chart as release vouch in namespace vouch with the
// values and returns the rendered objects.
func (h *helmCLI) template(t *testing.T, values string) []*unstructured.Unstructured {
	t.Helper()
	out := h.mustRun(t, "template", helmRelease, chartPath(t), "--namespace", helmNamespace, "-f", h.valuesFile(t, values))
	return decodeObjects(t, out)
}

// decodeObjects reads a multi-document YAML stream strictly (duplicate keys are errors).
func decodeObjects(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	docs, err := manifest.Split("helm output", []byte(stream))
	if err != nil {
		t.Fatalf("%v\n%s", err, stream)
	}
	objs, err := manifest.Objects(docs)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = &unstructured.Unstructured{Object: o.Value}
	}
	return out
}

// kindsOf lists the kinds of objs, sorted, once per object.
func kindsOf(objs []*unstructured.Unstructured) []string {
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	slices.Sort(kinds)
	return kinds
}

// only returns the one object of a kind (and name, when given) among objs, failing the test
// when there is not exactly one.
func only(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s named %q rendered, want 1 (kinds: %v)", len(found), kind, name, kindsOf(objs))
	}
	return found[0]
}

// typed converts an unstructured object into a typed one.
func typed[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return v
}

// certManagerTestCRDs are minimal definitions of cert-manager's Issuer and Certificate
// (cert-manager.io/v1), written for these tests so that the chart's cert-manager objects can be
// dry-run too: the same names, scope and required fields as cert-manager's (a Certificate
// needs secretName and issuerRef.name), the rest of the schema open.
const certManagerTestCRDs = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: issuers.cert-manager.io
spec:
  group: cert-manager.io
  names: {kind: Issuer, listKind: IssuerList, plural: issuers, singular: issuer}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: certificates.cert-manager.io
spec:
  group: cert-manager.io
  names: {kind: Certificate, listKind: CertificateList, plural: certificates, singular: certificate}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [secretName, issuerRef]
              x-kubernetes-preserve-unknown-fields: true
              properties:
                secretName: {type: string}
                issuerRef:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    kind: {type: string}
                    group: {type: string}
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
`

// installCertManagerTestCRDs creates certManagerTestCRDs and waits until their resources are
// served.
func installCertManagerTestCRDs(t *testing.T, s *apiServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	for _, crd := range decodeObjects(t, certManagerTestCRDs) {
		if _, err := s.Dynamic.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating CRD %s: %v", crd.GetName(), err)
		}
	}
	for _, r := range []string{"issuers", "certificates"} {
		gvr := schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: r}
		waitFor(t, ctx, r+" served", func() error {
			_, err := s.Dynamic.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1})
			return err
		})
	}
}

// dryRun sends every object to the API server as a server-side dry-run create with strict field
// validation (an unknown or duplicated field is an error) and returns the kinds it accepted,
// sorted. A namespaced object must name helmNamespace (helm template does not set it), a
// cluster-scoped one no namespace.
func dryRun(t *testing.T, s *apiServer, mapper meta.RESTMapper, objs []*unstructured.Unstructured) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	var kinds []string
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: no resource for %v: %v", o.GetKind(), o.GetName(), gvk, err)
			continue
		}
		var ri dynamic.ResourceInterface = s.Dynamic.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() != helmNamespace {
				t.Errorf("%s %s: namespace %q, want the release namespace %q", o.GetKind(), o.GetName(), o.GetNamespace(), helmNamespace)
			}
			ri = s.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace())
		} else if o.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s %s has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		if _, err := ri.Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}); err != nil {
			t.Errorf("dry-run create of %s %s: %v", o.GetKind(), o.GetName(), err)
			continue
		}
		kinds = append(kinds, o.GetKind())
	}
	slices.Sort(kinds)
	return kinds
}

// chartKinds are the kinds the chart renders in every mode, sorted.
var chartKinds = []string{
	"ClusterRole", "ClusterRoleBinding", "Deployment", "MutatingWebhookConfiguration",
	"PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount",
	"ValidatingWebhookConfiguration",
}

func withKinds(extra ...string) []string {
	out := append(slices.Clone(chartKinds), extra...)
	slices.Sort(out)
	return out
}

// b64 is base64 of PEM, as webhook.caBundle takes it.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestE2EHelmTemplate renders the chart with the real helm CLI in its three TLS modes and sends
// every rendered object to a real API server as a server-side dry run: the API server's own
// validation (and strict field validation) accepts the Deployment, PodDisruptionBudget,
// Service, RBAC, webhook configurations, the generated Secret and, through minimal cert-manager
// CRDs written for the test, the cert-manager Issuers and Certificates.
func TestE2EHelmTemplate(t *testing.T) {
	h := newHelm(t)
	s := startAPIServer(t)
	installKyvernoCRDs(t, s.Config)
	installCertManagerTestCRDs(t, s)
	createNamespace(t, s.Client, helmNamespace, nil)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(s.Client.Discovery()))
	ca := b64(s.PKI.CAPEM)
	const url = "https://127.0.0.1:18443"

	for _, tc := range []struct {
		name   string
		values string
		kinds  []string // every kind rendered, and dry-run
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{
			name:  "default: generated CA and serving certificate",
			kinds: withKinds("Secret"),
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				sec := typed[corev1.Secret](t, only(t, objs, "Secret", "vouch-tls"))
				if sec.Type != corev1.SecretTypeTLS {
					t.Errorf("Secret type %s, want %s", sec.Type, corev1.SecretTypeTLS)
				}
				caPEM := sec.Data["ca.crt"]
				checkServingCert(t, sec.Data["tls.crt"], sec.Data["tls.key"], caPEM, "vouch.vouch.svc")
				for _, cc := range webhookClientConfigs(t, objs) {
					if cc.Service == nil || cc.Service.Name != "vouch" || cc.Service.Namespace != helmNamespace ||
						cc.Service.Port == nil || *cc.Service.Port != 443 || cc.URL != nil {
						t.Errorf("clientConfig %+v, want the Service vouch/vouch on port 443", cc)
					}
					if !bytes.Equal(cc.CABundle, caPEM) {
						t.Errorf("caBundle of %v is not the generated Secret's ca.crt", cc.Service)
					}
				}
				checkWebhookConfigurations(t, objs, 10, admissionregistrationv1.Fail, "")
				checkDeployment(t, typed[appsv1.Deployment](t, only(t, objs, "Deployment", "vouch")), "ghcr.io/vouchproject/vouch:"+chartAppVersion(t))
			},
		},
		{
			name: "cert-manager, pinned image, zone spread, minAvailable",
			values: `certManager: {enabled: true}
image: {tag: v9.9.9, digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
topologySpread: {enabled: true}
podDisruptionBudget: {minAvailable: 2}
webhook: {failurePolicy: Ignore, timeoutSeconds: 20}
`,
			kinds: withKinds("Certificate", "Certificate", "Issuer", "Issuer"),
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
					if got := only(t, objs, kind, "vouch").GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "vouch/vouch" {
						t.Errorf("%s annotation cert-manager.io/inject-ca-from = %q, want vouch/vouch", kind, got)
					}
				}
				for _, cc := range webhookClientConfigs(t, objs) {
					if len(cc.CABundle) != 0 || cc.Service == nil {
						t.Errorf("clientConfig %+v: want the Service and no caBundle (cert-manager injects it)", cc)
					}
				}
				serving := only(t, objs, "Certificate", "vouch")
				secret, _, _ := unstructured.NestedString(serving.Object, "spec", "secretName")
				issuer, _, _ := unstructured.NestedString(serving.Object, "spec", "issuerRef", "name")
				dns, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "dnsNames")
				if secret != "vouch-tls" || issuer != "vouch-ca" || !slices.Contains(dns, "vouch.vouch.svc") {
					t.Errorf("serving Certificate: secretName %q issuer %q dnsNames %v", secret, issuer, dns)
				}
				caCert := only(t, objs, "Certificate", "vouch-ca")
				if isCA, _, _ := unstructured.NestedBool(caCert.Object, "spec", "isCA"); !isCA {
					t.Error("Certificate vouch-ca is not a CA")
				}
				if sn, _, _ := unstructured.NestedString(only(t, objs, "Issuer", "vouch-ca").Object, "spec", "ca", "secretName"); sn != "vouch-ca" {
					t.Errorf("CA Issuer reads secret %q, want vouch-ca", sn)
				}
				if _, ok, _ := unstructured.NestedMap(only(t, objs, "Issuer", "vouch-selfsigned").Object, "spec", "selfSigned"); !ok {
					t.Error("Issuer vouch-selfsigned is not selfSigned")
				}
				checkWebhookConfigurations(t, objs, 20, admissionregistrationv1.Ignore, "")
				d := typed[appsv1.Deployment](t, only(t, objs, "Deployment", "vouch"))
				checkDeployment(t, d, "ghcr.io/vouchproject/vouch:v9.9.9@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
				if tsc := d.Spec.Template.Spec.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].TopologyKey != "topology.kubernetes.io/zone" {
					t.Errorf("topologySpreadConstraints %+v, want one by zone", tsc)
				}
				pdb := typed[policyv1.PodDisruptionBudget](t, only(t, objs, "PodDisruptionBudget", "vouch"))
				if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil {
					t.Errorf("PodDisruptionBudget %+v, want minAvailable 2 only", pdb.Spec)
				}
			},
		},
		{
			name: "networkPolicy and rbac.extraRules",
			values: "networkPolicy: {enabled: true, webhookFrom: [{ipBlock: {cidr: 10.0.0.0/24}}]}\n" +
				"rbac: {extraRules: [{apiGroups: [apps], resources: [deployments], verbs: [get]}]}\n",
			kinds: withKinds("Secret", "NetworkPolicy"),
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				np := typed[networkingv1.NetworkPolicy](t, only(t, objs, "NetworkPolicy", "vouch"))
				d := typed[appsv1.Deployment](t, only(t, objs, "Deployment", "vouch"))
				if !cmp.Equal(np.Spec.PodSelector.MatchLabels, d.Spec.Selector.MatchLabels) || !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
					t.Errorf("NetworkPolicy selects %v (types %v), want the Deployment's Pods %v, ingress only", np.Spec.PodSelector.MatchLabels, np.Spec.PolicyTypes, d.Spec.Selector.MatchLabels)
				}
				in := np.Spec.Ingress
				if len(in) != 2 || len(in[0].Ports) != 1 || in[0].Ports[0].Port.String() != "https" || len(in[0].From) != 1 || in[0].From[0].IPBlock == nil || in[0].From[0].IPBlock.CIDR != "10.0.0.0/24" ||
					len(in[1].Ports) != 1 || in[1].Ports[0].Port.String() != "health" || len(in[1].From) != 0 {
					t.Errorf("ingress %+v, want https from 10.0.0.0/24 and health from anywhere, nothing else", in)
				}
				cr := typed[rbacv1.ClusterRole](t, only(t, objs, "ClusterRole", "vouch"))
				if got := verbsFor(cr.Rules, "apps", "deployments"); !cmp.Equal(got, []string{"get"}) {
					t.Errorf("ClusterRole verbs on apps/deployments = %v, want [get] from rbac.extraRules", got)
				}
			},
		},
		{
			name:   "backgroundScan",
			values: "backgroundScan: {interval: 1h}\n",
			kinds:  withKinds("Secret"),
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				args := typed[appsv1.Deployment](t, only(t, objs, "Deployment", "vouch")).Spec.Template.Spec.Containers[0].Args
				if !slices.Contains(args, "--background-scan-interval=1h") || !slices.Contains(args, "--namespace="+helmNamespace) {
					t.Errorf("args %v lack --background-scan-interval=1h and --namespace=%s (the Lease's)", args, helmNamespace)
				}
				cr := typed[rbacv1.ClusterRole](t, only(t, objs, "ClusterRole", "vouch"))
				if got := verbsFor(cr.Rules, "", "pods"); !cmp.Equal(got, []string{"list"}) {
					t.Errorf("ClusterRole verbs on pods = %v, want [list] (scans list, never watch)", got)
				}
				role := typed[rbacv1.Role](t, only(t, objs, "Role", "vouch"))
				if got := verbsFor(role.Rules, "coordination.k8s.io", "leases"); !cmp.Equal(got, sorted([]string{"get", "create", "update"})) {
					t.Errorf("Role verbs on leases = %v, want get, create, update", got)
				}
			},
		},
		{
			name: "webhook.url: vouch outside the cluster; pull secrets",
			values: fmt.Sprintf("webhook: {url: %q, caBundle: %s}\n", url+"/", ca) +
				"registryCredentials: {imagePullSecrets: [regcred, other/cred], credentialHelpers: [], podImagePullSecrets: true}\n",
			kinds: withKinds("Secret", "ClusterRole", "ClusterRoleBinding"),
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				args := typed[appsv1.Deployment](t, only(t, objs, "Deployment", "vouch")).Spec.Template.Spec.Containers[0].Args
				for _, want := range []string{"--imagePullSecrets=regcred,other/cred", "--registryCredentialHelpers=", "--pod-image-pull-secrets=true"} {
					if !slices.Contains(args, want) {
						t.Errorf("args %v lack %s", args, want)
					}
				}
				// The Pods' own pull secrets are read in their namespaces: get (only) on Secrets
				// everywhere, in a ClusterRole of its own.
				cr := typed[rbacv1.ClusterRole](t, only(t, objs, "ClusterRole", "vouch-pod-pull-secrets"))
				if len(cr.Rules) != 1 || !cmp.Equal(verbsFor(cr.Rules, "", "secrets"), []string{"get"}) {
					t.Errorf("ClusterRole vouch-pod-pull-secrets rules %+v, want get on Secrets only", cr.Rules)
				}
				crb := typed[rbacv1.ClusterRoleBinding](t, only(t, objs, "ClusterRoleBinding", "vouch-pod-pull-secrets"))
				if crb.RoleRef.Name != cr.Name || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "vouch" {
					t.Errorf("ClusterRoleBinding vouch-pod-pull-secrets %v -> %v", crb.Subjects, crb.RoleRef)
				}
				for _, cc := range webhookClientConfigs(t, objs) {
					if cc.URL == nil || !strings.HasPrefix(*cc.URL, url+"/") || cc.Service != nil {
						t.Errorf("clientConfig %+v, want url %s/<path> and no Service", cc, url)
					}
					if !bytes.Equal(cc.CABundle, s.PKI.CAPEM) {
						t.Errorf("caBundle is not webhook.caBundle")
					}
				}
				checkWebhookConfigurations(t, objs, 10, admissionregistrationv1.Fail, url)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := h.template(t, tc.values)
			if got := kindsOf(objs); !slices.Equal(got, tc.kinds) {
				t.Errorf("rendered kinds %v, want %v", got, tc.kinds)
			}
			got := dryRun(t, s, mapper, objs)
			if !slices.Equal(got, tc.kinds) {
				t.Errorf("kinds accepted by the dry run %v, want %v", got, tc.kinds)
			}
			t.Logf("dry-run by the API server: %v", got)
			tc.check(t, objs)
		})
	}

	t.Run("the namespaceSelector is extendable; the release namespace stays excluded", func(t *testing.T) {
		objs := h.template(t, `webhook:
  excludedNamespaces: []
  namespaceSelector:
    matchLabels: {vouch.dev/enforce: "true"}
    matchExpressions: [{key: vouch.dev/exclude, operator: NotIn, values: ["true"]}]
`)
		want := &metav1.LabelSelector{
			MatchLabels: map[string]string{"vouch.dev/enforce": "true"},
			MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{helmNamespace}},
				{Key: "vouch.dev/exclude", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}},
			},
		}
		mwc := typed[admissionregistrationv1.MutatingWebhookConfiguration](t, only(t, objs, "MutatingWebhookConfiguration", "vouch"))
		vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, only(t, objs, "ValidatingWebhookConfiguration", "vouch"))
		for name, got := range map[string]*metav1.LabelSelector{mwc.Webhooks[0].Name: mwc.Webhooks[0].NamespaceSelector, vwc.Webhooks[0].Name: vwc.Webhooks[0].NamespaceSelector} {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s namespaceSelector (-want +got):\n%s", name, diff)
			}
		}
		if got := dryRun(t, s, mapper, objs); !slices.Equal(got, withKinds("Secret")) {
			t.Errorf("kinds accepted by the dry run %v", got)
		}
	})

	t.Run("invalid values are refused", func(t *testing.T) {
		for values, want := range map[string]string{
			`webhook: {url: "https://127.0.0.1:1"}`:                           "webhook.caBundle (base64 PEM) is required",
			`tls: {existingSecret: mine}`:                                     "webhook.caBundle (base64 PEM) is required",
			`webhook: {failurePolicy: Never}`:                                 "failurePolicy",
			`webhook: {timeoutSeconds: 31}`:                                   "timeoutSeconds",
			`webhok: {url: "https://127.0.0.1:1"}`:                            "additional properties 'webhok' not allowed",
			`webhook: {url: "http://127.0.0.1:1"}`:                            "/webhook/url",
			"backgroundScan: {interval: 1h}\npolicyReports: {enabled: false}": "backgroundScan.interval needs policyReports.enabled",
			`backgroundScan: {interval: soon}`:                                "/backgroundScan/interval",
		} {
			_, err := h.run(t, "template", helmRelease, chartPath(t), "--namespace", helmNamespace, "-f", h.valuesFile(t, values))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("values %s: error %v, want one saying %q", values, err, want)
			}
		}
	})

	t.Run("helm installs the CRDs of crds/ with the chart", func(t *testing.T) {
		// --include-crds renders what helm install creates before the templates (and what
		// --skip-crds leaves out): every file of crds/, the Kyverno policy CRDs among them.
		files, err := filepath.Glob(filepath.Join(helmChartDir, "crds", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, decodeObjects(t, string(data))[0].GetName())
		}
		var got []string
		objs := decodeObjects(t, h.mustRun(t, "template", helmRelease, chartPath(t), "--namespace", helmNamespace, "--include-crds"))
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				got = append(got, o.GetName())
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) || !slices.Contains(got, "clusterpolicies.kyverno.io") || !slices.Contains(got, "policies.kyverno.io") {
			t.Errorf("CRDs rendered with --include-crds %v, want those of crds/ %v (the Kyverno policy CRDs among them)", got, want)
		}
	})
}

// TestE2EHelmLint runs `helm lint --strict` on the chart with its defaults and in each TLS
// mode, and checks that lint checks values against values.schema.json.
func TestE2EHelmLint(t *testing.T) {
	h := newHelm(t)
	for _, values := range []string{
		"",
		"certManager: {enabled: true}\n",
		"webhook: {url: \"https://127.0.0.1:18443\", caBundle: " + b64([]byte("ca")) + "}\n",
	} {
		out := h.mustRun(t, "lint", "--strict", chartPath(t), "-f", h.valuesFile(t, values))
		if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm lint with values %q:\n%s", values, out)
		}
	}
	if _, err := h.run(t, "lint", "--strict", chartPath(t), "--set", "webhook.failurePolicy=Never"); err == nil {
		t.Error("helm lint accepted webhook.failurePolicy=Never")
	}
}

// TestE2EHelmInstall installs the chart with helm against a real API server, its webhooks
// pointing (webhook.url) at a vouch serve process started with the Deployment's own arguments,
// and checks what was installed and that admission runs through it: an unsigned image is
// denied, a signed one pinned, the release namespace and kube-system are never intercepted, a
// policy vouch cannot enforce is rejected when it is created; helm upgrade keeps the generated
// certificate; helm uninstall removes the webhooks.
func TestE2EHelmInstall(t *testing.T) {
	h := newHelm(t)
	s := startAPIServer(t)
	// vouch serve needs the policy CRDs before it starts (it lists policies to become ready);
	// helm install then finds them and skips crds/.
	installKyvernoCRDs(t, s.Config)
	createNamespace(t, s.Client, helmNamespace, nil)
	createNamespace(t, s.Client, "helm-e2e", nil)

	env := newToolEnv(t)
	cosign := toolPath(t, "cosign")
	host := startDistribution(t)
	key := env.generateKeyPair(t, cosign, "k")
	signed := pushRandom(t, host, "app:signed")
	pushRandom(t, host, "app:unsigned")
	env.mustRun(t, "", nil, cosign, "sign", "--key", key.private, "--tlog-upload=false", "-y", host+"/app@"+signed)
	// Every namespace: where vouch's webhooks are called, unsigned images are denied.
	e2ePolicy{kind: "ClusterPolicy", name: "verify-signed", action: "Enforce", failurePolicy: "Fail",
		ref: host + "/app*", key: key.pem}.create(t, s)

	// vouch serve with the arguments of the chart's Deployment, but for where it listens and
	// its certificate (given by startServeProcess) and the drain time: the flags the chart
	// passes must be ones the binary knows.
	rendered := typed[appsv1.Deployment](t, only(t, h.template(t, fmt.Sprintf("webhook: {url: \"https://127.0.0.1:1\", caBundle: %s}\n", b64(s.PKI.CAPEM))), "Deployment", "vouch"))
	chartArgs := rendered.Spec.Template.Spec.Containers[0].Args
	if len(chartArgs) == 0 || chartArgs[0] != "serve" {
		t.Fatalf("the Deployment runs %v, want vouch serve", chartArgs)
	}
	var serveArgs []string
	for _, a := range chartArgs[1:] {
		if name, _, _ := strings.Cut(a, "="); !slices.Contains([]string{"--listen", "--tls-cert-file", "--tls-key-file", "--shutdown-grace"}, name) {
			serveArgs = append(serveArgs, a)
		}
	}
	vouch := startServeProcess(t, s, serveArgs...)
	t.Logf("vouch serve %s", strings.Join(serveArgs, " "))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vouch serve log (last lines):\n%s", lastLines(vouch.proc.logs.String(), 40))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	values := h.valuesFile(t, fmt.Sprintf("webhook:\n  url: %q\n  caBundle: %s\n", vouch.URL, b64(s.PKI.CAPEM)))
	before := webhookCalls(t, ctx, s.Client)
	out := h.mustRun(t, "install", helmRelease, chartPath(t), "--namespace", helmNamespace,
		"--kubeconfig", s.Kubeconfig, "-f", values)
	if !strings.Contains(out, "STATUS: deployed") {
		t.Errorf("helm install did not report the release deployed:\n%s", out)
	}
	waitForWebhooks(t, ctx, s.Client, before)

	cs := s.Client
	t.Run("webhook configurations", func(t *testing.T) {
		mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		objs := []*unstructured.Unstructured{toUnstructured(t, mwc, "MutatingWebhookConfiguration"), toUnstructured(t, vwc, "ValidatingWebhookConfiguration")}
		checkWebhookConfigurations(t, objs, e2eWebhookTimeout, admissionregistrationv1.Fail, vouch.URL)
		for _, cc := range webhookClientConfigs(t, objs) {
			if !bytes.Equal(cc.CABundle, s.PKI.CAPEM) {
				t.Errorf("caBundle of %s is not the test CA", *cc.URL)
			}
		}
	})

	t.Run("Deployment, PodDisruptionBudget, Service", func(t *testing.T) {
		d, err := cs.AppsV1().Deployments(helmNamespace).Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkDeployment(t, d, "ghcr.io/vouchproject/vouch:"+chartAppVersion(t))
		if got := d.Spec.Template.Spec.Containers[0].Args; !slices.Equal(got, chartArgs) {
			t.Errorf("installed Deployment args %v, want the rendered %v (run by the vouch serve process)", got, chartArgs)
		}
		pdb, err := cs.PolicyV1().PodDisruptionBudgets(helmNamespace).Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget spec %+v, want maxUnavailable 1", pdb.Spec)
		}
		if !cmp.Equal(pdb.Spec.Selector, d.Spec.Selector) {
			t.Errorf("PodDisruptionBudget selector %v, Deployment selector %v", pdb.Spec.Selector, d.Spec.Selector)
		}
		svc, err := cs.CoreV1().Services(helmNamespace).Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("https") {
			t.Errorf("Service ports %+v, want 443 -> https", svc.Spec.Ports)
		}
		if !cmp.Equal(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
			t.Errorf("Service selector %v, Deployment's Pods %v", svc.Spec.Selector, d.Spec.Selector.MatchLabels)
		}
		if svc.Spec.ClusterIP == "" {
			t.Error("the Service got no cluster IP")
		}
	})

	t.Run("ServiceAccount and RBAC", func(t *testing.T) {
		if _, err := cs.CoreV1().ServiceAccounts(helmNamespace).Get(ctx, "vouch", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		cr, err := cs.RbacV1().ClusterRoles().Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct {
			group, resource string
			verbs           []string
		}{
			{"kyverno.io", "clusterpolicies", []string{"get", "list", "watch"}},
			{"kyverno.io", "policies", []string{"get", "list", "watch"}},
			{"", "namespaces", []string{"get", "list", "watch"}},
			{"", "configmaps", []string{"get"}}, // rule context entries; never listed or watched
			{"rbac.authorization.k8s.io", "rolebindings", []string{"get", "list", "watch"}},
			{"rbac.authorization.k8s.io", "clusterrolebindings", []string{"get", "list", "watch"}},
			{"", "events", []string{"create", "patch"}},
			{"events.k8s.io", "events", []string{"create", "patch"}},
			{"wgpolicyk8s.io", "policyreports", []string{"create", "update", "patch", "get", "list"}},
			{"wgpolicyk8s.io", "clusterpolicyreports", []string{"create", "update", "patch", "get", "list"}},
		} {
			if got := verbsFor(cr.Rules, want.group, want.resource); !cmp.Equal(got, sorted(want.verbs)) {
				t.Errorf("ClusterRole verbs on %s/%s = %v, want %v", want.group, want.resource, got, sorted(want.verbs))
			}
		}
		for _, r := range cr.Rules {
			if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") || slices.Contains(r.Verbs, "*") || slices.Contains(r.Verbs, "delete") {
				t.Errorf("ClusterRole rule %+v: no Secrets, wildcards or deletes cluster-wide", r)
			}
		}
		role, err := cs.RbacV1().Roles(helmNamespace).Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(role.Rules) != 1 || !cmp.Equal(verbsFor(role.Rules, "", "secrets"), []string{"get", "list", "watch"}) {
			t.Errorf("Role rules %+v, want get/list/watch on Secrets only", role.Rules)
		}
		crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rb, err := cs.RbacV1().RoleBindings(helmNamespace).Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sa := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vouch", Namespace: helmNamespace}}
		if !cmp.Equal(crb.Subjects, sa) || crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != "vouch" {
			t.Errorf("ClusterRoleBinding %v -> %v", crb.Subjects, crb.RoleRef)
		}
		if !cmp.Equal(rb.Subjects, sa) || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "vouch" {
			t.Errorf("RoleBinding %v -> %v", rb.Subjects, rb.RoleRef)
		}
	})

	createPod := func(p *corev1.Pod) (*corev1.Pod, error) {
		return cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	}
	t.Run("unsigned Pod is denied through the installed webhooks", func(t *testing.T) {
		_, err := createPod(e2ePod("helm-e2e", "unsigned", nil, host+"/app:unsigned"))
		deniedBy(t, err, mutatingWebhookName, "verify-signed", "check-signature",
			"failed to verify image "+host+"/app:unsigned", "no signatures found")
	})

	t.Run("signed Pod is admitted and pinned", func(t *testing.T) {
		got, err := createPod(e2ePod("helm-e2e", "signed", nil, host+"/app:signed"))
		if err != nil {
			t.Fatalf("a signed image: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != host+"/app:signed@"+signed {
			t.Errorf("stored image %s, want it pinned to %s", img, signed)
		}
	})

	t.Run("the release namespace and kube-system are not intercepted", func(t *testing.T) {
		for _, ns := range []string{helmNamespace, "kube-system"} {
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, e2ePod(ns, "unsigned", nil, host+"/app:unsigned"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("an unsigned Pod in %s (excluded by the namespaceSelector): %v", ns, err)
			}
		}
	})

	t.Run("a policy vouch cannot enforce is rejected at create time", func(t *testing.T) {
		// Without the endpoint, the chart's policy webhook (failurePolicy Fail) would refuse
		// every policy.
		if !hasEndpoint(t, s, vouch.URL+"/validate-policy") {
			t.Fatal("vouch serve answers 404 on /validate-policy, which the chart's validate-policy.vouch.dev webhook calls")
		}
		// Kyverno refuses mutateDigest with Audit.
		broken := e2ePolicy{kind: "ClusterPolicy", name: "broken", action: "Audit", failurePolicy: "Fail",
			ref: host + "/app*", key: key.pem}
		_, err := s.Dynamic.Resource(clusterPolicyGVR).Create(ctx, broken.object(t), metav1.CreateOptions{})
		deniedBy(t, err, policyWebhookName, "spec.rules[0].verifyImages[0].mutateDigest")
		good := broken
		good.noPin = true
		if _, err := s.Dynamic.Resource(clusterPolicyGVR).Create(ctx, good.object(t), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("a valid Audit policy (mutateDigest: false): %v", err)
		}
	})

	// Memory of the vouch serve process after these admissions, the basis of the chart's
	// resources (values.yaml).
	rss, hwm := procMemory(vouch.proc.cmd.Process.Pid)
	t.Logf("vouch serve memory after the admissions: VmRSS %.1f MiB, VmHWM %.1f MiB", float64(rss)/(1<<20), float64(hwm)/(1<<20))
	if hwm > 0 {
		d, err := cs.AppsV1().Deployments(helmNamespace).Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		req := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory]
		if hwm >= uint64(req.Value()) {
			t.Errorf("vouch serve peaked at %d bytes, above the chart's memory request %s: resize resources in values.yaml", hwm, req.String())
		}
	}

	t.Run("helm upgrade keeps the generated certificate", func(t *testing.T) {
		sec, err := cs.CoreV1().Secrets(helmNamespace).Get(ctx, "vouch-tls", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h.mustRun(t, "upgrade", helmRelease, chartPath(t), "--namespace", helmNamespace,
			"--kubeconfig", s.Kubeconfig, "--reuse-values", "--set", "webhook.timeoutSeconds=15")
		after, err := cs.CoreV1().Secrets(helmNamespace).Get(ctx, "vouch-tls", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(after.Data, sec.Data) {
			t.Error("helm upgrade generated a new certificate; lookup should have kept the Secret")
		}
		mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "vouch", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ts := mwc.Webhooks[0].TimeoutSeconds; ts == nil || *ts != 15 {
			t.Errorf("after the upgrade timeoutSeconds = %v, want 15", deref(ts))
		}
	})

	t.Run("helm uninstall removes the webhooks", func(t *testing.T) {
		h.mustRun(t, "uninstall", helmRelease, "--namespace", helmNamespace, "--kubeconfig", s.Kubeconfig)
		for _, get := range []func() error{
			func() error {
				_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "vouch", metav1.GetOptions{})
				return err
			},
			func() error {
				_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "vouch", metav1.GetOptions{})
				return err
			},
		} {
			if err := get(); !apierrors.IsNotFound(err) {
				t.Errorf("a webhook configuration is left after helm uninstall: %v", err)
			}
		}
		// The API server's webhook cache follows within moments; the policy CRDs (crds/) stay.
		wctx, wcancel := context.WithTimeout(ctx, apiWaitTimeout)
		defer wcancel()
		waitFor(t, wctx, "an unsigned Pod to be admitted without vouch", func() error {
			_, err := cs.CoreV1().Pods("helm-e2e").Create(wctx, e2ePod("helm-e2e", "after-uninstall", nil, host+"/app:unsigned"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		})
		if _, err := s.Dynamic.Resource(crdGVR).Get(ctx, "clusterpolicies.kyverno.io", metav1.GetOptions{}); err != nil {
			t.Errorf("the ClusterPolicy CRD after helm uninstall: %v", err)
		}
	})
}

// webhookClientConfigs returns the clientConfig of every webhook of the rendered webhook
// configurations.
func webhookClientConfigs(t *testing.T, objs []*unstructured.Unstructured) []admissionregistrationv1.WebhookClientConfig {
	t.Helper()
	var out []admissionregistrationv1.WebhookClientConfig
	for _, w := range typed[admissionregistrationv1.MutatingWebhookConfiguration](t, only(t, objs, "MutatingWebhookConfiguration", "vouch")).Webhooks {
		out = append(out, w.ClientConfig)
	}
	for _, w := range typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, only(t, objs, "ValidatingWebhookConfiguration", "vouch")).Webhooks {
		out = append(out, w.ClientConfig)
	}
	return out
}

// checkWebhookConfigurations checks the chart's webhook configurations: the mutating webhook
// and the validating webhook for Pods and pod controllers (webhookRules, as the harness
// registers them), the validating webhook of Kyverno policies, each with the given timeout and
// failurePolicy, sideEffects (NoneOnDryRun; None for the policy webhook), AdmissionReview v1, and a namespaceSelector leaving out the
// release namespace and kube-system. url, when given, is where they call vouch.
func checkWebhookConfigurations(t *testing.T, objs []*unstructured.Unstructured, timeout int32, fp admissionregistrationv1.FailurePolicyType, url string) {
	t.Helper()
	mwc := typed[admissionregistrationv1.MutatingWebhookConfiguration](t, only(t, objs, "MutatingWebhookConfiguration", "vouch"))
	vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, only(t, objs, "ValidatingWebhookConfiguration", "vouch"))
	type hook struct {
		name, path        string
		rules             []admissionregistrationv1.RuleWithOperations
		failurePolicy     *admissionregistrationv1.FailurePolicyType
		timeout           *int32
		sideEffects       *admissionregistrationv1.SideEffectClass
		versions          []string
		namespaceSelector *metav1.LabelSelector
		url               *string
	}
	var hooks []hook
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("MutatingWebhookConfiguration has %d webhooks, want 1", len(mwc.Webhooks))
	}
	m := mwc.Webhooks[0]
	if m.ReinvocationPolicy == nil || *m.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("%s reinvocationPolicy %v, want IfNeeded", m.Name, deref(m.ReinvocationPolicy))
	}
	hooks = append(hooks, hook{m.Name, "/mutate", m.Rules, m.FailurePolicy, m.TimeoutSeconds, m.SideEffects, m.AdmissionReviewVersions, m.NamespaceSelector, m.ClientConfig.URL})
	for _, v := range vwc.Webhooks {
		hooks = append(hooks, hook{v.Name, "", v.Rules, v.FailurePolicy, v.TimeoutSeconds, v.SideEffects, v.AdmissionReviewVersions, v.NamespaceSelector, v.ClientConfig.URL})
	}
	var names []string
	for _, h := range hooks {
		names = append(names, h.name)
	}
	if want := []string{mutatingWebhookName, validatingHookName, policyWebhookName}; !slices.Equal(names, want) {
		t.Fatalf("webhooks %v, want %v", names, want)
	}
	hooks[1].path, hooks[2].path = "/validate", "/validate-policy"
	scope := admissionregistrationv1.AllScopes
	policyRules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"kyverno.io"}, APIVersions: []string{"*"},
			Resources: []string{"clusterpolicies", "policies"}, Scope: &scope,
		},
	}}
	for i, h := range hooks {
		wantRules := webhookRules()
		if h.name == policyWebhookName {
			wantRules = policyRules
		}
		if diff := cmp.Diff(wantRules, h.rules); diff != "" {
			t.Errorf("%s rules (-want +got):\n%s", h.name, diff)
		}
		if h.failurePolicy == nil || *h.failurePolicy != fp {
			t.Errorf("%s failurePolicy %v, want %s", h.name, deref(h.failurePolicy), fp)
		}
		if h.timeout == nil || *h.timeout != timeout {
			t.Errorf("%s timeoutSeconds %v, want %d", h.name, deref(h.timeout), timeout)
		}
		// The image webhooks record Events and PolicyReports, except on dry runs; the policy
		// webhook records nothing.
		wantSideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
		if h.name == policyWebhookName {
			wantSideEffects = admissionregistrationv1.SideEffectClassNone
		}
		if h.sideEffects == nil || *h.sideEffects != wantSideEffects {
			t.Errorf("%s sideEffects %v, want %s", h.name, deref(h.sideEffects), wantSideEffects)
		}
		if !slices.Equal(h.versions, []string{"v1"}) {
			t.Errorf("%s admissionReviewVersions %v, want [v1]", h.name, h.versions)
		}
		if url != "" && (h.url == nil || *h.url != url+h.path) {
			t.Errorf("%s url %v, want %s", h.name, deref(h.url), url+h.path)
		}
		if i == 2 { // policies: every namespace (a ClusterPolicy has none)
			if h.namespaceSelector != nil && (len(h.namespaceSelector.MatchLabels) > 0 || len(h.namespaceSelector.MatchExpressions) > 0) {
				t.Errorf("%s namespaceSelector %v, want none", h.name, h.namespaceSelector)
			}
			continue
		}
		want := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{helmNamespace, "kube-system"},
		}}}
		if diff := cmp.Diff(want, h.namespaceSelector); diff != "" {
			t.Errorf("%s namespaceSelector (-want +got):\n%s", h.name, diff)
		}
	}
}

// checkDeployment checks the chart's Deployment with its default values: 3 replicas of vouch
// serve on 9443 with the mounted certificate, HTTP probes on their own port (8081), a hardened security context,
// resources, anti-affinity by node.
func checkDeployment(t *testing.T, d *appsv1.Deployment, image string) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", deref(d.Spec.Replicas))
	}
	ps := d.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image != image {
		t.Errorf("image %s, want %s", c.Image, image)
	}
	for _, want := range []string{"serve", "--listen=:9443", "--tls-cert-file=/etc/vouch/tls/tls.crt", "--tls-key-file=/etc/vouch/tls/tls.key",
		"--imageVerifyCacheEnabled=true", "--imageVerifyCacheMaxSize=1000", "--imageVerifyCacheTTLDuration=60m", "--log-level=info",
		"--namespace=vouch", "--pod-image-pull-secrets=false", "--events=true", "--policy-reports=true"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if len(c.Ports) != 2 || c.Ports[0].ContainerPort != 9443 || c.Ports[0].Name != "https" || c.Ports[1].ContainerPort != 8081 || c.Ports[1].Name != "health" {
		t.Errorf("ports %+v, want https 9443 and health 8081", c.Ports)
	}
	if !slices.Contains(c.Args, "--health-listen=:8081") {
		t.Errorf("args %v lack --health-listen=:8081", c.Args)
	}
	// The probes have their own listener, outside --max-connections (docs/WEBHOOK.md).
	for probe, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe, "/healthz ": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != strings.TrimSpace(probe) || p.HTTPGet.Scheme != corev1.URISchemeHTTP || p.HTTPGet.Port != intstr.FromString("health") {
			t.Errorf("probe %s: %+v, want HTTP GET %s on port health", probe, p, probe)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext %+v is not hardened", sc)
	}
	if pc := ps.SecurityContext; pc == nil || pc.RunAsNonRoot == nil || !*pc.RunAsNonRoot || pc.SeccompProfile == nil || pc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", pc)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Error("no memory limit")
	}
	var memLimit string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			memLimit = e.Value
		}
	}
	if n, err := strconv.ParseInt(memLimit, 10, 64); err != nil || n <= 0 || n >= limit.Value() {
		t.Errorf("GOMEMLIMIT %q, want bytes below the memory limit %s", memLimit, limit.String())
	}
	mounted := false
	for _, v := range ps.Volumes {
		if v.Name == "tls" && v.Secret != nil && v.Secret.SecretName == "vouch-tls" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("volumes %+v: the Secret vouch-tls is not mounted", ps.Volumes)
	}
	aa := ps.Affinity
	if aa == nil || aa.PodAntiAffinity == nil || len(aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("affinity %+v, want preferred pod anti-affinity by hostname", aa)
	} else if sel := aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector; sel == nil || !cmp.Equal(sel.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("anti-affinity selects %v, want vouch's Pods %v", sel, d.Spec.Selector.MatchLabels)
	}
	if ps.ServiceAccountName != "vouch" {
		t.Errorf("serviceAccountName %q, want vouch", ps.ServiceAccountName)
	}
}

// checkServingCert checks that the certificate and key are a pair, issued by the CA, for dnsName,
// for server authentication.
func checkServingCert(t *testing.T, certPEM, keyPEM, caPEM []byte, dnsName string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.crt holds no certificate")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("tls.crt holds no PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the serving certificate does not verify for %s: %v", dnsName, err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("tls.crt and tls.key: %v", err)
	}
}

// toUnstructured converts a typed object fetched from the API server (which leaves apiVersion
// and kind empty) into an unstructured one of kind.
func toUnstructured(t *testing.T, obj any, kind string) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("admissionregistration.k8s.io/v1")
	u.SetKind(kind)
	return u
}

// verbsFor returns the verbs the rules grant on group/resource, sorted.
func verbsFor(rules []rbacv1.PolicyRule, group, res string) []string {
	var verbs []string
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, res) {
			verbs = append(verbs, r.Verbs...)
		}
	}
	return sorted(verbs)
}

// deref is what p points to, or nil, for messages.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// chartAppVersion reads appVersion from Chart.yaml.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(helmChartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q %v", c.AppVersion, err)
	}
	return c.AppVersion
}

// hasEndpoint says whether the vouch serve process serves url (anything but 404 to an empty
// POST).
func hasEndpoint(t *testing.T, s *apiServer, url string) bool {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: s.PKI.clientTLS()}, Timeout: 5 * time.Second}
	resp, err := hc.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound
}

// procMemory returns the resident set size of a process and its peak (VmRSS, VmHWM of
// /proc/PID/status), or zeros where /proc is not available.
func procMemory(pid int) (rss, hwm uint64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(strings.ReplaceAll(strings.TrimSpace(value), " kB", "Ki"))
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			rss = uint64(q.Value())
		case "VmHWM":
			hwm = uint64(q.Value())
		}
	}
	return rss, hwm
}
