//go:build integration

package main

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
)

// TestIntegrationBundleRoutes signs one image per layout with the real CLIs on the
// distribution registry (no referrers API: every referrer lands in the sha256-<hex> tag
// index) — cosign v2's .sig tag, cosign v2's experimental OCI 1.1 referrer
// (--registry-referrers-mode=oci-1-1), cosign v3's Sigstore bundle with annotations — and
// checks that one type: Cosign policy verifies all of them, reporting where each signature
// was found, that type: SigstoreBundle reads the bundle only, and that required annotations
// are read from the bundle's statement.
func TestIntegrationBundleRoutes(t *testing.T) {
	t.Parallel()
	e, cosign2, cosign3, host := newToolEnv(t), toolPath(t, "cosign"), toolPath(t, "cosign3"), startDistribution(t)
	key := e.generateKeyPair(t, cosign2, "routes")
	legacy, oci11, bundle := pushRandom(t, host, "routes/legacy:1"), pushRandom(t, host, "routes/oci11:1"), pushRandom(t, host, "routes/bundle:1")

	e.mustRun(t, "", nil, cosign2, "sign", "--key", key.private, "--tlog-upload=false", "-y", host+"/routes/legacy@"+legacy)
	e.mustRun(t, "", []string{"COSIGN_EXPERIMENTAL=1"}, cosign2, "sign", "--key", key.private, "--tlog-upload=false",
		"--registry-referrers-mode=oci-1-1", "-y", host+"/routes/oci11@"+oci11)
	signingConfig := filepath.Join(e.dir, "routes-signing-config.json")
	e.mustRun(t, "", nil, cosign3, "signing-config", "create", "--out", signingConfig)
	e.mustRun(t, "", nil, cosign3, "sign", "--key", key.private, "--signing-config", signingConfig, "--trusted-root", e.trustedRoot,
		"-y", "-a", "env=prod", host+"/routes/bundle@"+bundle)
	checkV3BundleLayout(t, host+"/routes/bundle", bundle)

	images := []string{host + "/routes/legacy:1", host + "/routes/oci11:1", host + "/routes/bundle:1"}
	pods := make([]string, len(images))
	for i, im := range images {
		pods[i] = strings.Replace(podYAML(im), "name: app, namespace", "name: app-"+string(rune('a'+i))+", namespace", 1)
	}
	tests := []struct {
		name   string
		policy keyPolicy
		want   []string // per image: pass or fail
		routes []string
	}{
		{"type Cosign reads every layout", keyPolicy{keys: []string{key.pem}}, []string{"pass", "pass", "pass"},
			[]string{"Cosign legacy-tag pass", "Cosign referrers-tag-schema pass", "Cosign sigstore-bundle pass"}},
		{"type SigstoreBundle reads the bundle", keyPolicy{keys: []string{key.pem}, typ: "SigstoreBundle"}, []string{"fail", "fail", "pass"},
			[]string{"SigstoreBundle sigstore-bundle fail", "SigstoreBundle sigstore-bundle fail", "SigstoreBundle sigstore-bundle pass"}},
		{"annotations from the bundle's statement", keyPolicy{keys: []string{key.pem}, annotations: map[string]string{"env": "prod"}}, []string{"fail", "fail", "pass"},
			[]string{"Cosign legacy-tag fail", "Cosign legacy-tag fail", "Cosign sigstore-bundle pass"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			docs, err := manifest.Split("policy.yaml", []byte(tt.policy.yaml()))
			if err != nil {
				t.Fatal(err)
			}
			set, _, err := policy.LoadDocuments(docs)
			if err != nil {
				t.Fatal(err)
			}
			rec := &routeRecorder{}
			eng, err := newEngine(set, registry.Options{}, engineExtras{observer: rec})
			if err != nil {
				t.Fatal(err)
			}
			for i, pod := range pods {
				rdocs, err := manifest.Split("pod.yaml", []byte(pod))
				if err != nil {
					t.Fatal(err)
				}
				objs, err := manifest.Objects(rdocs)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := eng.Evaluate(context.Background(), engine.Request{Object: objs[0].Value})
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.Results) != 1 || string(resp.Results[0].Status) != tt.want[i] {
					t.Errorf("%s: results %+v, want %s", images[i], resp.Results, tt.want[i])
				}
			}
			sort.Strings(tt.routes)
			rec.check(t, tt.routes)
			// The CLI agrees on the bundle image.
			rep := evaluateWithCLI(t, tt.policy.yaml(), pods[2])
			if len(rep.Results) != 1 || rep.Results[0].Result != tt.want[2] {
				t.Errorf("vouch apply on %s: %+v, want %s", images[2], rep.Results, tt.want[2])
			}
		})
	}
}
