package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBackgroundScanFlagsValidated: --background-scan-interval below 1s, without a cluster, or
// with --policy-reports=false is bad usage (exit 2) naming the flag, found before anything is
// asked of the cluster.
func TestBackgroundScanFlagsValidated(t *testing.T) {
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	dir := writeFiles(t, map[string]string{"p.yaml": cliPolicy, "kubeconfig": kubeconfig})
	p, kc := filepath.Join(dir, "p.yaml"), filepath.Join(dir, "kubeconfig")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--tls-self-signed", "--policies", p, "--kubeconfig", kc, "--background-scan-interval", "500ms"}, "--background-scan-interval must be at least 1s"},
		{[]string{"serve", "--tls-self-signed", "--policies", p, "--background-scan-interval", "1h"}, "--background-scan-interval needs a cluster"},
		{[]string{"serve", "--tls-self-signed", "--policies", p, "--kubeconfig", kc, "--background-scan-interval", "1h", "--policy-reports=false"}, "--background-scan-interval needs --policy-reports"},
	} {
		code, _, stderr := runCLI(tt.args...)
		if code != exitInvalid || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}
