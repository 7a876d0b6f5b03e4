package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
)

// TestApplyTimeoutBoundsHostileRegistry (landscape §4.4 group 10): `vouch apply --timeout`
// bounds every registry call: an image on a registry that never answers is an error result
// ("could not verify image …") soon after the timeout, not a hang.
func TestApplyTimeoutBoundsHostileRegistry(t *testing.T) {
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	}))
	t.Cleanup(silent.Close)
	host := strings.TrimPrefix(silent.URL, "http://")
	key, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	var policy strings.Builder
	policy.WriteString("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: signed}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - keys:\n            rekor: {ignoreTlog: true}\n            ctlog: {ignoreSCT: true}\n            publicKeys: |-\n")
	for _, l := range strings.Split(strings.TrimSpace(key.PEM), "\n") {
		policy.WriteString("              " + l + "\n")
	}
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec: {containers: [{name: app, image: \"" + host + "/app:v1\"}]}\n"
	dir := writeFiles(t, map[string]string{"p.yaml": policy.String(), "r.yaml": pod})
	start := time.Now()
	code, out, stderr := runCLI("apply", filepath.Join(dir, "p.yaml"), "-r", filepath.Join(dir, "r.yaml"), "--timeout", "700ms", "-o", "json",
		"--registryCredentialHelpers", "")
	elapsed := time.Since(start)
	if code != exitFailed {
		t.Fatalf("exit code %d, want 1\n%s\n%s", code, out, stderr)
	}
	var rep struct {
		Results []struct{ Result, Message string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Results) != 1 {
		t.Fatalf("output %s: %v", out, err)
	}
	if r := rep.Results[0]; r.Result != "error" || !strings.HasPrefix(r.Message, "could not verify image "+host+"/app:v1: ") {
		t.Errorf("result %s %q, want error \"could not verify image …\"", r.Result, r.Message)
	}
	if elapsed > 3*time.Second {
		t.Errorf("apply took %v with --timeout 700ms", elapsed)
	}
}

// TestRegistryFlagsValidated: an invalid --registry-token-realms entry, a non-positive
// --registry-max-in-flight or a --registry-circuit-cooldown outside 1s–10m is bad usage (exit 2)
// naming the flag.
func TestRegistryFlagsValidated(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": cliPolicy, "r.yaml": cliPods})
	p, r := filepath.Join(dir, "p.yaml"), filepath.Join(dir, "r.yaml")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", p, "-r", r, "--registry-token-realms", "https://auth.example.com/token"}, `--registry-token-realms: invalid registry options: token realm "https://auth.example.com/token": not a host`},
		{[]string{"apply", p, "-r", r, "--registry-token-realms", "auth.example.com,*"}, `token realm "*": a top-level "*" would match any host`},
		{[]string{"serve", "--tls-self-signed", "--policies", p, "--registry-max-in-flight", "0"}, "--registry-max-in-flight must be positive"},
		{[]string{"serve", "--tls-self-signed", "--policies", p, "--registry-circuit-cooldown", "100ms"}, "--registry-circuit-cooldown must be between 1s and 10m"},
		{[]string{"serve", "--tls-self-signed", "--policies", p, "--registry-circuit-cooldown", "1h"}, "--registry-circuit-cooldown must be between 1s and 10m"},
		{[]string{"serve", "--tls-self-signed", "--policies", p, "--registry-token-realms", "a.*.b:99999"}, `token realm "a.*.b:99999": invalid port`},
	} {
		code, _, stderr := runCLI(tt.args...)
		if code != exitInvalid || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}
