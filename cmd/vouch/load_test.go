package main

// Load benchmark of `vouch serve` (issue 4) and the tests that ride on the same harness.
//
//   - BenchmarkServeLoad: an open-loop load generator sends AdmissionReview v1 CREATE requests
//     for a 3-container Pod at a fixed rate to `vouch serve` (the binary TestMain built, in a
//     process of its own) and, in the same run, to a no-op webhook on the same HTTP/TLS stack
//     (this test binary re-executed, in a process of its own too) — the floor.
//   - TestServeColdBurstCoalesces: 100 concurrent requests for one never-verified image cost
//     one verification (one signature fetch at the registry) and one tag resolution (one HEAD).
//   - BenchmarkServeSlowBurst: warm traffic while many requests wait on one slow verification.
//   - TestServeCacheMemory / BenchmarkServeMemory: the memory held by 10,000 cached results.
//
// Everything is hermetic: the registry is in-process on 127.0.0.1, keys are generated, and the
// servers listen on 127.0.0.1 only.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/empty"
	ocimutate "github.com/sigstore/cosign/v3/pkg/oci/mutate"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/webhook"
)

// ---- the world: registry, key, signed images, policy ----

// loadWorld is an in-process registry with signed images and a policy file verifying them.
type loadWorld struct {
	reg     *fixture.Registry
	key     *fixture.Key
	counts  *registryCounts
	policy  string            // path of the policy file
	digests map[string]string // repo:tag -> digest
}

// registryCounts counts the requests the registry receives, by class (see classify), and can
// delay signature fetches to hold a verification in flight.
type registryCounts struct {
	mu       sync.Mutex
	m        map[string]int
	conns    map[string]bool // client addresses seen: connections opened to the registry
	sigDelay atomic.Int64    // nanoseconds added before answering a GET of a .sig manifest
	resDelay atomic.Int64    // nanoseconds added before answering a HEAD of a manifest by tag
}

// Request classes.
const (
	reqResolve  = "HEAD manifest by tag"          // tag resolution
	reqSigFetch = "GET signature manifest (.sig)" // the start of one cosign verification
	reqBlob     = "GET blob"                      // signature layer
	reqPing     = "GET /v2/"                      // ping
	reqConn     = "(connections)"                 // TCP connections the requests came on
)

func classifyRegistryRequest(r *http.Request) string {
	p := r.URL.Path
	if p == "/v2/" || p == "/v2" {
		return reqPing
	}
	i := strings.LastIndexByte(p, '/')
	dir, last := p[:i], p[i+1:]
	switch {
	case strings.HasSuffix(dir, "/manifests") && strings.HasSuffix(last, ".sig") && r.Method == http.MethodGet:
		return reqSigFetch
	case strings.HasSuffix(dir, "/manifests") && r.Method == http.MethodHead && !strings.Contains(last, ":"):
		return reqResolve
	case strings.HasSuffix(dir, "/blobs") && r.Method == http.MethodGet:
		return reqBlob
	}
	return r.Method + " other"
}

func (c *registryCounts) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		class := classifyRegistryRequest(r)
		c.mu.Lock()
		c.m[class]++
		if !c.conns[r.RemoteAddr] {
			c.conns[r.RemoteAddr] = true
			c.m[reqConn]++
		}
		c.mu.Unlock()
		if d := time.Duration(c.sigDelay.Load()); d > 0 && class == reqSigFetch {
			time.Sleep(d)
		}
		if d := time.Duration(c.resDelay.Load()); d > 0 && class == reqResolve {
			time.Sleep(d)
		}
		h.ServeHTTP(w, r)
	})
}

func (c *registryCounts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// since returns the counts added after before.
func (c *registryCounts) since(before map[string]int) map[string]int {
	out := c.snapshot()
	for k, v := range before {
		out[k] -= v
		if out[k] == 0 {
			delete(out, k)
		}
	}
	return out
}

// newLoadWorld starts the registry, pushes and signs repoTags, and writes a ClusterPolicy that
// verifies every image with the key (offline: rekor.ignoreTlog, ctlog.ignoreSCT) and pins
// digests (mutateDigest, Kyverno's default, spelled out).
func newLoadWorld(tb testing.TB, repoTags ...string) *loadWorld {
	tb.Helper()
	w := &loadWorld{counts: &registryCounts{m: map[string]int{}, conns: map[string]bool{}}, digests: map[string]string{}}
	w.reg = fixture.StartRegistry(false, w.counts.wrap)
	tb.Cleanup(w.reg.Close)
	var err error
	if w.key, err = fixture.NewKey(); err != nil {
		tb.Fatal(err)
	}
	for _, rt := range repoTags {
		w.push(tb, rt)
	}
	pol := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: verify-signatures}
spec:
  validationFailureAction: Enforce
  background: false
  webhookTimeoutSeconds: 10
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["` + w.reg.Host + `/*"]
      mutateDigest: true
      verifyDigest: true
      required: true
      attestors:
      - entries:
        - keys:
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
            publicKeys: |-
              ` + indentLines(w.key.PEM, "              ") + "\n"
	w.policy = filepath.Join(tb.TempDir(), "policy.yaml")
	if err := os.WriteFile(w.policy, []byte(pol), 0o600); err != nil {
		tb.Fatal(err)
	}
	return w
}

// push pushes and signs one image.
func (w *loadWorld) push(tb testing.TB, repoTag string) string {
	tb.Helper()
	ctx := context.Background()
	d, err := w.reg.Push(ctx, repoTag)
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.reg.Sign(ctx, fixture.Repository(repoTag), d, w.key.Private, nil, ""); err != nil {
		tb.Fatal(err)
	}
	w.digests[repoTag] = d
	return d
}

// ---- the servers under test ----

// loadTarget is a webhook under test: a process of its own, its address and the CA that signed
// its certificate.
type loadTarget struct {
	name string
	addr string
	ca   *x509.CertPool
	pid  int

	dials atomic.Int64 // connections opened by its clients
}

// freeLoopbackAddr returns a 127.0.0.1 address that was free a moment ago.
func freeLoopbackAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// startProc starts cmd with stdout captured, stops it (SIGTERM, then SIGKILL after 5s) at
// cleanup, and returns its stdout.
func startLoadProc(tb testing.TB, cmd *exec.Cmd) *lockedBuffer {
	tb.Helper()
	stdout := &lockedBuffer{}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return stdout
}

// startVouchServe runs the vouch binary TestMain built — `vouch serve --listen 127.0.0.1:<free>
// --tls-self-signed --tls-hosts 127.0.0.1 --shutdown-grace 2s <args>` — and waits until it is
// ready. The client trusts the CA bundle the command prints, as an API server trusts its
// caBundle. Its logs (JSON, one line per admission at the default level) go to a file.
func startVouchServe(tb testing.TB, args ...string) *loadTarget {
	tb.Helper()
	addr := freeLoopbackAddr(tb)
	logs, err := os.Create(filepath.Join(tb.TempDir(), "vouch.log"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { logs.Close() })
	cmd := exec.Command(vouchBinary, append([]string{"serve", "--listen", addr, "--tls-self-signed", "--tls-hosts", "127.0.0.1", "--shutdown-grace", "2s"}, args...)...)
	cmd.Stderr = logs
	stdout := startLoadProc(tb, cmd)
	t := &loadTarget{name: "vouch", addr: addr, pid: cmd.Process.Pid}
	t.ca = readCABundle(tb, stdout, nil)
	t.waitReady(tb)
	return t
}

// readCABundle waits for a PEM bundle in out and returns it as a pool; errOut, if not nil, is
// the process's stderr, shown when the bundle does not come.
func readCABundle(tb testing.TB, out, errOut *lockedBuffer) *x509.CertPool {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "END CERTIFICATE") {
		if time.Now().After(deadline) {
			stderr := ""
			if errOut != nil {
				stderr = errOut.String()
			}
			tb.Fatalf("no CA bundle printed: %q; stderr: %s", out.String(), stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	text := out.String()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(text[strings.Index(text, "-----BEGIN"):])) {
		tb.Fatalf("cannot parse the CA bundle: %q", text)
	}
	return pool
}

// waitReady waits until the target answers /readyz with 200.
func (t *loadTarget) waitReady(tb testing.TB) {
	tb.Helper()
	client := t.client()
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("https://" + t.addr + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s at %s is not ready: %v", t.name, t.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// floorEnv makes the test binary serve the floor (TestServeLoadFloorProcess).
const floorEnv = "VOUCH_LOAD_FLOOR_PROCESS"

// startFloor starts the no-op webhook in a process of its own, as vouch runs in one: this
// test binary again, running TestServeLoadFloorProcess.
func startFloor(tb testing.TB) *loadTarget {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeLoadFloorProcess$")
	cmd.Env = append(os.Environ(), floorEnv+"=1")
	stdin, err := cmd.StdinPipe() // the floor serves until its stdin closes
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close() })
	stderr := &lockedBuffer{} // TestMain's build of vouch runs again in the child: its errors land here
	cmd.Stderr = stderr
	stdout := startLoadProc(tb, cmd)
	t := &loadTarget{name: "floor", pid: cmd.Process.Pid}
	t.ca = readCABundle(tb, stdout, stderr)
	text := stdout.String()
	i := strings.Index(text, "floor listening on ")
	if i < 0 {
		tb.Fatalf("the floor printed no address: %q", text)
	}
	t.addr, _, _ = strings.Cut(text[i+len("floor listening on "):], "\n")
	t.waitReady(tb)
	return t
}

// TestServeLoadFloorProcess is the no-op webhook of BenchmarkServeLoad when the test binary is
// started with VOUCH_LOAD_FLOOR_PROCESS=1 (and does nothing otherwise): the same HTTP/TLS stack
// as webhook.Server — net/http with the settings of webhook.New, behind tls.NewListener with a
// webhook.SelfSigned configuration — and a handler that reads and decodes the AdmissionReview
// v1 and answers allowed with its UID. It serves until its stdin closes.
func TestServeLoadFloorProcess(t *testing.T) {
	if os.Getenv(floorEnv) != "1" {
		return
	}
	cfg, bundle, err := webhook.SelfSigned([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, webhook.DefaultMaxBodyBytes+1))
		var in admissionv1.AdmissionReview
		if err == nil {
			err = json.Unmarshal(body, &in)
		}
		if err != nil || in.Request == nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		out, err := json.Marshal(&admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Response: &admissionv1.AdmissionResponse{UID: in.Request.UID, Allowed: true},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	srv := &http.Server{ // the settings of webhook.New
		Handler:           mux,
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      35 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(tls.NewListener(l, cfg)) }()
	fmt.Printf("floor listening on %s\n%s", l.Addr(), bundle)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}

// client returns an HTTPS client trusting the target's CA, with keep-alive connections pooled
// as the API server's webhook client pools them (client-go's transport: at most 25 idle
// connections per host, no limit on open ones; HTTP/1.1, as the servers offer no h2). Every
// connection it opens (a TLS handshake) is counted in t.dials.
func (t *loadTarget) client() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: t.ca, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 25, // k8s.io/client-go/transport: idleConnsPerHost
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				t.dials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			},
		},
	}
}

// ---- admission requests ----

// podReview returns a function building an AdmissionReview v1 CREATE request for a Pod with one
// container per image, with the given UID.
func podReview(images ...string) func(uid string) []byte {
	containers := make([]map[string]any, len(images))
	for i, im := range images {
		containers[i] = map[string]any{"name": "c" + strconv.Itoa(i), "image": im}
	}
	pod, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "load", "namespace": "default", "labels": map[string]any{"app": "load"}},
		"spec":     map[string]any{"containers": containers},
	})
	const marker = "@@UID@@"
	tmpl := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + marker + `",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
		`"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},` +
		`"namespace":"default","name":"load","operation":"CREATE",` +
		`"userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","groups":["system:serviceaccounts","system:authenticated"]},` +
		`"object":` + string(pod) + `,"oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}`
	before, after, _ := strings.Cut(tmpl, marker)
	return func(uid string) []byte { return []byte(before + uid + after) }
}

// reviewReply is the part of an AdmissionReview response the load generator checks.
type reviewReply struct {
	Response struct {
		UID     string `json:"uid"`
		Allowed bool   `json:"allowed"`
		Patch   []byte `json:"patch"`
	} `json:"response"`
}

// errOverloaded marks a denial because vouch was overloaded (--max-admissions-in-flight): an
// image "could not verify …: vouch is overloaded" under failurePolicy Fail.
var errOverloaded = errors.New("overloaded")

// checkReply returns a check of a response: allowed, the request's UID, and at least pins
// digest pins in the patch. A denial for overload wraps errOverloaded.
func checkReply(pins int) func(uid string, body []byte) error {
	return func(uid string, body []byte) error {
		var r reviewReply
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("decoding the response: %w", err)
		}
		switch {
		case r.Response.UID != uid:
			return fmt.Errorf("response UID %q, want %q", r.Response.UID, uid)
		case !r.Response.Allowed:
			overloaded := bytes.Contains(body, []byte("vouch is overloaded"))
			if len(body) > 1000 {
				body = body[:1000]
			}
			if overloaded {
				return fmt.Errorf("denied, %w: %s", errOverloaded, body)
			}
			return fmt.Errorf("denied: %s", body)
		case bytes.Count(r.Response.Patch, []byte("@sha256:")) < pins:
			return fmt.Errorf("patch pins %d digests, want %d: %s", bytes.Count(r.Response.Patch, []byte("@sha256:")), pins, r.Response.Patch)
		}
		return nil
	}
}

// post sends one admission request and checks the answer.
func postReview(ctx context.Context, client *http.Client, url, uid string, body []byte, check func(string, []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, out)
	}
	return check(uid, out)
}

// ---- the load generator ----

// loadResult is the outcome of one open-loop run.
type loadResult struct {
	target    float64       // requests per second asked for
	sent      int           // requests issued
	errors    int           // transport errors, non-200, denials, wrong UID or patch
	firstErr  error         // the first of them (the first not for overload, when there is one)
	elapsed   time.Duration // from the first intended send to the last completion
	latencies []time.Duration
	lagMax    time.Duration // worst delay of the generator issuing a request after its due time

	overloaded  int             // of the errors: denials for overload (errOverloaded)
	okLatencies []time.Duration // of the successful responses only
}

// answered is the rate of successful responses and denials for overload over the run: what
// the server answered as it was meant to.
func (r loadResult) answered() float64 {
	return float64(r.sent-r.errors+r.overloaded) / r.elapsed.Seconds()
}

// achieved is the rate of successful responses over the run.
func (r loadResult) achieved() float64 {
	return float64(r.sent-r.errors) / r.elapsed.Seconds()
}

// quantile is the nearest-rank q-quantile of the latencies (sorted by run).
func (r loadResult) quantile(q float64) time.Duration { return quantileOf(r.latencies, q) }

// quantileOf is the nearest-rank q-quantile of sorted latencies.
func quantileOf(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// scrapeValue returns the value of one series of the target's /metrics, -1 when it is absent
// (the floor has none).
func scrapeValue(client *http.Client, t *loadTarget, series string) float64 {
	resp, err := client.Get("https://" + t.addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && name == series {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// runLoad is an open-loop load generator: request i is due at start + i/rate whatever happened
// to the earlier ones, is sent by a goroutine of its own (so a slow response never delays the
// next send), and its latency is measured from its due time, not from when it was actually
// sent, so queueing anywhere (server, connection pool, this generator) counts against the
// server instead of being omitted. Requests go over keep-alive HTTPS connections.
func runLoad(client *http.Client, url string, body func(uid string) []byte, check func(string, []byte) error, rate float64, d time.Duration) loadResult {
	n := int(rate * d.Seconds())
	res := loadResult{target: rate, sent: n, latencies: make([]time.Duration, n)}
	interval := time.Duration(float64(time.Second) / rate)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errCount int
	)
	ctx := context.Background()
	start := time.Now().Add(5 * time.Millisecond)
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		} else if -wait > res.lagMax {
			res.lagMax = -wait
		}
		uid := fmt.Sprintf("load-%08d", i)
		b := body(uid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := postReview(ctx, client, url, uid, b, check)
			res.latencies[i] = time.Since(due)
			mu.Lock()
			switch {
			case err == nil:
				res.okLatencies = append(res.okLatencies, res.latencies[i])
			case errors.Is(err, errOverloaded):
				errCount++
				res.overloaded++
				if res.firstErr == nil {
					res.firstErr = err
				}
			default:
				errCount++
				if res.firstErr == nil || errors.Is(res.firstErr, errOverloaded) {
					res.firstErr = err
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.errors = errCount
	slices.Sort(res.latencies)
	slices.Sort(res.okLatencies)
	return res
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// cpuTimes is a reading of CPU time on Linux, in USER_HZ ticks (1/100 s): the server's and
// this process's (user + system), and the whole machine's busy (user, nice, system, steal) and
// total time. ok is false elsewhere.
type cpuTimes struct {
	server, self, busy, total uint64
	ok                        bool
}

// procCPU returns a process's user + system time in ticks from /proc/<pid>/stat.
func procCPU(pid string) (uint64, bool) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ...": utime and stime are fields 14 and 15.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	return u + s, err1 == nil && err2 == nil
}

func readCPU(serverPID int) cpuTimes {
	var c cpuTimes
	var ok1, ok2 bool
	c.server, ok1 = procCPU(strconv.Itoa(serverPID))
	c.self, ok2 = procCPU("self")
	all, err := os.ReadFile("/proc/stat")
	if !ok1 || !ok2 || err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(all), "\n") // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
	g := strings.Fields(line)
	if len(g) < 9 || g[0] != "cpu" {
		return cpuTimes{}
	}
	for i, v := range g[1:9] { // guest time is already counted in user
		n, _ := strconv.ParseUint(v, 10, 64)
		c.total += n
		// Busy is user, nice, system and steal (another VM): not idle or iowait, and not irq
		// or softirq, where the kernel moves the benchmark's own loopback traffic.
		if i <= 2 || i == 7 {
			c.busy += n
		}
	}
	c.ok = true
	return c
}

// cpuUsage is what happened between two readings.
type cpuUsage struct {
	server, harness time.Duration // CPU per request: the server's; this process's (load generator, registry)
	busy, others    float64       // shares of the machine: all busy; used by other processes (noise, should be ~0)
}

func cpuUse(a, b cpuTimes, requests int) (u cpuUsage, ok bool) {
	if !a.ok || !b.ok || b.total == a.total || requests == 0 {
		return u, false
	}
	perRequest := func(ticks uint64) time.Duration {
		return time.Duration(ticks) * 10 * time.Millisecond / time.Duration(requests)
	}
	server, self, busy, total := b.server-a.server, b.self-a.self, b.busy-a.busy, b.total-a.total
	u.server, u.harness = perRequest(server), perRequest(self)
	u.busy = float64(busy) / float64(total)
	if busy > server+self {
		u.others = float64(busy-server-self) / float64(total)
	}
	return u, true
}

// loadDuration is how long each measured run lasts: VOUCH_LOAD_DURATION, default 5s.
func loadDuration(tb testing.TB) time.Duration {
	if s := os.Getenv("VOUCH_LOAD_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			tb.Fatalf("VOUCH_LOAD_DURATION=%q: want a positive duration", s)
		}
		return d
	}
	return 5 * time.Second
}

// loadRates are the request rates to measure: VOUCH_LOAD_RATES (comma-separated), default
// 200,1000.
func loadRates(tb testing.TB) []float64 {
	spec := os.Getenv("VOUCH_LOAD_RATES")
	if spec == "" {
		spec = "200,1000"
	}
	var rates []float64
	for _, f := range strings.Split(spec, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			tb.Fatalf("VOUCH_LOAD_RATES=%q: want positive numbers", spec)
		}
		rates = append(rates, r)
	}
	return rates
}

// BenchmarkServeLoad measures admission latency under a fixed request rate, warm cache: a Pod
// with 3 containers, 3 distinct signed images, one ClusterPolicy with one verifyImages entry
// (one public key, mutateDigest). Per rate, in the same run:
//
//	floor           the no-op webhook on the same HTTP/TLS stack
//	vouch           `vouch serve`, images by tag: each request resolves the 3 tags (3 HEADs at the
//	                in-process registry), then finds the 3 verifications in the cache and pins
//	vouch-digests   `vouch serve`, images by digest: no registry request at all
//
// Each run lasts VOUCH_LOAD_DURATION (5s) after 1s of discarded warm-up at the same rate;
// VOUCH_LOAD_RATES changes the rates (200,1000); VOUCH_LOAD_SERVE_ARGS adds flags to vouch
// serve. Denials for overload (--max-admissions-in-flight) are errors, also counted apart. The
// servers run in processes of their own; the load generator and the registry, in this one,
// share the machine with them. Run it with -benchtime=1x: one run per sub-benchmark, whatever
// b.N is. ns/op is the run's wall time per request (1/achieved rate), not a latency.
func BenchmarkServeLoad(b *testing.B) {
	images := []string{"load/frontend:v1", "load/backend:v1", "load/sidecar:v1"}
	w := newLoadWorld(b, images...)
	var byTag, byDigest []string
	for _, im := range images {
		byTag = append(byTag, w.reg.Host+"/"+im)
		byDigest = append(byDigest, w.reg.Host+"/"+fixture.Repository(im)+"@"+w.digests[im])
	}
	// VOUCH_LOAD_SERVE_ARGS: more flags for vouch serve, e.g. --max-admissions-in-flight=0.
	vouch := startVouchServe(b, append([]string{"--policies", w.policy}, strings.Fields(os.Getenv("VOUCH_LOAD_SERVE_ARGS"))...)...)
	floor := startFloor(b)
	// Prime the cache: the first request verifies the 3 images.
	{
		c := vouch.client()
		if err := postReview(context.Background(), c, "https://"+vouch.addr+"/mutate", "prime", podReview(byTag...)("prime"), checkReply(3)); err != nil {
			b.Fatal(err)
		}
		c.CloseIdleConnections()
	}
	scenarios := []struct {
		name  string
		t     *loadTarget
		body  func(string) []byte
		check func(string, []byte) error
	}{
		{"floor", floor, podReview(byTag...), checkReply(0)},
		{"vouch", vouch, podReview(byTag...), checkReply(3)},
		{"vouch-digests", vouch, podReview(byDigest...), checkReply(0)},
	}
	d := loadDuration(b)
	for _, rate := range loadRates(b) {
		var floorResult *loadResult
		for _, sc := range scenarios {
			b.Run(fmt.Sprintf("rate=%.0f/%s", rate, sc.name), func(b *testing.B) {
				client := sc.t.client()
				defer client.CloseIdleConnections()
				url := "https://" + sc.t.addr + "/mutate"
				before := w.counts.snapshot()
				runLoad(client, url, sc.body, sc.check, rate, time.Second) // warm-up: connections, pools
				b.ResetTimer()
				const overloadSeries = `vouch_admissions_overloaded_total{webhook="mutate"}`
				over0 := scrapeValue(client, sc.t, overloadSeries)
				cpu0, dials0 := readCPU(sc.t.pid), sc.t.dials.Load()
				r := runLoad(client, url, sc.body, sc.check, rate, d)
				cpu1, dials := readCPU(sc.t.pid), sc.t.dials.Load()-dials0
				b.StopTimer()
				over1 := scrapeValue(client, sc.t, overloadSeries)
				reg := w.counts.since(before)
				p50, p99, mx := r.quantile(0.50), r.quantile(0.99), r.latencies[len(r.latencies)-1]
				b.ReportMetric(float64(r.elapsed.Nanoseconds())/float64(r.sent), "ns/op")
				b.ReportMetric(micros(p50), "p50-µs")
				b.ReportMetric(micros(p99), "p99-µs")
				b.ReportMetric(micros(mx), "max-µs")
				b.ReportMetric(r.achieved(), "ok-req/s")
				b.ReportMetric(float64(r.errors), "errors")
				b.ReportMetric(float64(dials), "connections")
				line := fmt.Sprintf("%-14s target %5.0f req/s  achieved %7.1f ok-req/s  p50 %8.0fµs  p99 %8.0fµs  max %8.0fµs  errors %d  connections opened %d  generator lag max %v  registry requests (with warm-up) %v",
					sc.name, rate, r.achieved(), micros(p50), micros(p99), micros(mx), r.errors, dials, r.lagMax.Round(time.Microsecond), reg)
				if u, ok := cpuUse(cpu0, cpu1, r.sent); ok {
					b.ReportMetric(micros(u.server), "server-cpu-µs/req")
					b.ReportMetric(100*u.others, "other-procs-cpu-%")
					line += fmt.Sprintf("  CPU per request: server %.0fµs, generator+registry %.0fµs  machine busy %.0f%%, other processes %.0f%%",
						micros(u.server), micros(u.harness), 100*u.busy, 100*u.others)
					if u.others > 0.10 {
						line += "  NOISY: other processes competed for the CPU, do not trust this row"
					}
				}
				if r.errors > 0 {
					okp50, okp99 := quantileOf(r.okLatencies, 0.50), quantileOf(r.okLatencies, 0.99)
					b.ReportMetric(r.answered(), "answered-req/s")
					line += fmt.Sprintf("  ok answers only: p50 %.0fµs p99 %.0fµs; denied for overload %d; answered (ok + overload denials) %.1f req/s",
						micros(okp50), micros(okp99), r.overloaded, r.answered())
				}
				if over0 >= 0 && over1 >= 0 {
					// Answered beyond --max-admissions-in-flight, the server's count: by-digest
					// requests are answered from the cache then and pass.
					over := over1 - over0
					b.ReportMetric(100*over/float64(r.sent), "overloaded-%")
					line += fmt.Sprintf("  beyond the bound %.0f (%.1f%%)", over, 100*over/float64(r.sent))
				}
				if rss := vmRSS(strconv.Itoa(sc.t.pid)); rss > 0 {
					b.ReportMetric(float64(rss)/(1<<20), "server-rss-MiB")
					line += fmt.Sprintf("  server RSS %.1f MiB", float64(rss)/(1<<20))
				}
				// The peak since the server started (so far in this benchmark: the rows on the
				// same server before this one count too).
				if hwm := procStatusBytes(strconv.Itoa(sc.t.pid), "VmHWM:"); hwm > 0 {
					b.ReportMetric(float64(hwm)/(1<<20), "server-max-rss-MiB")
					line += fmt.Sprintf(" (max %.1f MiB)", float64(hwm)/(1<<20))
				}
				if sc.name == "floor" {
					floorResult = &r
				} else if floorResult != nil {
					fp50, fp99 := floorResult.quantile(0.50), floorResult.quantile(0.99)
					b.ReportMetric(float64(p50)/float64(fp50), "p50/floor")
					b.ReportMetric(float64(p99)/float64(fp99), "p99/floor")
					line += fmt.Sprintf("  ratio to floor p50 %.1f× p99 %.1f×", float64(p50)/float64(fp50), float64(p99)/float64(fp99))
				}
				b.Log(line)
				if r.firstErr != nil {
					b.Logf("first error: %v", r.firstErr)
				}
			})
		}
	}
}

// BenchmarkServeSlowBurst measures warm-cache traffic (the 3-container Pod at 200 req/s for
// 3s) while 64 concurrent requests for a new image wait on one verification that the registry
// holds for 2s (its signature fetch is delayed): requests whose images are in the cache must not
// queue behind it.
func BenchmarkServeSlowBurst(b *testing.B) {
	images := []string{"slow/frontend:v1", "slow/backend:v1", "slow/sidecar:v1"}
	w := newLoadWorld(b, images...)
	var byTag []string
	for _, im := range images {
		byTag = append(byTag, w.reg.Host+"/"+im)
	}
	vouch := startVouchServe(b, "--policies", w.policy)
	client := vouch.client()
	defer client.CloseIdleConnections()
	url := "https://" + vouch.addr + "/mutate"
	body, check := podReview(byTag...), checkReply(3)
	if err := postReview(context.Background(), client, url, "prime", body("prime"), check); err != nil {
		b.Fatal(err)
	}
	runLoad(client, url, body, check, 200, time.Second) // warm-up
	w.push(b, "slow/new:v1")
	w.counts.sigDelay.Store(int64(2 * time.Second))
	before := w.counts.snapshot()
	var wg sync.WaitGroup
	var burstErrs atomic.Int64
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := fmt.Sprintf("slow-%d", i)
			if err := postReview(context.Background(), client, url, uid, podReview(w.reg.Host+"/slow/new:v1")(uid), checkReply(1)); err != nil {
				burstErrs.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	b.ResetTimer()
	r := runLoad(client, url, body, check, 200, 3*time.Second)
	b.StopTimer()
	wg.Wait()
	p50, p99, mx := r.quantile(0.50), r.quantile(0.99), r.latencies[len(r.latencies)-1]
	b.ReportMetric(float64(r.elapsed.Nanoseconds())/float64(r.sent), "ns/op")
	b.ReportMetric(micros(p50), "p50-µs")
	b.ReportMetric(micros(p99), "p99-µs")
	b.ReportMetric(micros(mx), "max-µs")
	b.ReportMetric(float64(r.errors), "errors")
	b.Logf("warm traffic during a 2s verification awaited by 64 requests: p50 %.0fµs p99 %.0fµs max %.0fµs errors %d (%v); burst errors %d; registry %v",
		micros(p50), micros(p99), micros(mx), r.errors, r.firstErr, burstErrs.Load(), w.counts.since(before))
}

// ---- cold burst: coalescing across concurrent requests ----

// TestServeColdBurstCoalesces sends 100 concurrent admission requests for one image vouch has
// never verified to `vouch serve`. The registry holds the signature fetch for 300 ms so that
// all 100 requests are in flight together: they must share ONE verification (one GET of the
// image's .sig manifest), and all be allowed with the digest pinned. The registry also holds
// the tag's HEAD for resHold, so that the 100 resolutions are in flight together too: they
// must share ONE HEAD (registry.Pair.Resolve coalesces resolutions in flight; nothing is kept
// after one, so a tag is never trusted across requests that do not overlap). Without that
// hold, requests arriving after the first HEAD has answered start their own (1 to a few).
func TestServeColdBurstCoalesces(t *testing.T) {
	const n = 100
	const hold = 300 * time.Millisecond
	const resHold = 100 * time.Millisecond
	w := newLoadWorld(t)
	vouch := startVouchServe(t, "--policies", w.policy)
	digest := w.push(t, "burst/new:v1")
	image := w.reg.Host + "/burst/new:v1"

	client := vouch.client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = n
	defer client.CloseIdleConnections()
	// Open n keep-alive connections first, so that the burst is not spread out by TLS handshakes.
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			resp, err := client.Get("https://" + vouch.addr + "/healthz")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	close(gate)
	wg.Wait()

	w.counts.sigDelay.Store(int64(hold))
	w.counts.resDelay.Store(int64(resHold))
	before := w.counts.snapshot()
	body := podReview(image)
	check := checkReply(1)
	errs := make([]error, n)
	gate = make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := fmt.Sprintf("burst-%03d", i)
			<-gate
			errs[i] = postReview(context.Background(), client, "https://"+vouch.addr+"/mutate", uid, body(uid), func(uid string, out []byte) error {
				if err := check(uid, out); err != nil {
					return err
				}
				if !strings.Contains(decodePatch(out), "burst/new:v1@"+digest) {
					return fmt.Errorf("patch does not pin %s: %s", digest, decodePatch(out))
				}
				return nil
			})
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	got := w.counts.since(before)
	t.Logf("%d concurrent requests for one new image: %v; registry requests: %v", n, elapsed.Round(time.Millisecond), got)
	failed := 0
	for i, err := range errs {
		if err != nil {
			if failed++; failed <= 3 {
				t.Errorf("request %d: %v", i, err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed", failed, n)
	}
	if got[reqSigFetch] != 1 {
		t.Errorf("signature manifest fetched %d times, want 1: the %d requests must share one verification (registry requests: %v)", got[reqSigFetch], n, got)
	}
	if got[reqResolve] != 1 {
		t.Errorf("tag resolved %d times for %d concurrent requests, want 1: resolutions in flight together must share one HEAD (registry requests: %v)", got[reqResolve], n, got)
	}
	if elapsed > 2*hold+resHold+2*time.Second {
		t.Errorf("the burst took %v with one %v verification: requests were not served together", elapsed, hold)
	}
}

// decodePatch returns the JSON patch of an AdmissionReview response as text.
func decodePatch(body []byte) string {
	var r reviewReply
	if err := json.Unmarshal(body, &r); err != nil {
		return ""
	}
	return string(r.Response.Patch)
}

// ---- memory held by 10,000 cached results ----

// fillCache stores n pass results through Cache.Do, as the engine stores them: the policy, rule
// and entry strings are shared (they come from the compiled policy), the repository and the
// digest in the key (from the image and the resolver) and the one in the result (from the
// signature payload) are separate strings.
func fillCache(tb testing.TB, c *cache.Cache, n int) {
	tb.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		digest := "sha256:" + hex.EncodeToString(sum[:])
		key := cache.Key{PolicyUID: "file:ClusterPolicy/verify-signatures", PolicyVersion: "sha256:0123456789abcdef", Rule: "verify-signatures/check-signature", Entry: 0,
			Repository: strings.Clone("ghcr.io/acme/app"), Digest: digest} // the engine builds the repository per key
		res, _, err := c.Do(ctx, key, func(context.Context) (verify.Result, error) {
			return verify.Result{Passed: true, Digest: strings.Clone(digest)}, nil
		})
		if err != nil || !res.Passed {
			tb.Fatalf("%v %+v", err, res)
		}
	}
}

// vmRSS returns the process's resident set size from /proc/<pid>/status (Linux), or 0.
func vmRSS(pid string) uint64 { return uint64(procStatusBytes(pid, "VmRSS:")) }

// procStatusBytes returns a kB field of /proc/<pid>/status in bytes, or 0.
func procStatusBytes(pid, field string) int64 {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// cacheMemory fills a cache with n entries and returns the growth of the Go heap in use and of
// the process RSS (0 when unknown), both after a GC.
func cacheMemory(tb testing.TB, n int) (heap, rss int64) {
	tb.Helper()
	settle := func() (runtime.MemStats, uint64) {
		runtime.GC()
		debug.FreeOSMemory() // a GC too, then freed pages go back to the OS: RSS is comparable
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m, vmRSS("self")
	}
	m0, rss0 := settle()
	c, err := cache.New(cache.Options{Enabled: true, MaxSize: n})
	if err != nil {
		tb.Fatal(err)
	}
	fillCache(tb, c, n)
	m1, rss1 := settle()
	if got := c.Stats().Entries; got != n {
		tb.Fatalf("cache holds %d entries, want %d", got, n)
	}
	runtime.KeepAlive(c)
	if rss0 > 0 && rss1 > 0 {
		rss = int64(rss1) - int64(rss0)
	}
	return int64(m1.HeapInuse) - int64(m0.HeapInuse), rss
}

// TestServeCacheMemory: 10,000 cached pass results (--imageVerifyCacheMaxSize=10000) stay far
// below 50 MiB of heap.
func TestServeCacheMemory(t *testing.T) {
	const n = 10000
	heap, rss := cacheMemory(t, n)
	t.Logf("%d cache entries: heap in use +%.1f MiB (%d B/entry), RSS +%.1f MiB", n, float64(heap)/(1<<20), heap/n, float64(rss)/(1<<20))
	if heap > 50<<20 {
		t.Errorf("%d entries take %d bytes of heap, want < 50 MiB", n, heap)
	}
}

// signDigests writes, for each digest, a cosign signature in the .sig tag of repo (cosign's
// legacy layout, as `cosign sign --key K --tlog-upload=false` writes it), without pushing any
// image: a verification by digest reads only the signature tag. It is the cheap way to give
// vouch thousands of distinct signed digests.
func signDigests(tb testing.TB, w *loadWorld, repo string, digests []string) {
	tb.Helper()
	signer, err := signature.LoadSigner(w.key.Private, crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	work := make(chan string)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				if err := signDigest(signer, w.reg.Host+"/"+repo, d); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, d := range digests {
		work <- d
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
}

func signDigest(signer signature.Signer, repo, digest string) error {
	ref, err := name.NewDigest(repo + "@" + digest)
	if err != nil {
		return err
	}
	pl, err := payload.Cosign{Image: ref}.MarshalJSON()
	if err != nil {
		return err
	}
	raw, err := signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return err
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return err
	}
	sigs, err := ocimutate.AppendSignatures(empty.Signatures(), false, sig)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(repo + ":" + strings.Replace(digest, ":", "-", 1) + ".sig")
	if err != nil {
		return err
	}
	return remote.Write(tag, sigs)
}

// BenchmarkServeMemory reports the memory held by 10,000 cached results:
//
//	cache-10k   heap growth of this process after filling a Cache with 10,000 pass results
//	process     RSS of a real `vouch serve --imageVerifyCacheMaxSize=10000` process (the binary
//	            TestMain built): idle with its policy loaded, then after verifying 10,000
//	            distinct signed digests (1,000 admissions of Pods with 10 containers), checked
//	            to be all held by a second pass that makes no registry request
func BenchmarkServeMemory(b *testing.B) {
	b.Run("cache-10k", func(b *testing.B) {
		const n = 10000
		heap, rss := cacheMemory(b, n)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(heap)/n, "heap-B/entry")
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	})
	b.Run("process", func(b *testing.B) {
		if vmRSS("self") == 0 {
			b.Skip("RSS is read from /proc (Linux)")
		}
		const n, perPod = 10000, 10
		w := newLoadWorld(b)
		digests := make([]string, n)
		for i := range digests {
			sum := sha256.Sum256([]byte("image " + strconv.Itoa(i)))
			digests[i] = "sha256:" + hex.EncodeToString(sum[:])
		}
		start := time.Now()
		signDigests(b, w, "mem/app", digests)
		b.Logf("signed %d digests in %v", n, time.Since(start).Round(time.Millisecond))

		tg := startVouchServe(b, "--policies", w.policy, "--imageVerifyCacheMaxSize", strconv.Itoa(n))
		pid, addr := strconv.Itoa(tg.pid), tg.addr
		client := tg.client()
		defer client.CloseIdleConnections()
		idle := vmRSS(pid)

		admitAll := func() {
			var wg sync.WaitGroup
			work := make(chan int)
			var failed atomic.Int64
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for p := range work {
						images := make([]string, perPod)
						for j := range images {
							images[j] = w.reg.Host + "/mem/app@" + digests[p*perPod+j]
						}
						uid := "mem-" + strconv.Itoa(p)
						if err := postReview(context.Background(), client, "https://"+addr+"/mutate", uid, podReview(images...)(uid), checkReply(0)); err != nil {
							if failed.Add(1) == 1 {
								b.Errorf("admission %d: %v", p, err)
							}
						}
					}
				}()
			}
			for p := 0; p < n/perPod; p++ {
				work <- p
			}
			close(work)
			wg.Wait()
			if failed.Load() > 0 {
				b.Fatalf("%d admissions failed", failed.Load())
			}
		}
		before := w.counts.snapshot()
		start = time.Now()
		admitAll()
		b.Logf("verified %d digests in %v; registry requests %v", n, time.Since(start).Round(time.Millisecond), w.counts.since(before))
		time.Sleep(200 * time.Millisecond)
		filled := vmRSS(pid)
		before = w.counts.snapshot()
		admitAll()
		if again := w.counts.since(before); len(again) > 0 {
			b.Errorf("second pass made registry requests %v: the cache does not hold the %d entries", again, n)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(idle)/(1<<20), "idle-rss-MiB")
		b.ReportMetric(float64(filled)/(1<<20), "10k-rss-MiB")
		b.Logf("vouch serve RSS: idle %.1f MiB, with %d cache entries %.1f MiB", float64(idle)/(1<<20), n, float64(filled)/(1<<20))
	})
}
