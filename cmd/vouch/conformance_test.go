package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/report"
)

// confCase is one file of testdata/conformance: policies, resources and what vouch must say.
type confCase struct {
	Description     string                       `json:"description"`
	Policies        string                       `json:"policies"`
	Resources       string                       `json:"resources"`
	NamespaceLabels map[string]map[string]string `json:"namespaceLabels,omitempty"`
	Operation       string                       `json:"operation,omitempty"`
	Registry        *confRegistry                `json:"registry,omitempty"`
	Keys            []string                     `json:"keys,omitempty"`
	PKI             *confPKI                     `json:"pki,omitempty"`
	Notary          *confNotary                  `json:"notary,omitempty"` // conformance_notary_setup_test.go
	Images          []confImage                  `json:"images,omitempty"`
	Expect          confExpect                   `json:"expect"`
}

type confExpect struct {
	ExitCode int          `json:"exitCode"`
	Errors   []string     `json:"errors,omitempty"`   // substrings of the load error (exit code 2)
	Warnings []string     `json:"warnings,omitempty"` // substrings of the warnings
	Results  []confResult `json:"results"`
	// Resources checks the output resources: image strings at JSON pointers and annotations.
	Resources []confResource `json:"resources,omitempty"`
	// Routes, when given, are the verifications the engine reports to its Observer, each
	// "<type> <route> <result>", sorted (checked through the engine API only).
	Routes []string `json:"routes,omitempty"`
}

type confResource struct {
	Resource    string            `json:"resource"`              // Kind/namespace/name or Kind/name
	Images      map[string]string `json:"images,omitempty"`      // JSON pointer -> image string
	Annotations map[string]string `json:"annotations,omitempty"` // exact values; "" means absent
}

type confResult struct {
	Policy          string            `json:"policy"`
	Rule            string            `json:"rule"`
	Resource        string            `json:"resource"` // Kind/namespace/name or Kind/name
	Result          string            `json:"result"`
	Message         string            `json:"message,omitempty"`         // exact, when given
	MessageContains string            `json:"messageContains,omitempty"` // substring, when given
	Images          map[string]string `json:"images,omitempty"`
}

var vouchBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vouch-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Registries other than the cases' own (on 127.0.0.1, never proxied) are unreachable:
	// every request to them goes to a proxy port that refuses connections.
	for k, v := range map[string]string{"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "", "https_proxy": "", "http_proxy": "", "no_proxy": ""} {
		os.Setenv(k, v)
	}
	vouchBinary = filepath.Join(dir, "vouch")
	build := exec.Command("go", "build", "-o", vouchBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building vouch:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func loadCases(t *testing.T) map[string]*confCase {
	t.Helper()
	files, err := filepath.Glob("../../testdata/conformance/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]*confCase{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := &confCase{}
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cases[strings.TrimSuffix(filepath.Base(f), ".yaml")] = c
	}
	return cases
}

// TestConformance runs every case through the engine API and through the built CLI binary;
// both must give exactly the expected results.
func TestConformance(t *testing.T) {
	cases := loadCases(t)
	if len(cases) < 40 {
		t.Errorf("only %d conformance cases; the corpus must hold at least 40", len(cases))
	}
	schema := compileSchema(t)
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		raw := cases[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if raw.Description == "" {
				t.Error("case has no description")
			}
			c := expandCase(t, raw, setUp(t, raw))
			t.Run("engine", func(t *testing.T) { runEngineCase(t, c) })
			t.Run("cli", func(t *testing.T) { runCLICase(t, c, schema) })
		})
	}
}

func runEngineCase(t *testing.T, c *confCase) {
	pdocs, err := manifest.Split("policies.yaml", []byte(c.Policies))
	var set *policy.Set
	var warnings []string
	if err == nil {
		set, warnings, err = policy.LoadDocuments(pdocs)
	}
	if err != nil {
		checkLoadError(t, c, err.Error())
		return
	}
	rdocs, err := manifest.Split("resources.yaml", []byte(c.Resources))
	if err != nil {
		checkLoadError(t, c, err.Error())
		return
	}
	objs, err := manifest.Objects(rdocs)
	if err != nil {
		checkLoadError(t, c, err.Error())
		return
	}
	if c.Expect.ExitCode == exitInvalid {
		t.Fatalf("loading succeeded, want exit code 2 with %q", c.Expect.Errors)
	}
	nsLabels := manifest.NamespaceLabels(objs)
	for ns, l := range c.NamespaceLabels {
		nsLabels[ns] = l
	}
	routes := &routeRecorder{}
	loaders, err := resourceLoaders(objs)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := newEngine(set, registry.Options{}, engineExtras{observer: routes, loaders: loaders})
	if err != nil {
		t.Fatal(err)
	}
	defer routes.check(t, c.Expect.Routes)
	rep := report.New()
	for _, o := range objs {
		ns, _ := o.Value["metadata"].(map[string]any)["namespace"].(string)
		resp, err := eng.Evaluate(context.Background(), engine.Request{Object: o.Value, Operation: v1.AdmissionOperation(c.Operation), NamespaceLabels: nsLabels[ns]})
		if err != nil {
			t.Fatal(err)
		}
		warnings = append(warnings, resp.Warnings...)
		rep.Add(resp)
	}
	checkWarnings(t, c, strings.Join(warnings, "\n"))
	checkReport(t, c, rep)
	checkResources(t, c, rep)
	wantExit := exitOK
	if rep.Failed() {
		wantExit = exitFailed
	}
	if wantExit != c.Expect.ExitCode {
		t.Errorf("exit code would be %d, want %d", wantExit, c.Expect.ExitCode)
	}
}

func runCLICase(t *testing.T, c *confCase, schema *jsonschema.Schema) {
	dir := t.TempDir()
	pol, res := filepath.Join(dir, "policies.yaml"), filepath.Join(dir, "resources.yaml")
	for path, body := range map[string]string{pol: c.Policies, res: c.Resources} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"apply", pol, "--resource", res, "-o", "json"}
	for ns, l := range c.NamespaceLabels {
		var kv []string
		for k, v := range l {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		args = append(args, "--namespace-labels", ns+":"+strings.Join(kv, ","))
	}
	if c.Operation != "" {
		args = append(args, "--operation", c.Operation)
	}
	cmd := exec.Command(vouchBinary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != c.Expect.ExitCode {
		t.Fatalf("exit code %d, want %d\nstderr:\n%s", code, c.Expect.ExitCode, stderr.String())
	}
	if code == exitInvalid {
		checkLoadError(t, c, stderr.String())
		return
	}
	checkWarnings(t, c, stderr.String())
	var doc any
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if err := schema.Validate(doc); err != nil {
		t.Errorf("output violates docs/apply-output.schema.json: %v", err)
	}
	rep := &report.Report{}
	if err := json.Unmarshal(stdout.Bytes(), rep); err != nil {
		t.Fatal(err)
	}
	checkReport(t, c, rep)
	checkResources(t, c, rep)
	if n := len(rep.Resources); n != countDocs(t, c.Resources) {
		t.Errorf("output lists %d resources, want every input resource (%d)", n, countDocs(t, c.Resources))
	}
}

func countDocs(t *testing.T, y string) int {
	docs, err := manifest.Split("resources.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return len(docs)
}

func checkLoadError(t *testing.T, c *confCase, msg string) {
	t.Helper()
	if c.Expect.ExitCode != exitInvalid {
		t.Fatalf("unexpected load error: %s", msg)
	}
	if len(c.Expect.Errors) == 0 {
		t.Fatal("case expects exit code 2 but names no error substrings")
	}
	for _, want := range c.Expect.Errors {
		if !strings.Contains(msg, want) {
			t.Errorf("error output lacks %q:\n%s", want, msg)
		}
	}
}

func checkWarnings(t *testing.T, c *confCase, got string) {
	t.Helper()
	for _, want := range c.Expect.Warnings {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
}

func resourceKey(r report.ResourceRef) string {
	if r.Namespace != "" {
		return r.Kind + "/" + r.Namespace + "/" + r.Name
	}
	return r.Kind + "/" + r.Name
}

// checkReport compares results as a set keyed by (resource, policy, rule).
func checkReport(t *testing.T, c *confCase, rep *report.Report) {
	t.Helper()
	key := func(res, pol, rule string) string { return res + " " + pol + " " + rule }
	got := map[string]report.Result{}
	for _, r := range rep.Results {
		k := key(resourceKey(r.Resources[0]), r.Policy, r.Rule)
		if _, dup := got[k]; dup {
			t.Errorf("two results for %s", k)
		}
		got[k] = r
	}
	var want report.Summary
	for _, w := range c.Expect.Results {
		k := key(w.Resource, w.Policy, w.Rule)
		g, ok := got[k]
		if !ok {
			t.Errorf("missing result %s (want %s)", k, w.Result)
			continue
		}
		delete(got, k)
		if g.Result != w.Result {
			t.Errorf("%s: result %s, want %s (message %q)", k, g.Result, w.Result, g.Message)
		}
		if w.Message != "" && g.Message != w.Message {
			t.Errorf("%s: message\n  %q\nwant\n  %q", k, g.Message, w.Message)
		}
		if w.MessageContains != "" && !strings.Contains(g.Message, w.MessageContains) {
			t.Errorf("%s: message %q lacks %q", k, g.Message, w.MessageContains)
		}
		if w.Images != nil {
			if diff := cmp.Diff(w.Images, g.Images); diff != "" {
				t.Errorf("%s: images (-want +got):\n%s", k, diff)
			}
		}
		switch w.Result {
		case "pass":
			want.Pass++
		case "fail":
			want.Fail++
		case "warn":
			want.Warn++
		case "error":
			want.Error++
		case "skip":
			want.Skip++
		}
	}
	for k, g := range got {
		t.Errorf("unexpected result %s: %s %q", k, g.Result, g.Message)
	}
	if len(got) == 0 && rep.Summary != want {
		t.Errorf("summary %+v, want %+v", rep.Summary, want)
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../../docs/apply-output.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("apply-output.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("apply-output.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expandCase returns a copy of the case with its placeholders expanded.
func expandCase(t *testing.T, c *confCase, e *env) *confCase {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		t.Fatal(err)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return e.expand(t, x)
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, val := range x {
				out[e.expand(t, k)] = walk(val)
			}
			return out
		}
		return v
	}
	data, err = json.Marshal(walk(generic))
	if err != nil {
		t.Fatal(err)
	}
	out := &confCase{}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkResources compares the output resources with the case's expectations.
func checkResources(t *testing.T, c *confCase, rep *report.Report) {
	t.Helper()
	for _, want := range c.Expect.Resources {
		var obj map[string]any
		for _, r := range rep.Resources {
			if resourceKey(refOf(r)) == want.Resource {
				obj = r
			}
		}
		if obj == nil {
			t.Errorf("no output resource %s", want.Resource)
			continue
		}
		for pointer, img := range want.Images {
			if got := atPointer(obj, pointer); got != img {
				t.Errorf("%s %s = %v, want %q", want.Resource, pointer, got, img)
			}
		}
		meta, _ := obj["metadata"].(map[string]any)
		ann, _ := meta["annotations"].(map[string]any)
		for k, v := range want.Annotations {
			got, ok := ann[k]
			if v == "" && ok {
				t.Errorf("%s: annotation %s = %v, want none", want.Resource, k, got)
			} else if v != "" && got != v {
				t.Errorf("%s: annotation %s =\n  %v\nwant\n  %s", want.Resource, k, got, v)
			}
		}
	}
}

func refOf(obj map[string]any) report.ResourceRef {
	meta, _ := obj["metadata"].(map[string]any)
	ref := report.ResourceRef{}
	ref.Kind, _ = obj["kind"].(string)
	ref.Namespace, _ = meta["namespace"].(string)
	ref.Name, _ = meta["name"].(string)
	return ref
}

func atPointer(v any, pointer string) any {
	for _, seg := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			v = x[seg]
		case []any:
			var i int
			if _, err := fmt.Sscan(seg, &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
