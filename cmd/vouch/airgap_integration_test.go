//go:build integration && linux

package main

// The air gap (landscape §4.4 group 13): key-only policies need no network beyond the
// registry. The images are signed with the real cosign CLI into a real distribution registry;
// then this test binary runs again in a network namespace of its own, where only loopback
// exists, and there runs the registry (same storage, same address) and vouch.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v3/pkg/cosign/bundle"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/report"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// airgapEnv, set to the path of an airgapWorld file, makes TestLandscapeGroup13AirGap the
// air-gapped child.
const airgapEnv = "VOUCH_AIRGAP_CHILD"

// airgapOK is the line the child prints once every check passed.
const airgapOK = "AIRGAP-OK"

// airgapWorld is what the parent hands the child: where the registry's storage is and what it
// holds.
type airgapWorld struct {
	Host    string // 127.0.0.1:port of the registry, in both namespaces
	Storage string // the registry's storage folder
	// app:signed is signed by the cosign CLI with Key, --tlog-upload=false; app:unsigned has no
	// signature; app:logged is signed with LoggedKey and carries a Rekor bundle (SET) from the
	// test log whose key TrustedRoot (a trusted_root.json) names.
	Key, LoggedKey           string // PEM public keys
	TrustedRoot              string
	Signed, Unsigned, Logged string // digests
	NetNS, UserNS            string // the parent's namespaces (/proc/self/ns/{net,user})
}

// TestLandscapeGroup13AirGap: key-only policies need no network beyond the registry — no TUF,
// no Rekor, no DNS (landscape §4.4 group 13). Images signed by the cosign CLI
// (--tlog-upload=false) are pushed to a distribution registry; the test binary then re-executes
// itself in new user, network, mount and PID namespaces (no root needed; the kernel kills
// whatever it started when it exits), where the only interface is loopback: it checks the gap
// (no interface but lo, DNS fails, public addresses are unreachable), points /etc/resolv.conf
// at a resolver on 127.0.0.1 that records and refuses every query, and runs the registry and
// vouch there, with an empty HOME and no proxy. `vouch apply` passes the signed image by tag
// and pins its digest, fails the unsigned one, reports a key policy that needs Rekor without
// its key as "could not verify" (error, never a pass, never a wait on TUF), and with the log's
// key from a vouch.dev/trusted-root given inline passes a signature carrying a Rekor bundle and
// fails one without; `vouch serve` (policies from files, no cluster) admits the signed Pod with
// a pin and denies the unsigned one. No DNS query
// is made (a hostname image, resolved through the recorder, shows the recorder sees vouch's
// queries) and nothing is written to HOME (no ~/.sigstore: no TUF client).
func TestLandscapeGroup13AirGap(t *testing.T) {
	if path := os.Getenv(airgapEnv); path != "" {
		airgapChild(t, path)
		return
	}
	cosignBin, registryBin := toolPath(t, "cosign"), toolPath(t, "registry")
	env := newToolEnv(t)
	w := airgapWorld{Storage: filepath.Join(t.TempDir(), "storage")}
	var stop func()
	for range 3 { // a free port can be taken between probing it and the registry binding it
		var err error
		if w.Host, stop, err = startDistributionAt(t, registryBin, w.Storage, freeLoopbackAddr(t), ""); err == nil {
			break
		}
		t.Log(err)
	}
	if stop == nil {
		t.Fatal("cannot start the distribution registry")
	}
	key := env.generateKeyPair(t, cosignBin, "k")
	w.Key = key.pem
	w.Signed, w.Unsigned, w.Logged = pushRandom(t, w.Host, "app:signed"), pushRandom(t, w.Host, "app:unsigned"), pushRandom(t, w.Host, "app:logged")
	env.mustRun(t, "", nil, cosignBin, "sign", "--key", key.private, "--tlog-upload=false", "-y", w.Host+"/app@"+w.Signed)

	// The cosign CLI needs a live Rekor to store a bundle with a signature: app:logged is signed
	// by vouch's signer (cosign's layout) with a bundle from a test log.
	rekor, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	logged, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	w.LoggedKey = logged.PEM
	tr, err := fixture.TrustedRootJSON(fixture.TrustedRootOptions{Rekor: []*fixture.Key{rekor}})
	if err != nil {
		t.Fatal(err)
	}
	w.TrustedRoot = string(tr)
	d, err := name.NewDigest(w.Host + "/app@" + w.Logged)
	if err != nil {
		t.Fatal(err)
	}
	if err := cosign.Sign(context.Background(), d, logged.Private, cosign.SignOptions{
		TransparencyLog: func(payload, sig, signer []byte) (*bundle.RekorBundle, error) {
			return fixture.RekorBundle(rekor, payload, sig, signer, time.Now())
		},
	}); err != nil {
		t.Fatal(err)
	}
	stop()

	w.NetNS, w.UserNS = nsLink(t, "net"), nsLink(t, "user")
	worldFile := filepath.Join(t.TempDir(), "world.json")
	data, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(worldFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLandscapeGroup13AirGap$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), airgapEnv+"="+worldFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig follows the thread that started the child: keep it until the child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start the test binary in new user, network, mount and PID namespaces (are unprivileged user namespaces disabled? try `unshare -rn true`): %v", err)
	}
	err = cmd.Wait()
	t.Logf("air-gapped child (exit %d, %v):\n%s", cmd.ProcessState.ExitCode(), time.Since(start).Round(time.Millisecond), out)
	switch {
	case err != nil:
		t.Fatalf("the air-gapped child failed: %v", err)
	case !strings.Contains(out.String(), "\n"+airgapOK+"\n"), !strings.Contains(out.String(), "--- PASS: TestLandscapeGroup13AirGap"):
		t.Fatalf("the air-gapped child exited 0 without printing %s and passing", airgapOK)
	}
}

// airgapChild is the test in the air gap: new user, network, mount and PID namespaces.
func airgapChild(t *testing.T, worldFile string) {
	data, err := os.ReadFile(worldFile)
	if err != nil {
		t.Fatal(err)
	}
	var w airgapWorld
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}

	// The namespace: not the parent's, only loopback, and it is up.
	if netNS, userNS := nsLink(t, "net"), nsLink(t, "user"); netNS == w.NetNS || userNS == w.UserNS {
		t.Fatalf("not in namespaces of its own: %s, %s (the parent's: %s, %s)", netNS, userNS, w.NetNS, w.UserNS)
	}
	if err := loopbackUp(); err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
	checkAirGap(t)

	// From here every process resolves names through a resolver on 127.0.0.1 that records
	// and refuses each query.
	dns := startDNSRecorder(t)
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("making the mounts private: %v", err)
	}
	if err := syscall.Mount(resolvConf, "/etc/resolv.conf", "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting the recording resolver's resolv.conf over /etc/resolv.conf: %v", err)
	}
	// /proc of this PID namespace: /proc/<pid> of the processes started here (their memory).
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		t.Fatalf("mounting /proc for the PID namespace: %v", err)
	}

	// vouch's environment: an empty HOME, no proxy, no docker config, no TUF cache folder.
	home, tmp := t.TempDir(), t.TempDir()
	for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "no_proxy", "all_proxy", "DOCKER_CONFIG", "TUF_ROOT", "SIGSTORE_ROOT_FILE", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"} {
		os.Unsetenv(k)
	}
	os.Setenv("HOME", home)
	os.Setenv("TMPDIR", tmp)
	// netdns=go: every lookup goes to the servers of /etc/resolv.conf, here the recorder (the
	// C library's nss modules, such as systemd-resolved's, may ask a daemon over a Unix socket,
	// which a network namespace does not cut). Release builds (CGO_ENABLED=0) resolve so anyway.
	os.Setenv("GODEBUG", "netdns=go")
	vouchEnv := []string{"HOME=" + home, "TMPDIR=" + tmp, "GODEBUG=netdns=go"}

	if _, stop, err := startDistributionAt(t, toolPath(t, "registry"), w.Storage, w.Host, ""); err != nil {
		t.Fatal(err)
	} else {
		t.Cleanup(stop)
	}

	// The control: an image named by host name is resolved through the recorder, which
	// refuses; vouch cannot verify it.
	rep, _, took := airgapApply(t, vouchEnv, airgapPolicy("key-only", w.Key, true, ""), "registry.example.com/app:v1")
	if len(rep.Results) != 1 || rep.Results[0].Result != "error" {
		t.Errorf("an image on an unresolvable registry: results %+v, want one error", rep.Results)
	}
	if q := dns.take(); !strings.Contains(strings.Join(q, " "), "registry.example.com.") {
		t.Fatalf("the recording resolver saw %q, not vouch's queries for registry.example.com: the test cannot see DNS", q)
	}
	t.Logf("control: registry.example.com/app:v1 is %s in %v (%s)", rep.Results[0].Result, took.Round(time.Millisecond), rep.Results[0].Message)

	signed, unsigned, logged := w.Host+"/app:signed", w.Host+"/app:unsigned", w.Host+"/app:logged"
	keyOnly := airgapPolicy("key-only", w.Key, true, "")
	for _, c := range []struct {
		name   string
		policy string
		verifyCase
	}{
		{"key-only, signed", keyOnly, verifyCase{image: signed, digest: w.Signed, want: "pass", msg: "verified image signatures for " + signed}},
		{"key-only, unsigned", keyOnly, verifyCase{image: unsigned, digest: w.Unsigned, want: "fail", msg: ".attestors[0].entries[0].keys: no signatures found"}},
		// The trusted root is the Rekor key: a Rekor bundle verifies offline; a signature
		// without one is not logged.
		{"Rekor from the trusted root, logged", airgapPolicy("trusted-root", w.LoggedKey, false, w.TrustedRoot), verifyCase{image: logged, digest: w.Logged, want: "pass", msg: "verified image signatures for " + logged}},
		{"Rekor from the trusted root, not logged", airgapPolicy("trusted-root", w.Key, false, w.TrustedRoot), verifyCase{image: signed, digest: w.Signed, want: "fail", msg: ".attestors[0].entries[0].keys: "}},
	} {
		rep, code, took := airgapApply(t, vouchEnv, c.policy, c.image)
		t.Logf("vouch apply, %s: %s in %v (%s)", c.name, resultOf(rep), took.Round(time.Millisecond), messageOf(rep))
		checkVerifyCase(t, c.verifyCase, rep)
		if want := map[string]int{"pass": exitOK, "fail": exitFailed}[c.want]; code != want {
			t.Errorf("%s: vouch apply exited %d, want %d", c.name, code, want)
		}
		checkQuick(t, c.name, took)
	}

	// A key policy that needs Rekor (no rekor block: Kyverno's default, the public-good log)
	// and has no key for it: could not verify, naming what is missing — no TUF, no Rekor.
	rep, code, took := airgapApply(t, vouchEnv, airgapPolicy("needs-rekor", w.Key, false, ""), signed)
	t.Logf("vouch apply, Rekor needed, no key: %s in %v (%s)", resultOf(rep), took.Round(time.Millisecond), messageOf(rep))
	const noRekor = "could not verify image " + "%s: .attestors[0].entries[0].keys: cannot verify offline: no Rekor public key (rekor.pubkey, or rekor.ignoreTlog: true)"
	if len(rep.Results) != 1 || rep.Results[0].Result != "error" || !strings.HasPrefix(rep.Results[0].Message, fmt.Sprintf(noRekor, signed)) || code != exitFailed {
		t.Errorf("Rekor needed, no key: exit %d, results %+v, want one error %q", code, rep.Results, fmt.Sprintf(noRekor, signed))
	}
	checkQuick(t, "Rekor needed, no key", took)

	// vouch serve: policies from a file, no cluster.
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(keyOnly), 0o600); err != nil {
		t.Fatal(err)
	}
	target := startVouchServe(t, "--policies", policyFile)
	client := target.client()
	defer client.CloseIdleConnections()
	url := "https://" + target.addr + "/mutate?timeout=10s"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	if err := postReview(ctx, client, url, "uid-signed", podReview(signed)("uid-signed"), checkReply(1)); err != nil {
		t.Errorf("vouch serve, signed Pod by tag: %v", err)
	}
	took = time.Since(start)
	t.Logf("vouch serve, signed Pod: admitted with a pin in %v", took.Round(time.Millisecond))
	checkQuick(t, "vouch serve, signed Pod", took)
	start = time.Now()
	if err := postReview(ctx, client, url, "uid-unsigned", podReview(unsigned)("uid-unsigned"), checkDenied("no signatures found")); err != nil {
		t.Errorf("vouch serve, unsigned Pod: %v", err)
	}
	took = time.Since(start)
	t.Logf("vouch serve, unsigned Pod: denied in %v", took.Round(time.Millisecond))
	checkQuick(t, "vouch serve, unsigned Pod", took)
	if hwm := procStatusBytes(strconv.Itoa(target.pid), "VmHWM:"); hwm == 0 || hwm > hostileMaxRSS {
		t.Errorf("vouch serve: peak RSS %d MiB, bound %d MiB", hwm>>20, hostileMaxRSS>>20)
	}

	if q := dns.take(); len(q) > 0 {
		t.Errorf("DNS queries were made: %q", q)
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("vouch wrote %s in HOME (%s/.sigstore would be a TUF client)", filepath.Join(home, e.Name()), home)
	}
	if !t.Failed() {
		fmt.Println(airgapOK)
	}
}

// checkAirGap checks that the namespace has no network but loopback: lo is the only
// interface up and has only loopback addresses, no name resolves (the system resolver's
// server is unreachable), and public addresses are unreachable.
func checkAirGap(t *testing.T) {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	loUp := false
	for _, i := range ifaces {
		if i.Flags&net.FlagUp == 0 {
			continue
		}
		if i.Name != "lo" {
			t.Fatalf("interface %s is up in the air gap", i.Name)
		}
		loUp = true
		addrs, err := i.Addrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); !ok || !ipn.IP.IsLoopback() {
				t.Fatalf("lo has address %s", a)
			}
		}
	}
	if !loUp {
		t.Fatal("lo is not up")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if addrs, err := (&net.Resolver{PreferGo: true}).LookupHost(ctx, "tuf-repo-cdn.sigstore.dev"); err == nil {
		t.Fatalf("tuf-repo-cdn.sigstore.dev resolves in the air gap: %v", addrs)
	} else {
		t.Logf("air gap: tuf-repo-cdn.sigstore.dev: %v", err)
	}
	for _, addr := range []string{"1.1.1.1:443", "8.8.8.8:53", "[2606:4700:4700::1111]:443"} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("%s is reachable from the air gap", addr)
		}
		if !errors.Is(err, syscall.ENETUNREACH) {
			t.Fatalf("dialing %s: %v, want network is unreachable", addr, err)
		}
		t.Logf("air gap: %v", err)
	}
}

// loopbackUp sets the up flag of lo (a new network namespace starts with lo down), as
// `ip link set lo up` does.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct { // struct ifreq: the name, then ifr_flags in a 24-byte union
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], "lo")
	for _, req := range []uintptr{syscall.SIOCGIFFLAGS, syscall.SIOCSIFFLAGS} {
		if req == syscall.SIOCSIFFLAGS {
			ifr.flags |= syscall.IFF_UP
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
			return errno
		}
	}
	return nil
}

// nsLink names the process's namespace of a kind, e.g. "net:[4026531840]".
func nsLink(t *testing.T, kind string) string {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/" + kind)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// airgapPolicy is a ClusterPolicy verifying every image of a Pod with one cosign public key.
// keyOnly adds rekor.ignoreTlog and ctlog.ignoreSCT; without it the attestor needs Rekor
// (Kyverno's default: the public-good log). trustedRoot, if not empty, is the policy's
// vouch.dev/trusted-root.
func airgapPolicy(name, keyPEM string, keyOnly bool, trustedRoot string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: %s\n", name)
	if trustedRoot != "" {
		v, _ := json.Marshal(trustedRoot)
		fmt.Fprintf(&b, "  annotations:\n    vouch.dev/trusted-root: %s\n", v)
	}
	b.WriteString(`spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      attestors:
      - entries:
        - keys:
`)
	if keyOnly {
		b.WriteString("            rekor: {ignoreTlog: true}\n            ctlog: {ignoreSCT: true}\n")
	}
	b.WriteString("            publicKeys: |-\n")
	for _, l := range strings.Split(strings.TrimSpace(keyPEM), "\n") {
		b.WriteString("              " + l + "\n")
	}
	return b.String()
}

// airgapApply runs `vouch apply policy.yaml --resource pod.yaml -o json` for a Pod with one
// image, in exactly the environment env, and returns its report, exit code and run time.
func airgapApply(t *testing.T, env []string, policyYAML, image string) (*report.Report, int, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	pol, res := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "pod.yaml")
	for path, body := range map[string]string{pol: policyYAML, res: podYAML(image)} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vouchBinary, "apply", pol, "--resource", res, "-o", "json")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); !ok {
		t.Errorf("vouch apply (%s): no resource usage to read its peak RSS from", image)
	} else if ru.Maxrss<<10 > hostileMaxRSS {
		t.Errorf("vouch apply (%s): peak RSS %d KiB, bound %d MiB", image, ru.Maxrss, hostileMaxRSS>>20)
	}
	rep := &report.Report{}
	if err := json.Unmarshal([]byte(stdout.String()), rep); err != nil {
		t.Fatalf("vouch apply (%s) exited %d with no JSON report (%v):\n%s\n%s", image, cmd.ProcessState.ExitCode(), err, stdout.String(), stderr.String())
	}
	return rep, cmd.ProcessState.ExitCode(), took
}

// checkQuick fails the test when an evaluation took long enough to have waited on the network.
func checkQuick(t *testing.T, what string, took time.Duration) {
	t.Helper()
	if took > 5*time.Second {
		t.Errorf("%s took %v: waiting on the network?", what, took)
	}
}

func resultOf(rep *report.Report) string {
	if len(rep.Results) != 1 {
		return fmt.Sprintf("%d results", len(rep.Results))
	}
	return rep.Results[0].Result
}

func messageOf(rep *report.Report) string {
	if len(rep.Results) != 1 {
		return ""
	}
	return rep.Results[0].Message
}

// checkDenied returns a check of an admission response: the request's UID, denied, with a
// message containing msg.
func checkDenied(msg string) func(uid string, body []byte) error {
	return func(uid string, body []byte) error {
		var r struct {
			Response struct {
				UID     string `json:"uid"`
				Allowed bool   `json:"allowed"`
				Status  struct {
					Message string `json:"message"`
				} `json:"status"`
			} `json:"response"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("decoding the response: %w", err)
		}
		if r.Response.UID != uid || r.Response.Allowed || !strings.Contains(r.Response.Status.Message, msg) {
			return fmt.Errorf("want %s denied with a message containing %q, got %s", uid, msg, body)
		}
		return nil
	}
}

// dnsRecorder is a DNS server on 127.0.0.1:53 (UDP and TCP) that records every question and
// answers REFUSED.
type dnsRecorder struct {
	mu      sync.Mutex
	queries []string // "udp A name." ...
}

func startDNSRecorder(t *testing.T) *dnsRecorder {
	t.Helper()
	r := &dnsRecorder{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatalf("the recording resolver: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:53")
	if err != nil {
		t.Fatalf("the recording resolver: %v", err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := r.answer("udp", buf[:n]); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				var size [2]byte
				if _, err := io.ReadFull(c, size[:]); err != nil {
					r.record("tcp connection")
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(size[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					r.record("tcp connection")
					return
				}
				if resp := r.answer("tcp", msg); resp != nil {
					_, _ = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...))
				}
			}()
		}
	}()
	return r
}

func (r *dnsRecorder) record(q string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, q)
}

// take returns the queries recorded since the last call.
func (r *dnsRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queries
	r.queries = nil
	return q
}

// answer records a query and returns it as a REFUSED response (nil for a malformed one).
func (r *dnsRecorder) answer(proto string, msg []byte) []byte {
	if len(msg) < 12 {
		r.record(proto + " malformed")
		return nil
	}
	var labels []string
	i := 12
	for i < len(msg) && msg[i] != 0 && int(msg[i]) < 64 && i+1+int(msg[i]) <= len(msg) {
		labels = append(labels, string(msg[i+1:i+1+int(msg[i])]))
		i += 1 + int(msg[i])
	}
	qtype := 0
	if i+3 <= len(msg) {
		qtype = int(binary.BigEndian.Uint16(msg[i+1:]))
	}
	r.record(fmt.Sprintf("%s type %d %s.", proto, qtype, strings.Join(labels, ".")))
	resp := append([]byte(nil), msg...)
	resp[2] |= 0x80                   // QR: a response
	resp[3] = resp[3]&0xf0 | 0x80 | 5 // RA, RCODE REFUSED
	return resp
}
