//go:build integration && linux

package main

// Hostile registries as processes see them (issue 8; landscape §4.4 groups 1, 9 and 10): one
// hostile registry of the project's own (internal/fixture.Hostile, an http.Handler in front of
// go-containerregistry's registry on 127.0.0.1 that misbehaves per repository — trickle, hang,
// huge, claims, too many signatures, flip, 429, 5xx, down, redirect loop, malformed — and a
// second one whose token realm is a login server on another port that records what it
// receives), images signed by the real cosign CLI, and the real distribution registry for the
// healthy baseline. Each class is a named test running `vouch apply` and `vouch serve` as
// processes, asserting the verdict class, the wall time and the peak memory (RSS high-water
// mark) of the process.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
)

const (
	// hostileApplyTimeout is `vouch apply --timeout`; hostileAdmissionTimeout the API server's
	// ?timeout= on each admission (vouch answers inside it, minus its margin).
	hostileApplyTimeout     = 2 * time.Second
	hostileAdmissionTimeout = 3 * time.Second
	// hostileSlack is what a process may take beyond its budget: starting, reading the policy,
	// answering (a loaded 2-core machine).
	hostileSlack = 1500 * time.Millisecond
	// hostileMaxRSS bounds the peak resident memory of `vouch apply` and of `vouch serve` after
	// every case of a class: a healthy run peaks near 70 MiB (TestHostileBaseline logs it); a
	// registry serving or claiming 2 GiB must not raise that by more than the caps (a 4 MiB
	// manifest, a 16 MiB blob) and the runtime's slack.
	hostileMaxRSS = 128 << 20
)

// hostileWorld is what every hostile test shares: the registries and cosign-signed images.
type hostileWorld struct {
	reg     *fixture.Hostile  // per-repository behaviours
	realm   *fixture.Hostile  // every request needs a token from realm.Login, a foreign realm
	key     keyPair           // cosign's
	signed  map[string]string // behaviour → digest of app-<behaviour>:v1, signed with key
	flipped string            // digest of app-flip:unsigned, the flip's other answer
	dir     string            // policy.yaml and credentials.json
}

var (
	hostileMu     sync.Mutex
	hostileShared *hostileWorld
)

// hostile returns the shared world, building it on first use. Each behaviour has an image of
// its own (the cache is keyed by digest: images shared between behaviours would answer for
// each other), app-<behaviour>:v1, pushed and signed by cosign v2 through the plain repository
// name and read through <host>/<behaviour>/app-<behaviour>:v1.
func hostile(t *testing.T) *hostileWorld {
	t.Helper()
	hostileMu.Lock()
	defer hostileMu.Unlock()
	if hostileShared != nil {
		return hostileShared
	}
	env := newToolEnv(t)
	cosign := toolPath(t, "cosign")
	w := &hostileWorld{reg: fixture.StartHostile(nil), realm: fixture.StartHostile(nil), signed: map[string]string{}}
	var err error
	if w.dir, err = os.MkdirTemp("", "vouch-hostile-"); err != nil {
		t.Fatal(err)
	}
	w.key = env.generateKeyPair(t, cosign, "hostile")
	// The world outlives this test (and its TempDir): keep the key pair with the world.
	for _, f := range []*string{&w.key.private, &w.key.public} {
		b, err := os.ReadFile(*f)
		if err != nil {
			t.Fatal(err)
		}
		*f = filepath.Join(w.dir, filepath.Base(*f))
		writeFile(t, *f, string(b))
	}
	sign := func(host, repo string) string {
		d := pushRandom(t, host, repo+":v1")
		env.mustRun(t, "", nil, cosign, "sign", "--key", w.key.private, "--tlog-upload=false", "-y", host+"/"+repo+"@"+d)
		return d
	}
	for _, b := range fixture.Behaviours {
		w.signed[b] = sign(w.reg.Host, "app-"+b)
	}
	w.flipped = pushRandom(t, w.reg.Host, "app-"+fixture.Flip+":unsigned")
	w.signed[fixture.ForeignRealm] = sign(w.realm.Host, "app")
	w.realm.SetMode(fixture.ForeignRealm)
	writeFile(t, filepath.Join(w.dir, "policy.yaml"), keyPolicy{keys: []string{w.key.pem}}.yaml())
	login := w.realm.Login
	creds, err := json.Marshal(map[string]any{"auths": map[string]any{w.realm.Host: map[string]string{"username": login.User, "password": login.Password}}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.dir, "credentials.json"), string(creds))
	hostileShared = w
	return w
}

// image is the signed image of behaviour b as the hostile registry serves it.
func (w *hostileWorld) image(b string) string { return w.reg.Host + "/" + b + "/app-" + b + ":v1" }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hostileCase is one image and what vouch must make of it.
type hostileCase struct {
	image   string // full reference
	result  string // pass, fail or error
	message string // in the result's message (apply) and the denial (serve)
	pinned  string // pass: the digest the image is pinned to
	// unpinned: the image must not be written pinned. Kyverno pins an image's digest whatever
	// the verdict (a failed image is denied, or admitted under Audit at the digest that failed),
	// so only a digest vouch could not trust — unresolved, or bytes that do not parse — must
	// never be written.
	unpinned bool
}

// procResult is a finished `vouch apply`.
type procResult struct {
	code    int
	stdout  string
	stderr  string
	elapsed time.Duration
	maxRSS  int64 // bytes
}

// runVouch runs the vouch binary to completion, with a private HOME, and measures it.
func runVouch(t *testing.T, args ...string) procResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vouchBinary, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := procResult{stdout: out.String(), stderr: errOut.String(), elapsed: time.Since(start)}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("vouch %s: %v", strings.Join(args, " "), err)
	}
	r.code = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	return r
}

// applyReport is the part of `vouch apply -o json` the tests read.
type applyReport struct {
	Results []struct {
		Result, Message string
		Images          map[string]string
	}
	Resources []struct {
		Spec struct {
			Containers []struct{ Image string }
		}
	}
}

// checkApply runs `vouch apply` on a Pod with c.image and checks the verdict, the pin, the time
// and the memory.
func (w *hostileWorld) checkApply(t *testing.T, c hostileCase, extra ...string) {
	t.Helper()
	pod := filepath.Join(t.TempDir(), "pod.yaml")
	writeFile(t, pod, podYAML(c.image))
	args := append([]string{"apply", filepath.Join(w.dir, "policy.yaml"), "-r", pod, "-o", "json",
		"--timeout", hostileApplyTimeout.String(), "--registryCredentialHelpers", ""}, extra...)
	r := runVouch(t, args...)
	t.Logf("apply %s: exit %d in %v, max RSS %d MiB", c.image, r.code, r.elapsed.Round(time.Millisecond), r.maxRSS>>20)
	var rep applyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Results) != 1 {
		t.Fatalf("apply %s: exit %d, output %q (%v)\nstderr: %s", c.image, r.code, r.stdout, err, r.stderr)
	}
	got := rep.Results[0]
	t.Logf("apply %s: %s %q", c.image, got.Result, got.Message)
	if got.Result != c.result || !strings.Contains(got.Message, c.message) {
		t.Errorf("apply %s: %s %q, want %s containing %q", c.image, got.Result, got.Message, c.result, c.message)
	}
	if wantCode := map[bool]int{true: 0, false: 1}[c.result == "pass"]; r.code != wantCode {
		t.Errorf("apply %s: exit %d, want %d", c.image, r.code, wantCode)
	}
	var written string
	if len(rep.Resources) == 1 && len(rep.Resources[0].Spec.Containers) == 1 {
		written = rep.Resources[0].Spec.Containers[0].Image
	}
	if c.result == "pass" && written != c.image+"@"+c.pinned {
		t.Errorf("apply %s: image written as %q, want pinned to %s", c.image, written, c.pinned)
	}
	if c.unpinned && strings.Contains(written, "@sha256:") {
		t.Errorf("apply %s: %s, yet the image is written pinned: %q", c.image, c.result, written)
	}
	if bound := hostileApplyTimeout + hostileSlack; r.elapsed > bound {
		t.Errorf("apply %s took %v, bound %v (--timeout %v)", c.image, r.elapsed, bound, hostileApplyTimeout)
	}
	if r.maxRSS == 0 || r.maxRSS > hostileMaxRSS {
		t.Errorf("apply %s: peak RSS %d MiB, bound %d MiB", c.image, r.maxRSS>>20, hostileMaxRSS>>20)
	}
}

// hostileServe is a `vouch serve` process enforcing the world's policy.
type hostileServe struct {
	target *loadTarget
	client *http.Client
}

func (w *hostileWorld) serve(t *testing.T, extra ...string) *hostileServe {
	t.Helper()
	target := startVouchServe(t, append([]string{"--policies", filepath.Join(w.dir, "policy.yaml"), "--registryCredentialHelpers", ""}, extra...)...)
	s := &hostileServe{target: target, client: target.client()}
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

// admissionReply is the part of an AdmissionReview response the tests read.
type admissionReply struct {
	Response struct {
		UID     string
		Allowed bool
		Patch   []byte
		Status  *struct{ Message string }
	}
}

// admit sends a Pod with c.image to /mutate with ?timeout= as the API server does, and checks
// the decision (pass: allowed and pinned; fail or error: denied, naming why) and its time.
func (s *hostileServe) admit(t *testing.T, c hostileCase) {
	t.Helper()
	uid := fmt.Sprintf("hostile-%d", time.Now().UnixNano())
	url := "https://" + s.target.addr + "/mutate?timeout=" + strconv.Itoa(int(hostileAdmissionTimeout.Seconds())) + "s"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var body []byte
	start := time.Now()
	err := postReview(ctx, s.client, url, uid, podReview(c.image)(uid), func(_ string, b []byte) error { body = b; return nil })
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("admitting %s: %v", c.image, err)
	}
	var r admissionReply
	if err := json.Unmarshal(body, &r); err != nil || r.Response.UID != uid {
		t.Fatalf("admitting %s: response %s (%v)", c.image, body, err)
	}
	msg := ""
	if r.Response.Status != nil { // Kyverno's YAML-formatted denial: long lines are folded
		msg = strings.Join(strings.Fields(r.Response.Status.Message), " ")
	}
	t.Logf("serve %s: allowed=%v in %v %q", c.image, r.Response.Allowed, elapsed.Round(time.Millisecond), msg)
	pin := c.image + "@" + c.pinned
	switch {
	case c.result == "pass" && (!r.Response.Allowed || !strings.Contains(string(r.Response.Patch), pin)):
		t.Errorf("serve %s: allowed=%v patch %s, want admitted and pinned to %s", c.image, r.Response.Allowed, r.Response.Patch, c.pinned)
	case c.result != "pass" && (r.Response.Allowed || !strings.Contains(msg, c.message)):
		t.Errorf("serve %s: allowed=%v %q, want denied (%s) with %q", c.image, r.Response.Allowed, msg, c.result, c.message)
	}
	if bound := hostileAdmissionTimeout; elapsed > bound {
		t.Errorf("serve %s answered in %v, after the API server's timeout %v", c.image, elapsed, bound)
	}
}

// checkMemory checks the serve process's peak RSS after a class's cases.
func (s *hostileServe) checkMemory(t *testing.T) {
	t.Helper()
	hwm := procStatusBytes(strconv.Itoa(s.target.pid), "VmHWM:")
	t.Logf("serve: peak RSS %d MiB", hwm>>20)
	if hwm == 0 || hwm > hostileMaxRSS {
		t.Errorf("serve: peak RSS %d MiB, bound %d MiB", hwm>>20, hostileMaxRSS>>20)
	}
}

// runHostile checks every case through `vouch apply`, then through one `vouch serve`.
func (w *hostileWorld) runHostile(t *testing.T, cases []hostileCase, extra ...string) {
	t.Helper()
	for _, c := range cases {
		w.checkApply(t, c, extra...)
	}
	s := w.serve(t, extra...)
	for _, c := range cases {
		s.admit(t, c)
	}
	s.checkMemory(t)
}

// could is the start of every "could not verify" message for image.
func could(image string) string { return "could not verify image " + image + ": " }

// TestHostileBaseline: the same policy passes and pins a cosign-signed image on the real
// distribution registry and through the hostile registry's healthy name, and fails an unsigned
// one — the failures of the other tests are the registries' doing, not the policy's.
func TestHostileBaseline(t *testing.T) {
	w := hostile(t)
	env := newToolEnv(t)
	host := startDistribution(t)
	d := pushRandom(t, host, "app:v1")
	env.mustRun(t, "", nil, toolPath(t, "cosign"), "sign", "--key", w.key.private, "--tlog-upload=false", "-y", host+"/app@"+d)
	pushRandom(t, host, "app:unsigned")
	w.runHostile(t, []hostileCase{
		{image: host + "/app:v1", result: "pass", message: "verified image signatures", pinned: d},
		{image: host + "/app:unsigned", result: "fail", message: "no signatures found"},
		{image: w.image(fixture.Healthy), result: "pass", message: "verified image signatures", pinned: w.signed[fixture.Healthy]},
	})
}

// TestHostileDeadlines (issue 8 item 1, landscape group 10): a registry that trickles its
// manifest a byte at a time, and one that never answers a HEAD, cost "could not verify" when
// the budget runs out — `vouch apply --timeout`, the admission's ?timeout= — never a hang.
func TestHostileDeadlines(t *testing.T) {
	w := hostile(t)
	var cases []hostileCase
	for _, b := range []string{fixture.Trickle, fixture.Hang} {
		img := w.image(b)
		cases = append(cases, hostileCase{image: img, result: "error", message: could(img) + "the verification did not finish within the admission time budget", unpinned: true})
	}
	w.runHostile(t, cases)
}

// TestHostileCaps (issue 8 item 2, landscape group 9): a registry serving an endless signature
// layer (2 GiB, no Content-Length), one claiming 2 GiB manifests and one listing 1,000
// signature layers cost at most what the descriptor or the cap allows: each image fails, the
// message naming the check or the cap, and the process stays under hostileMaxRSS.
func TestHostileCaps(t *testing.T) {
	w := hostile(t)
	w.runHostile(t, []hostileCase{
		// go-containerregistry reads a blob up to its descriptor's size and checks the digest.
		{image: w.image(fixture.Huge), result: "fail", message: "error verifying sha256 checksum after reading"},
		{image: w.image(fixture.Claims), result: "fail", message: "exceeds the 4194304-byte limit (size 2147483648)", unpinned: true},
		{image: w.image(fixture.TooMany), result: "fail", message: "holds 1000 signatures, more than the limit of 64"},
	})
}

// TestHostileRedirects (issue 8 item 3, landscape group 9): a registry redirecting every
// request to itself is given up after 5 hops: could not verify, at once.
func TestHostileRedirects(t *testing.T) {
	w := hostile(t)
	img := w.image(fixture.RedirectLoop)
	w.runHostile(t, []hostileCase{{image: img, result: "error", message: "stopped after 5 redirects", unpinned: true}})
}

// TestHostileCredentials (issue 8 item 4, landscape group 9): a registry whose Bearer realm is
// a login server on another port never receives the password vouch holds for it (a canary, in
// a docker config given with --registry-credentials): the image is "could not verify …
// authentication failed", and the login server recorded no request carrying the password.
func TestHostileCredentials(t *testing.T) {
	w := hostile(t)
	img := w.realm.Host + "/app:v1"
	w.runHostile(t, []hostileCase{{image: img, result: "error", message: could(img) + "registry authentication failed", unpinned: true}},
		"--registry-credentials", filepath.Join(w.dir, "credentials.json"))
	if leaked := w.realm.Login.Leaked(); len(leaked) > 0 {
		t.Errorf("the foreign realm received the password:\n%s", strings.Join(leaked, "\n"))
	}
	t.Logf("the login server received %d requests, none with the password", len(w.realm.Login.Requests()))
}

// TestHostileRateLimits (issue 8 item 5, landscape group 9): 429 with Retry-After, 5xx and a
// registry closing every connection are "could not verify" (failurePolicy Fail denies), never
// "unsigned", within the budget.
func TestHostileRateLimits(t *testing.T) {
	w := hostile(t)
	var cases []hostileCase
	for _, b := range []string{fixture.RateLimited, fixture.ServerError, fixture.Down} {
		img := w.image(b)
		cases = append(cases, hostileCase{image: img, result: "error", message: could(img), unpinned: true})
	}
	w.runHostile(t, cases)
}

// TestHostileMalformed (issue 8 item 6, landscape group 15): a registry answering the tag with
// truncated manifest JSON (announcing, and serving by digest, the truncated bytes' own digest)
// fails the image, and its digest is not pinned.
func TestHostileMalformed(t *testing.T) {
	w := hostile(t)
	img := w.image(fixture.Malformed)
	w.runHostile(t, []hostileCase{{image: img, result: "fail", message: "failed to verify image " + img + ": resolving " + img + ": manifest sha256:", unpinned: true},
		{image: img, result: "fail", message: "does not parse: not a JSON manifest", unpinned: true}})
}

// TestHostileTagIntegrity (issue 8 item 7, landscape group 1, CVE-2022-47633): a registry
// answering app-flip:v1 with the signed and the unsigned image on alternate requests never gets
// the unsigned image admitted: each evaluation resolves the tag once and pins the digest it
// verified — a pass is pinned to the signed digest, the unsigned digest only ever fails. Both
// outcomes must show up, or the flip was never exercised.
func TestHostileTagIntegrity(t *testing.T) {
	w := hostile(t)
	img, signed := w.image(fixture.Flip), w.signed[fixture.Flip]
	outcomes := map[string]int{}
	check := func(via string, passed bool, written string) {
		outcomes[map[bool]string{true: "pass", false: "fail"}[passed]]++
		if passed != strings.Contains(written, img+"@"+signed) && !(!passed && !strings.Contains(written, "@sha256:")) {
			t.Errorf("%s: passed=%v, written %q: a pass must be pinned to %s, a failure never", via, passed, written, signed)
		}
	}
	for range 4 {
		pod := filepath.Join(t.TempDir(), "pod.yaml")
		writeFile(t, pod, podYAML(img))
		r := runVouch(t, "apply", filepath.Join(w.dir, "policy.yaml"), "-r", pod, "-o", "json", "--timeout", hostileApplyTimeout.String(), "--registryCredentialHelpers", "")
		var rep applyReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Results) != 1 || len(rep.Resources) != 1 {
			t.Fatalf("apply: %q (%v) %s", r.stdout, err, r.stderr)
		}
		res := rep.Results[0]
		written := rep.Resources[0].Spec.Containers[0].Image
		t.Logf("apply %s: %s %q, written %s", img, res.Result, res.Message, written)
		check("apply", res.Result == "pass", written)
		if res.Result != "pass" && !strings.Contains(written, "@"+w.flipped) {
			t.Errorf("apply: %s, written %q: a failure here is the unsigned image, pinned to what was verified (%s)", res.Result, written, w.flipped)
		}
		if r.elapsed > hostileApplyTimeout+hostileSlack || r.maxRSS > hostileMaxRSS {
			t.Errorf("apply took %v, peak RSS %d MiB", r.elapsed, r.maxRSS>>20)
		}
	}
	s := w.serve(t)
	for i := range 6 {
		uid := "flip-" + strconv.Itoa(i)
		var body []byte
		start := time.Now()
		err := postReview(context.Background(), s.client, "https://"+s.target.addr+"/mutate?timeout=3s", uid, podReview(img)(uid),
			func(_ string, b []byte) error { body = b; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if elapsed := time.Since(start); elapsed > hostileAdmissionTimeout {
			t.Errorf("admission %d took %v", i, elapsed)
		}
		var r admissionReply
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		t.Logf("serve %s: allowed=%v patch %s", img, r.Response.Allowed, r.Response.Patch)
		check("serve", r.Response.Allowed, string(r.Response.Patch))
	}
	s.checkMemory(t)
	if outcomes["pass"] == 0 || outcomes["fail"] == 0 {
		t.Errorf("outcomes %v: the flip was not exercised (want passes and failures)", outcomes)
	}
}
