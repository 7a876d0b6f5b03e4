//go:build integration

package main

// The harness of the integration tests (build tag integration; `make test` runs them): the real
// tools users run — the distribution registry, the cosign v2 and v3 and notation CLIs, sigstore's
// timestamp authority — built pinned by hack/tools.sh into $VOUCH_TOOLS_DIR/bin (`make tools`).
// A missing tool fails the test, it is never skipped. Everything listens on and talks to
// 127.0.0.1 only.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// toolsDirEnv names the folder hack/tools.sh builds into (the Makefile passes
// $(CURDIR)/.cache/tools); unset means that default, seen from this package.
const toolsDirEnv = "VOUCH_TOOLS_DIR"

// toolTimeout bounds every command a test runs.
const toolTimeout = time.Minute

// emptyTrustedRoot is a Sigstore trusted root with no authorities, logs or timestamp
// authorities. Given with --trusted-root it stops cosign from fetching the public-good trusted
// root through TUF; key verification with --insecure-ignore-tlog needs nothing from it.
const emptyTrustedRoot = `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`

// toolPath returns the path of a tool built by `make tools`, failing the test when it is missing.
func toolPath(t *testing.T, tool string) string {
	t.Helper()
	dir := os.Getenv(toolsDirEnv)
	if dir == "" {
		dir = filepath.Join("..", "..", ".cache", "tools")
	}
	p, err := filepath.Abs(filepath.Join(dir, "bin", tool))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("tool %s is missing (%s=%q, looked for %s): run make tools", tool, toolsDirEnv, os.Getenv(toolsDirEnv), p)
	}
	return p
}

// distributionConfig is the registry's configuration: filesystem storage, plain HTTP on
// loopback, no auth, no access log.
const distributionConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: vouch-integration-test
`

// distributionAuth is appended to distributionConfig for HTTP basic auth against an htpasswd
// file (bcrypt entries): every /v2/ request then needs credentials.
const distributionAuth = `auth:
  htpasswd:
    realm: vouch-integration-test
    path: %s
`

// startDistribution starts the distribution registry on 127.0.0.1 at a free port, waits until
// /v2/ answers and stops it when the test ends. It returns the registry's host:port.
func startDistribution(t *testing.T) string {
	t.Helper()
	host, _ := startStoppableDistribution(t)
	return host
}

// startStoppableDistribution is startDistribution that also returns a function stopping the
// registry before the test ends (a registry outage); calling it again does nothing.
func startStoppableDistribution(t *testing.T) (host string, stop func()) {
	t.Helper()
	bin := toolPath(t, "registry")
	var errs []error
	for range 3 { // a free port can be taken between probing it and the registry binding it
		host, stop, err := tryStartDistribution(t, bin, "")
		if err == nil {
			return host, stop
		}
		errs = append(errs, err)
	}
	t.Fatalf("starting the distribution registry: %v", errors.Join(errs...))
	return "", nil
}

// startAuthDistribution is startDistribution requiring the credentials of an htpasswd file.
func startAuthDistribution(t *testing.T, htpasswd string) string {
	t.Helper()
	bin := toolPath(t, "registry")
	var errs []error
	for range 3 {
		host, _, err := tryStartDistribution(t, bin, htpasswd)
		if err == nil {
			return host
		}
		errs = append(errs, err)
	}
	t.Fatalf("starting the distribution registry with htpasswd auth: %v", errors.Join(errs...))
	return ""
}

// privateRegistry is a distribution registry requiring one user's password (htpasswd, bcrypt).
type privateRegistry struct {
	Host, User, Password string
}

// startPrivateDistribution starts a registry for user with a random canary password starting
// with prefix, and stops it when the test ends.
func startPrivateDistribution(t *testing.T, user, prefix string) *privateRegistry {
	t.Helper()
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	r := &privateRegistry{User: user, Password: prefix + hex.EncodeToString(buf)}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Host = startAuthDistribution(t, htpasswd)
	return r
}

// DockerConfig is a docker config.json authenticating the user with pass at the registry.
func (r *privateRegistry) DockerConfig(pass string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(r.User + ":" + pass))
	return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, r.Host, auth)
}

// tryStartDistribution starts the registry once, at a free port with storage of its own;
// htpasswd, when not empty, is the path of the htpasswd file it must authenticate with.
func tryStartDistribution(t *testing.T, bin, htpasswd string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	host := l.Addr().String()
	l.Close()
	return startDistributionAt(t, bin, filepath.Join(t.TempDir(), "storage"), host, htpasswd)
}

// startDistributionAt starts the registry on host (127.0.0.1:port) with its storage in the
// given folder, waits until /v2/ answers and stops it when the test ends (the kernel kills it
// if the test binary dies). It returns host and a function stopping it sooner.
func startDistributionAt(t *testing.T, bin, storage, host, htpasswd string) (string, func(), error) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	config := fmt.Sprintf(distributionConfig, storage, host)
	if htpasswd != "" {
		config += fmt.Sprintf(distributionAuth, htpasswd)
	}
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "serve", cfg)
	// OTEL_TRACES_EXPORTER=none: distribution would otherwise export traces over OTLP.
	cmd.Env = []string{"HOME=" + dir, "OTEL_TRACES_EXPORTER=none"}
	setParentDeathSignal(cmd)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || (htpasswd != "" && resp.StatusCode == http.StatusUnauthorized) {
				break
			}
		}
		select {
		case err := <-exited:
			return "", nil, fmt.Errorf("registry on %s exited (%v):\n%s", host, err, logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("registry on %s: /v2/ did not answer 200 within 10s:\n%s", host, logs)
		}
	}
	t.Logf("distribution registry on %s (pid %d) ready in %v", host, cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("registry log (last lines):\n%s", lastLines(logs.String(), 20))
		}
	})
	return host, stop, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pushRandom pushes a small random image as host/repoTag and returns its digest.
func pushRandom(t *testing.T, host, repoTag string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// toolEnv runs the signing tools as a user would, offline: a private HOME (cosign keeps its TUF
// cache in ~/.sigstore and reads docker credentials from ~/.docker), COSIGN_PASSWORD empty, and
// every proxied request (anything but loopback: Rekor, Fulcio, TUF, CT logs) sent to a proxy that
// records and refuses it. When the test ends, a recorded request or a ~/.sigstore folder fails it.
type toolEnv struct {
	dir         string // working folder: keys, signing config, trusted root
	home        string
	tmp         string // TMPDIR
	proxy       string
	trustedRoot string // path of emptyTrustedRoot

	mu      sync.Mutex
	proxied []string
}

func newToolEnv(t *testing.T) *toolEnv {
	t.Helper()
	e := &toolEnv{dir: t.TempDir(), home: t.TempDir(), tmp: t.TempDir()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.proxied = append(e.proxied, r.Method+" "+r.Host+r.URL.Path)
		e.mu.Unlock()
		http.Error(w, "no network in integration tests", http.StatusForbidden)
	}))
	e.proxy = srv.URL
	e.trustedRoot = filepath.Join(e.dir, "empty-trusted-root.json")
	if err := os.WriteFile(e.trustedRoot, []byte(emptyTrustedRoot), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, p := range e.proxied {
			t.Errorf("a tool tried the network: %s", p)
		}
		if _, err := os.Stat(filepath.Join(e.home, ".sigstore")); err == nil {
			t.Errorf("a tool initialised a TUF client (%s/.sigstore exists)", e.home)
		}
	})
	return e
}

// run runs bin in dir ("" = the env's folder) with the clean environment plus extraEnv, and
// returns its combined output. The command line is logged with its duration.
func (e *toolEnv) run(t *testing.T, dir string, extraEnv []string, bin string, args ...string) (string, error) {
	t.Helper()
	if dir == "" {
		dir = e.dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{
		"HOME=" + e.home,
		"DOCKER_CONFIG=" + filepath.Join(e.home, ".docker"),
		"COSIGN_PASSWORD=",
		"HTTPS_PROXY=" + e.proxy, "HTTP_PROXY=" + e.proxy, "NO_PROXY=",
		"TMPDIR=" + e.tmp,
	}, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("$ %s%s %s  [%v, exit %d]", envPrefix(extraEnv), filepath.Base(bin), strings.Join(args, " "),
		time.Since(start).Round(time.Millisecond), cmd.ProcessState.ExitCode())
	return out.String(), err
}

// mustRun is run that fails the test when the command fails.
func (e *toolEnv) mustRun(t *testing.T, dir string, extraEnv []string, bin string, args ...string) string {
	t.Helper()
	out, err := e.run(t, dir, extraEnv, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

func envPrefix(env []string) string {
	var b strings.Builder
	for _, kv := range env {
		b.WriteString(kv + " ")
	}
	return b.String()
}

// keyPair is a cosign key pair made by `cosign generate-key-pair`.
type keyPair struct {
	private, public string // paths of cosign.key and cosign.pub
	pem             string // the public key
}

// generateKeyPair runs `COSIGN_PASSWORD= <bin> generate-key-pair` in a new folder.
func (e *toolEnv) generateKeyPair(t *testing.T, bin, label string) keyPair {
	t.Helper()
	dir := filepath.Join(e.dir, label)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.mustRun(t, dir, nil, bin, "generate-key-pair")
	k := keyPair{private: filepath.Join(dir, "cosign.key"), public: filepath.Join(dir, "cosign.pub")}
	pub, err := os.ReadFile(k.public)
	if err != nil {
		t.Fatal(err)
	}
	k.pem = string(pub)
	return k
}

// toolVersion returns the GitVersion line of `<bin> version`.
func (e *toolEnv) toolVersion(t *testing.T, bin string) string {
	t.Helper()
	out := e.mustRun(t, "", nil, bin, "version")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "GitVersion:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s version printed no GitVersion:\n%s", bin, out)
	return ""
}

// timestampAuthority is a running sigstore timestamp-server (an RFC 3161 TSA, in-memory
// signer: a fresh root, intermediate and timestamping certificate each start).
type timestampAuthority struct {
	URL       string // the RFC 3161 endpoint, http://127.0.0.1:P/api/v1/timestamp
	ChainPEM  string // its chain as /api/v1/timestamp/certchain serves it: TSA certificate, intermediate, root
	RootPEM   string // the root alone (notation sign --timestamp-root-cert)
	ChainFile string // ChainPEM in a file
	RootFile  string // RootPEM in a file
}

// startTimestampAuthority starts the timestamp-server built by hack/tools.sh (sigstore's
// timestamp-authority server, in-memory signer, loopback only: hack/tools/timestamp-server) on
// 127.0.0.1 at a free port, in the env's offline environment (its proxy records any request),
// with the issuing chain in its responses (notation builds the TSA chain from the token). It
// waits until the chain is served and stops the server when the test ends.
func (e *toolEnv) startTimestampAuthority(t *testing.T) *timestampAuthority {
	t.Helper()
	bin := toolPath(t, "timestamp-server")
	var errs []error
	for range 3 { // a free port can be taken between probing it and the server binding it
		tsa, err := e.tryStartTimestampAuthority(t, bin)
		if err == nil {
			return tsa
		}
		errs = append(errs, err)
	}
	t.Fatalf("starting timestamp-server: %v", errors.Join(errs...))
	return nil
}

func (e *toolEnv) tryStartTimestampAuthority(t *testing.T, bin string) (*timestampAuthority, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(host)
	dir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", port, "--scheme", "http",
		"--timestamp-signer", "memory", "--disable-ntp-monitoring", "--include-chain-in-response", "--log-type", "prod")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "HTTPS_PROXY=" + e.proxy, "HTTP_PROXY=" + e.proxy, "NO_PROXY=", "TMPDIR=" + e.tmp}
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	base := "http://" + host + "/api/v1/timestamp"
	exitErr := func(err error) error {
		return fmt.Errorf("timestamp-server on %s exited (%v):\n%s", host, err, logs)
	}
	var chain []byte
	for ready := time.Now().Add(15 * time.Second); ; {
		resp, err := client.Get(base + "/certchain")
		if err == nil {
			chain, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			return nil, exitErr(err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(ready) {
			stop()
			return nil, fmt.Errorf("timestamp-server on %s: the certificate chain was not served within 15s:\n%s", host, logs)
		}
	}
	// The metrics server binds concurrently with the API: a taken port may end the process
	// just after the API answered.
	select {
	case err := <-exited:
		return nil, exitErr(err)
	case <-time.After(300 * time.Millisecond):
	}
	t.Logf("timestamp-server on %s (pid %d) ready in %v", host, cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("timestamp-server log (last lines):\n%s", lastLines(logs.String(), 20))
		}
	})
	blocks := pemBlocks(chain)
	if len(blocks) < 2 {
		return nil, fmt.Errorf("timestamp-server on %s served a chain of %d certificates:\n%s", host, len(blocks), chain)
	}
	tsa := &timestampAuthority{URL: base, ChainPEM: string(chain), RootPEM: blocks[len(blocks)-1],
		ChainFile: filepath.Join(e.dir, "tsa-chain.pem"), RootFile: filepath.Join(e.dir, "tsa-root.pem")}
	for path, body := range map[string]string{tsa.ChainFile: tsa.ChainPEM, tsa.RootFile: tsa.RootPEM} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	return tsa, nil
}

// pemBlocks splits PEM text into its blocks, each re-encoded.
func pemBlocks(text []byte) []string {
	var out []string
	for {
		var b *pem.Block
		b, text = pem.Decode(text)
		if b == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(b)))
	}
}
