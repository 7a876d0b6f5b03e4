package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
)

const digest = "sha256:b31bfb4d0213f254d361e0079deaaebefa4f82ba7aa76ef82e90b4935ad5b105"

func newEngine(t *testing.T, policies string) *Engine {
	t.Helper()
	docs, err := manifest.Split("p.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Policies: set})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pod(t *testing.T, ns string, images ...string) map[string]any {
	t.Helper()
	var containers []any
	for i, img := range images {
		containers = append(containers, map[string]any{"name": "c" + string(rune('0'+i)), "image": img})
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "p", "namespace": ns},
		"spec":     map[string]any{"containers": containers},
	}
}

func policyYAML(spec, entry string) string {
	return "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: pol}\nspec:\n" + spec +
		"  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n" + entry
}

type result struct {
	Status  Status
	Message string
	Images  map[string]Status
}

func evaluate(t *testing.T, e *Engine, obj map[string]any, nsLabels map[string]string) []result {
	t.Helper()
	resp, err := e.Evaluate(context.Background(), Request{Object: obj, NamespaceLabels: nsLabels})
	if err != nil {
		t.Fatal(err)
	}
	var out []result
	for _, r := range resp.Results {
		res := result{Status: r.Status, Message: r.Message, Images: map[string]Status{}}
		for _, im := range r.Images {
			res.Images[im.Ref.String()] = im.Status
		}
		out = append(out, res)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	const enforce = "  validationFailureAction: Enforce\n"
	const audit = "  validationFailureAction: Audit\n"
	attestor := `      attestors: [{entries: [{keys: {kms: "awskms:///k"}}]}]
`
	tests := []struct {
		name   string
		policy string
		images []string
		want   []result
	}{
		{"verification needs a verifier", policyYAML(enforce, `    - imageReferences: ["ghcr.io/*"]
`+attestor), []string{"ghcr.io/a/b:1"},
			[]result{{Error, "no verifier configured", map[string]Status{"ghcr.io/a/b:1": Error}}}},
		{"digest pinning needs a registry", policyYAML(enforce, `    - imageReferences: ["*"]
`), []string{"nginx"},
			[]result{{Error, "failed to update digest: failed to fetch image reference: docker.io/nginx:latest, error: no verifier configured", map[string]Status{"docker.io/nginx:latest": Error}}}},
		{"digest present needs nothing", policyYAML(enforce, `    - imageReferences: ["*"]
      required: false
`), []string{"nginx@" + digest},
			[]result{{Pass, "image verified", map[string]Status{"docker.io/nginx@" + digest: Pass}}}},
		{"missing digest", policyYAML(enforce, `    - imageReferences: ["*"]
      mutateDigest: false
      required: false
`), []string{"nginx:1", "ghcr.io/x@" + digest},
			[]result{{Fail, "missing digest for docker.io/nginx:1", map[string]Status{"docker.io/nginx:1": Fail, "ghcr.io/x@" + digest: Pass}}}},
		{"missing digest under Audit is warn", policyYAML(audit, `    - imageReferences: ["*"]
      mutateDigest: false
      required: false
`), []string{"nginx:1"},
			[]result{{Warn, "missing digest for docker.io/nginx:1", map[string]Status{"docker.io/nginx:1": Fail}}}},
		{"required without attestors is unverified", policyYAML(enforce, `    - imageReferences: ["*"]
      mutateDigest: false
      verifyDigest: false
`), []string{"ghcr.io/a:1", "ghcr.io/b:1"},
			[]result{{Fail, "unverified image ghcr.io/a:1; unverified image ghcr.io/b:1", map[string]Status{"ghcr.io/a:1": Fail, "ghcr.io/b:1": Fail}}}},
		{"skipped images satisfy required", policyYAML(enforce, `    - imageReferences: ["ghcr.io/*"]
      skipImageReferences: ["ghcr.io/skip/*"]
      verifyDigest: false
`+attestor), []string{"ghcr.io/skip/a@" + digest},
			[]result{{Skip, "image skipped, skipped images: ghcr.io/skip/a@" + digest, map[string]Status{"ghcr.io/skip/a@" + digest: Skip}}}},
		{"skipped image still needs a digest", policyYAML(enforce, `    - imageReferences: ["ghcr.io/*"]
      skipImageReferences: ["ghcr.io/skip/*"]
      mutateDigest: false
`+attestor), []string{"ghcr.io/skip/a:1"},
			[]result{{Fail, "missing digest for ghcr.io/skip/a:1", map[string]Status{"ghcr.io/skip/a:1": Fail}}}},
		{"fail outranks error", policyYAML(enforce, `    - imageReferences: ["ghcr.io/*"]
      mutateDigest: false
`+attestor+`    - imageReferences: ["docker.io/*"]
      mutateDigest: false
      required: false
`), []string{"ghcr.io/a:1", "nginx:1"},
			[]result{{Fail, "missing digest for docker.io/nginx:1", map[string]Status{"ghcr.io/a:1": Error, "docker.io/nginx:1": Fail}}}},
		{"an entry that does not match an image does not satisfy required for it", policyYAML(enforce, `    - imageReferences: ["ghcr.io/*"]
      verifyDigest: false
      required: false
      mutateDigest: false
`+attestor+`    - imageReferences: ["docker.io/*"]
      mutateDigest: false
      verifyDigest: false
`), []string{"nginx:1"},
			[]result{{Fail, "unverified image docker.io/nginx:1", map[string]Status{"docker.io/nginx:1": Fail}}}},
		{"no matching image, no result", policyYAML(enforce, `    - imageReferences: ["ghcr.io/*"]
`+attestor), []string{"nginx:1"}, nil},
		{"nothing to check, no result", policyYAML(enforce, `    - imageReferences: ["*"]
      mutateDigest: false
      verifyDigest: false
      required: false
`), []string{"nginx:1"}, nil},
		{"same image in two containers is one image", policyYAML(enforce, `    - imageReferences: ["*"]
      mutateDigest: false
      required: false
`), []string{"nginx:1", "docker.io/nginx:1"},
			[]result{{Fail, "missing digest for docker.io/nginx:1", map[string]Status{"docker.io/nginx:1": Fail}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, tt.policy)
			got := evaluate(t, e, pod(t, "default", tt.images...), nil)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIncomingAnnotationsAreNotEvidence: a resource that arrives claiming its images were
// verified (kyverno.io/verify-images and -scoped) gets exactly the verdict of one without the
// claim (DESIGN §6).
func TestIncomingAnnotationsAreNotEvidence(t *testing.T) {
	e := newEngine(t, policyYAML("  validationFailureAction: Enforce\n", `    - imageReferences: ["*"]
      mutateDigest: false
      verifyDigest: false
`))
	plain := pod(t, "default", "ghcr.io/a:1")
	forged := pod(t, "default", "ghcr.io/a:1")
	forged["metadata"].(map[string]any)["annotations"] = map[string]any{
		"kyverno.io/verify-images":        `{"ghcr.io/a:1":"pass"}`,
		"kyverno.io/verify-images-scoped": `{"version":1,"policies":{"/pol":{"r":{"ghcr.io/a:1":"pass"}}}}`,
	}
	want := evaluate(t, e, plain, nil)
	got := evaluate(t, e, forged, nil)
	if diff := cmp.Diff(want, got); diff != "" || len(got) != 1 || got[0].Status != Fail {
		t.Errorf("forged annotations changed the verdict (-plain +forged):\n%s\n%v", diff, got)
	}
}

func TestOverridesAndEntryActions(t *testing.T) {
	spec := `  validationFailureAction: Audit
  validationFailureActionOverrides:
  - action: Enforce
    namespaces: ["prod-*"]
  - action: Enforce
    namespaceSelector: {matchLabels: {tier: critical}}
`
	e := newEngine(t, policyYAML(spec, `    - imageReferences: ["*"]
      mutateDigest: false
      required: false
`))
	for _, tt := range []struct {
		ns     string
		labels map[string]string
		want   Status
	}{
		{"dev", nil, Warn},
		{"prod-eu", nil, Fail},
		{"dev", map[string]string{"tier": "critical"}, Fail},
	} {
		got := evaluate(t, e, pod(t, tt.ns, "nginx:1"), tt.labels)
		if len(got) != 1 || got[0].Status != tt.want {
			t.Errorf("namespace %s %v: got %v, want %s", tt.ns, tt.labels, got, tt.want)
		}
	}
	// An entry-level failureAction wins over the overrides.
	e = newEngine(t, policyYAML(spec, `    - imageReferences: ["*"]
      failureAction: Audit
      mutateDigest: false
      required: false
`))
	if got := evaluate(t, e, pod(t, "prod-eu", "nginx:1"), nil); len(got) != 1 || got[0].Status != Warn {
		t.Errorf("entry Audit in prod: got %v, want warn", got)
	}
}

func TestApplyRulesOneAndWarnings(t *testing.T) {
	policy := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: pol}
spec:
  validationFailureAction: Enforce
  applyRules: One
  rules:
  - name: first
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false, required: false}]
  - name: second
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false, required: false}]
  - name: skipper
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], skipImageReferences: ["*"], attestors: [{entries: [{keys: {kms: "awskms:///k"}}]}], mutateDigest: false, verifyDigest: false}]
`
	e := newEngine(t, policy)
	resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", "nginx:1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Rule.Name != "first" {
		t.Errorf("applyRules One: got %d results", len(resp.Results))
	}
	e = newEngine(t, strings.Replace(policy, "  applyRules: One\n", "", 1))
	resp, err = e.Evaluate(context.Background(), Request{Object: pod(t, "default", "nginx:1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 3 {
		t.Fatalf("applyRules All: got %d results", len(resp.Results))
	}
	want := "policy pol.skipper: skipping image reference image docker.io/nginx:1, policy pol ruleName skipper"
	if len(resp.Warnings) != 1 || resp.Warnings[0] != want {
		t.Errorf("warnings = %q, want [%q]", resp.Warnings, want)
	}
}

func TestControllersUseTemplateImages(t *testing.T) {
	e := newEngine(t, policyYAML("  validationFailureAction: Enforce\n", `    - imageReferences: ["*"]
      mutateDigest: false
      required: false
`))
	var dep map[string]any
	if err := yaml.Unmarshal([]byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: default}
spec:
  template:
    spec:
      initContainers: [{name: init, image: "busybox@`+digest+`"}]
      containers: [{name: app, image: "ghcr.io/app:1"}]
`), &dep); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Evaluate(context.Background(), Request{Object: dep})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Rule.Name != "autogen-r" || resp.Results[0].Message != "missing digest for ghcr.io/app:1" {
		t.Fatalf("results = %+v", resp.Results)
	}
}

func TestEvaluateNeedsObject(t *testing.T) {
	e := newEngine(t, policyYAML("  validationFailureAction: Enforce\n", "    - imageReferences: [\"*\"]\n"))
	if _, err := e.Evaluate(context.Background(), Request{}); err == nil {
		t.Error("Evaluate without an object succeeded")
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without policies succeeded")
	}
}

func TestEmitWarningDeleteAndAuditErrors(t *testing.T) {
	e := newEngine(t, policyYAML("  validationFailureAction: Audit\n  emitWarning: true\n", `    - imageReferences: ["ghcr.io/*"]
      mutateDigest: false
      attestors: [{entries: [{keys: {kms: "awskms:///k"}}]}]
    - imageReferences: ["docker.io/*"]
      mutateDigest: false
      required: false
`))
	obj := pod(t, "default", "ghcr.io/a:1", "nginx:1")
	resp, err := e.Evaluate(context.Background(), Request{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	// The Audit failure of nginx becomes warn and must not hide the error of ghcr.io/a.
	if len(resp.Results) != 1 || resp.Results[0].Status != Error || resp.Results[0].Message != "no verifier configured" {
		t.Fatalf("results = %+v", resp.Results)
	}
	if want := "policy pol.r: no verifier configured"; len(resp.Warnings) != 1 || resp.Warnings[0] != want {
		t.Errorf("emitWarning: warnings = %q, want [%q]", resp.Warnings, want)
	}
	resp, err = e.Evaluate(context.Background(), Request{Object: obj, Operation: "DELETE"})
	if err != nil || len(resp.Results) != 0 {
		t.Errorf("DELETE: results = %+v, err = %v; want none", resp.Results, err)
	}
}

// FuzzEvaluate feeds arbitrary objects to the engine with a policy set that exercises every
// extractor path and a rule context built from the object (context entries, preconditions,
// substitution into keys and repository); it must never panic.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"nginx"}],"initContainers":[{"name":"i","image":"ghcr.io/a/b:1@sha256:b31bfb4d0213f254d361e0079deaaebefa4f82ba7aa76ef82e90b4935ad5b105"}]}}`))
	f.Add([]byte(`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"x"}]}}}}}}`))
	f.Add([]byte(`{"apiVersion":"tekton.dev/v1","kind":"Task","metadata":{"name":"t"},"spec":{"steps":[{"name":"s","image":"docker://ghcr.io/a"}]}}`))
	docs, err := manifest.Split("p.yaml", []byte(`apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: fuzz}
spec:
  validationFailureAction: Enforce
  rules:
  - name: pods
    match: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {"*": "?*"}}}}]}
    exclude: {any: [{resources: {kinds: [Pod], annotations: {"skip": "*"}}}]}
    verifyImages:
    - imageReferences: ["*"]
      skipImageReferences: ["*/skip/*"]
      attestors: [{entries: [{keys: {kms: "awskms:///k"}}]}]
    - imageReferences: ["ghcr.io/*"]
      mutateDigest: false
  - name: tasks
    match: {any: [{resources: {kinds: [Task]}}]}
    imageExtractors:
      Task: [{path: /spec/steps/*, value: image, key: name, jmesPath: "trim_prefix(@, 'docker://')"}]
    verifyImages: [{imageReferences: ["*"], mutateDigest: false}]
  - name: context
    match: {any: [{resources: {kinds: [Pod, Task]}}]}
    context:
    - name: owner
      variable: {jmesPath: request.object.metadata.labels.owner, default: nobody}
    - name: keys
      variable: {value: {nobody: "awskms:///k", "{{ owner }}": "{{ request.object.metadata.annotations.key || 'x' }}"}}
    preconditions:
      any:
      - {key: "{{ request.object.metadata.labels.verify }}", operator: NotEquals, value: "false"}
    verifyImages:
    - imageReferences: ["*"]
      mutateDigest: false
      repository: "{{ images.containers.c.registry || 'r' }}/{{ owner }}"
      attestors: [{entries: [{keys: {publicKeys: "{{ keys.\"{{ owner }}\" }}"}}]}]
`))
	if err != nil {
		f.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		f.Fatal(err)
	}
	e, err := New(Options{Policies: set})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil || obj == nil {
			return
		}
		_, _ = e.Evaluate(context.Background(), Request{Object: obj})
	})
}

func TestDecide(t *testing.T) {
	pol := func(name, fp, action string) string {
		return "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: " + name + "}\nspec:\n  validationFailureAction: " + action +
			"\n  failurePolicy: " + fp + "\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n" +
			"    verifyImages: [{imageReferences: [\"ghcr.io/*\"], mutateDigest: false, attestors: [{entries: [{keys: {kms: \"awskms:///k\"}}]}]}]\n"
	}
	digestRule := "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: digest}\nspec:\n  validationFailureAction: ACTION\n  rules:\n  - name: d\n" +
		"    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages: [{imageReferences: [\"docker.io/*\"], mutateDigest: false, required: false}]\n"
	tests := []struct {
		name, policies string
		allowed        bool
		deny, warn     string
	}{
		{"could not verify under Fail denies", pol("p", "Fail", "Enforce"), false, "p:\n  r: no verifier configured", ""},
		{"could not verify under Ignore warns", pol("p", "Ignore", "Enforce"), true, "", "policy p.r: no verifier configured"},
		{"Ignore of one policy does not excuse another", pol("a", "Ignore", "Enforce") + "---\n" + pol("b", "Fail", "Enforce"), false, "b:\n  r: no verifier configured", "policy a.r: no verifier configured"},
		{"Enforce failure denies", strings.Replace(digestRule, "ACTION", "Enforce", 1), false, "digest:\n  d: missing digest for docker.io/nginx:1", ""},
		{"Audit failure warns", strings.Replace(digestRule, "ACTION", "Audit", 1), true, "", "policy digest.d: missing digest for docker.io/nginx:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, tt.policies)
			resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", "ghcr.io/a:1", "nginx:1")})
			if err != nil {
				t.Fatal(err)
			}
			d := resp.Decide()
			if d.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v (%q)", d.Allowed, tt.allowed, d.Message)
			}
			if tt.deny != "" && !strings.Contains(d.Message, "resource Pod/default/p was blocked due to the following policies \n\n") || !strings.Contains(d.Message, tt.deny) {
				t.Errorf("message = %q, want it to contain %q", d.Message, tt.deny)
			}
			if tt.warn != "" && !contains(d.Warnings, tt.warn) {
				t.Errorf("warnings = %q, want %q", d.Warnings, tt.warn)
			}
		})
	}
}
