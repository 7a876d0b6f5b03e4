package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const cliPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-digest}
spec:
  validationFailureAction: Enforce
  rules:
  - name: check-digest
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false, required: false}]
`

const cliPods = `apiVersion: v1
kind: Pod
metadata: {name: no-digest, namespace: default}
spec: {containers: [{name: app, image: "nginx:latest"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: with-digest, namespace: default}
spec: {containers: [{name: app, image: "nginx@sha256:859ab6768a6f26a79bc42b231664111317d095a4f04e4b6fe79ce37b3d199097"}]}
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestApplyTable(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": cliPolicy, "r.yaml": cliPods})
	code, out, _ := runCLI("apply", filepath.Join(dir, "p.yaml"), "--resource", filepath.Join(dir, "r.yaml"))
	if code != exitFailed {
		t.Errorf("exit code %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"POLICY          RULE          RESOURCE                 RESULT  MESSAGE",
		"require-digest  check-digest  Pod/default/no-digest    fail    missing digest for docker.io/nginx:latest",
		"require-digest  check-digest  Pod/default/with-digest  pass    image verified",
		"",
		"pass: 1, fail: 1, warn: 0, error: 0, skip: 0",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes written to a non-terminal")
	}
}

func TestApplyYAMLPrintsResourcesAsDocuments(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": cliPolicy, "r.yaml": cliPods})
	code, out, _ := runCLI("apply", filepath.Join(dir, "p.yaml"), "-r", filepath.Join(dir, "r.yaml"), "-o", "yaml")
	if code != exitFailed {
		t.Errorf("exit code %d, want 1", code)
	}
	docs := strings.Split(out, "---\n")
	if len(docs) != 3 {
		t.Fatalf("want a report document and two resource documents, got %d:\n%s", len(docs), out)
	}
	var head struct {
		Summary struct{ Pass, Fail int }
	}
	if err := yaml.Unmarshal([]byte(docs[0]), &head); err != nil || head.Summary.Pass != 1 || head.Summary.Fail != 1 {
		t.Errorf("report document: %+v, %v", head, err)
	}
	var pod struct {
		Kind     string
		Metadata struct{ Name string }
	}
	if err := yaml.Unmarshal([]byte(docs[1]), &pod); err != nil || pod.Kind != "Pod" || pod.Metadata.Name != "no-digest" {
		t.Errorf("resource document: %+v, %v", pod, err)
	}
}

func TestApplyUsageAndInputErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"p.yaml":    cliPolicy,
		"r.yaml":    cliPods,
		"bad.yaml":  strings.Replace(cliPolicy, "mutateDigest: false", "mutateDigest: nope", 1),
		"nons.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n",
	})
	p, r := filepath.Join(dir, "p.yaml"), filepath.Join(dir, "r.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no resource", []string{"apply", p}, "at least one --resource is required"},
		{"no policy", []string{"apply", "--resource", r}, "requires at least 1 arg"},
		{"bad output", []string{"apply", p, "-r", r, "-o", "xml"}, "--output must be table, json or yaml"},
		{"bad operation", []string{"apply", p, "-r", r, "--operation", "PATCH"}, "--operation must be"},
		{"unknown flag", []string{"apply", p, "-r", r, "--frobnicate"}, "unknown flag: --frobnicate"},
		{"unknown command", []string{"verify"}, "unknown command"},
		{"missing policy file", []string{"apply", filepath.Join(dir, "missing.yaml"), "-r", r}, "missing.yaml: reading"},
		{"invalid policy", []string{"apply", filepath.Join(dir, "bad.yaml"), "-r", r}, "bad.yaml (document 1, line 1): spec.rules[0].verifyImages[0].mutateDigest: invalid type: got string, want boolean"},
		{"invalid resource", []string{"apply", p, "-r", filepath.Join(dir, "nons.yaml")}, "nons.yaml (document 1, line 1): metadata.name: Required value"},
		{"bad namespace labels", []string{"apply", p, "-r", r, "--namespace-labels", "novalue"}, "want NAMESPACE:key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(tt.args...)
			if code != exitInvalid {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
		})
	}
}

func TestApplyPassExitsZero(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": cliPolicy, "r.yaml": strings.Split(cliPods, "---\n")[1]})
	if code, out, stderr := runCLI("apply", filepath.Join(dir, "p.yaml"), "-r", filepath.Join(dir, "r.yaml"), "-o", "json"); code != exitOK {
		t.Errorf("exit code %d, want 0\n%s\n%s", code, out, stderr)
	}
}

func TestDemoRuns(t *testing.T) {
	code, out, stderr := runCLI("demo")
	if code != exitOK {
		t.Fatalf("demo exit code %d: %s", code, stderr)
	}
	for _, want := range []string{
		"✓ Pod/demo/signed is ADMITTED: verified image signatures for ",
		"/demo/app:signed@sha256:",
		`kyverno.io/verify-images: {"`,
		"✗ Pod/demo/unsigned with image ",
		"is REJECTED:",
		"verify-container-images/check-images: failed to verify image ",
		"/demo/app:unsigned: .attestors[0].entries[0].keys: no signatures found",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
