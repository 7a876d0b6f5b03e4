package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/report"
)

// TestKeyVerificationTalksOnlyToTheRegistry: with rekor.ignoreTlog and ctlog.ignoreSCT, a
// keyed verification makes no network call beyond the registry. Every other HTTP(S) request
// of the vouch process (Rekor, TUF, CT logs, Fulcio) would go through the proxy, which records
// it; loopback traffic (the registry) is never proxied.
func TestKeyVerificationTalksOnlyToTheRegistry(t *testing.T) {
	var registryRequests, proxied atomic.Int64
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			registryRequests.Add(1)
			h.ServeHTTP(w, r)
		})
	})
	defer reg.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		t.Logf("proxied: %s %s", r.Method, r.Host)
		http.Error(w, "no network", http.StatusForbidden)
	}))
	defer proxy.Close()

	ctx := context.Background()
	key, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := reg.Push(ctx, "app:signed")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Sign(ctx, "app", digest, key.Private, nil, ""); err != nil {
		t.Fatal(err)
	}
	pol := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: keyed}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      attestors:
      - entries:
        - keys:
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
            publicKeys: |-
              ` + indentLines(key.PEM, "              ") + "\n"
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec: {containers: [{name: a, image: " + reg.Host + "/app:signed}]}\n"
	home := t.TempDir()
	apply := func(pod string) (*bytes.Buffer, error) {
		dir := writeFiles(t, map[string]string{"p.yaml": pol, "r.yaml": pod})
		cmd := exec.Command(vouchBinary, "apply", filepath.Join(dir, "p.yaml"), "-r", filepath.Join(dir, "r.yaml"), "-o", "json")
		cmd.Env = append(os.Environ(), "HOME="+home, "TUF_ROOT="+home+"/tuf",
			"HTTPS_PROXY="+proxy.URL, "HTTP_PROXY="+proxy.URL, "https_proxy="+proxy.URL, "http_proxy="+proxy.URL, "NO_PROXY=", "no_proxy=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			t.Logf("stderr: %s", stderr.String())
		}
		return &stdout, err
	}
	stdout, err := apply(pod)
	if err != nil {
		t.Fatalf("vouch apply: %v", err)
	}
	var rep report.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Result != "pass" {
		t.Fatalf("results = %+v", rep.Results)
	}
	if !strings.Contains(stdout.String(), reg.Host+"/app:signed@"+digest) {
		t.Error("the image was not pinned to its digest")
	}
	if n := proxied.Load(); n != 0 {
		t.Errorf("%d requests went beyond the registry", n)
	}
	if registryRequests.Load() == 0 {
		t.Error("the registry was never asked: the test proves nothing")
	}
	// Control: the proxy does see what leaves the machine (an image on a public registry).
	if _, err := apply(strings.ReplaceAll(pod, reg.Host+"/app:signed", "ghcr.io/acme/app:1")); err == nil {
		t.Error("verifying an image on an unreachable registry succeeded")
	}
	if proxied.Load() == 0 {
		t.Error("the control request did not reach the proxy: the test proves nothing")
	}
}
