//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/report"
)

// TestIntegrationRegistryCredentials: a private distribution registry (htpasswd, bcrypt) holds
// an image signed by the cosign CLI, which authenticates with the docker config in its HOME.
// The vouch binary verifies it with the same docker config ($DOCKER_CONFIG, the default
// helper) or with --registry-credentials; wrong or absent credentials are "could not verify"
// errors saying authentication failed — when resolving the tag and when fetching the signatures
// of an image given by digest — never "no signatures found". The password appears in none of
// vouch's output.
func TestIntegrationRegistryCredentials(t *testing.T) {
	t.Parallel()
	reg := startPrivateDistribution(t, "vouch-ci", "canary-htpasswd-")
	user, password, host, dockerConfig := reg.User, reg.Password, reg.Host, reg.DockerConfig
	dir := t.TempDir()
	write := func(path string, b []byte) string {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// The image, pushed with the credentials; anonymous reads are refused.
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host + "/private/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatalf("pushing %s: %v", tag, err)
	}
	if _, err := remote.Head(tag, remote.WithContext(ctx)); err == nil {
		t.Fatal("the registry answers anonymous requests: the test would prove nothing")
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	digest := d.String()

	// Signed by the cosign CLI, authenticated by the docker config in its HOME.
	env := newToolEnv(t)
	write(filepath.Join(env.home, ".docker", "config.json"), dockerConfig(password))
	cosign := toolPath(t, "cosign")
	key := env.generateKeyPair(t, cosign, "signer")
	env.mustRun(t, "", nil, cosign, "sign", "--key", key.private, "--tlog-upload=false", "-y", host+"/private/app@"+digest)

	pol := write(filepath.Join(dir, "policy.yaml"), []byte(keyPolicy{keys: []string{key.pem}}.yaml()))
	byTag := write(filepath.Join(dir, "tag.yaml"), []byte(podYAML(tag.String())))
	byDigest := write(filepath.Join(dir, "digest.yaml"), []byte(podYAML(host+"/private/app@"+digest)))
	good := write(filepath.Join(dir, "good.json"), dockerConfig(password))
	bad := write(filepath.Join(dir, "bad.json"), dockerConfig("not-the-password"))
	cosignDocker := filepath.Join(env.home, ".docker")
	empty := filepath.Join(dir, "no-docker-config")

	var outputs []string
	for _, tc := range []struct {
		name         string
		dockerConfig string
		resource     string
		args         []string
		result       string
		message      string
	}{
		{"the docker config cosign used", cosignDocker, byTag, nil, "pass", "verified image signatures for " + tag.String()},
		{"--registry-credentials", empty, byTag, []string{"--registry-credentials", good}, "pass", "verified image signatures for " + tag.String()},
		{"--registry-credentials before the docker config", cosignDocker, byTag, []string{"--registry-credentials", bad}, "error",
			"could not verify image " + tag.String() + ": registry authentication failed: resolving " + tag.String()},
		{"wrong password, resolving the tag", empty, byTag, []string{"--registry-credentials", bad}, "error",
			"could not verify image " + tag.String() + ": registry authentication failed: resolving " + tag.String()},
		{"no credentials, resolving the tag", empty, byTag, nil, "error",
			"could not verify image " + tag.String() + ": registry authentication failed"},
		{"wrong password, fetching the signatures", empty, byDigest, []string{"--registry-credentials", bad}, "error",
			"could not verify image " + host + "/private/app@" + digest + ": .attestors[0].entries[0].keys: registry authentication failed: fetching signatures"},
		{"no credentials, fetching the signatures", empty, byDigest, nil, "error",
			"could not verify image " + host + "/private/app@" + digest + ": .attestors[0].entries[0].keys: registry authentication failed: fetching signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"apply", pol, "--resource", tc.resource, "-o", "json"}, tc.args...)
			cmd := exec.Command(vouchBinary, args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "DOCKER_CONFIG=" + tc.dockerConfig,
				"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY="}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			outputs = append(outputs, stdout.String(), stderr.String())
			var ee *exec.ExitError
			code := 0
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			rep := &report.Report{}
			if err := json.Unmarshal(stdout.Bytes(), rep); err != nil {
				t.Fatalf("vouch apply exited %d without a JSON report (%v):\n%s\n%s", code, err, stdout.String(), stderr.String())
			}
			if len(rep.Results) != 1 {
				t.Fatalf("results: %+v", rep.Results)
			}
			r := rep.Results[0]
			wantCode := exitOK
			if tc.result != "pass" {
				wantCode = exitFailed
			}
			if r.Result != tc.result || !strings.Contains(r.Message, tc.message) || code != wantCode {
				t.Errorf("exit %d, %s %q\nwant exit %d, %s with %q", code, r.Result, r.Message, wantCode, tc.result, tc.message)
			}
			if strings.Contains(r.Message, "no signatures") || strings.Contains(r.Message, "failed to verify") {
				t.Errorf("an authentication failure reads as a verification failure: %q", r.Message)
			}
		})
	}
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	for _, out := range outputs {
		if strings.Contains(out, password) || strings.Contains(out, basic) {
			t.Errorf("vouch printed the password:\n%s", out)
		}
	}
}
