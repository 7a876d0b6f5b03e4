//go:build integration

package main

// The harness of the end-to-end webhook tests: a real Kubernetes control plane without a cluster
// — etcd and kube-apiserver built pinned by hack/tools.sh (`make tools`) — on 127.0.0.1, with a
// PKI generated in the test. Pods stay Pending (there is no kubelet), but admission runs for real:
// the API server calls the webhooks registered with registerWebhook. A missing tool fails the
// test, it is never skipped.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// controlPlaneTimeout bounds the start of etcd and of kube-apiserver (each is ready in a few
	// seconds; a loaded CI machine is given room).
	controlPlaneTimeout = 60 * time.Second
	// processStopTimeout is how long a stopped process has between SIGTERM and SIGKILL.
	processStopTimeout = 10 * time.Second
	// e2eAdminToken authenticates the tests as system:masters (--token-auth-file).
	e2eAdminToken = "vouch-e2e-admin-token"
	// e2eDevToken authenticates as user vouch-e2e-dev in group vouch-e2e-developers, who holds
	// no roles until a test binds some (authorization is AlwaysAllow, so it may do anything).
	e2eDevToken = "vouch-e2e-dev-token"
	// serviceClusterIPRange is the API server's --service-cluster-ip-range. Nothing routes to it:
	// without kube-proxy, Service IPs are only allocated, never reached.
	serviceClusterIPRange = "10.0.0.0/24"
)

// apiServer is a running kube-apiserver with its etcd; both stop when the test ends.
type apiServer struct {
	URL        string               // https://127.0.0.1:PORT
	Config     *rest.Config         // as the admin (a system:masters token), trusting PKI's CA
	Client     kubernetes.Interface // typed client over Config
	Dynamic    dynamic.Interface    // dynamic client over Config (Kyverno policies, CRDs)
	Kubeconfig string               // a kubeconfig file for kubectl, same identity as Config
	PKI        *e2ePKI              // CA of the API server's certificate; it also signs webhooks'
	Started    time.Duration        // from starting etcd to kube-apiserver's /readyz answering 200
}

// startAPIServer starts etcd and kube-apiserver on free 127.0.0.1 ports, waits until the API
// server's /readyz answers 200 and stops both (SIGTERM, then SIGKILL) when the test ends.
func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	etcdBin, apiserverBin := toolPath(t, "etcd"), toolPath(t, "kube-apiserver")
	dir := t.TempDir()
	pki := newE2EPKI(t)
	files := writeControlPlaneFiles(t, dir, pki)
	// Anything but loopback the control plane would reach goes to a proxy that records and
	// refuses it; a recorded request fails the test (see newToolEnv).
	proxy := newToolEnv(t).proxy
	procEnv := []string{"HOME=" + dir, "TMPDIR=" + dir, "HTTPS_PROXY=" + proxy, "HTTP_PROXY=" + proxy, "NO_PROXY="}

	start := time.Now()
	etcdURL := startWithFreePorts(t, "etcd", func() (*process, string, error) {
		return startEtcd(t, etcdBin, filepath.Join(dir, "etcd"), procEnv)
	})
	url := startWithFreePorts(t, "kube-apiserver", func() (*process, string, error) {
		return startKubeAPIServer(t, apiserverBin, dir, etcdURL, files, pki, procEnv)
	})
	s := &apiServer{URL: url, PKI: pki, Started: time.Since(start)}
	t.Logf("control plane (etcd + kube-apiserver) at %s ready in %v", url, s.Started.Round(time.Millisecond))

	s.Config = &rest.Config{
		Host:            url,
		BearerToken:     e2eAdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: pki.CAPEM},
		QPS:             100,
		Burst:           200,
		Timeout:         30 * time.Second,
		UserAgent:       "vouch-e2e",
	}
	var err error
	if s.Client, err = kubernetes.NewForConfig(s.Config); err != nil {
		t.Fatal(err)
	}
	if s.Dynamic, err = dynamic.NewForConfig(s.Config); err != nil {
		t.Fatal(err)
	}
	s.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["vouch-e2e"] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: pki.CAPEM}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: e2eAdminToken}
	kc.Contexts["vouch-e2e"] = &clientcmdapi.Context{Cluster: "vouch-e2e", AuthInfo: "admin"}
	kc.CurrentContext = "vouch-e2e"
	if err := clientcmd.WriteToFile(*kc, s.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	return s
}

// kubectl runs the kubectl built by `make tools` against the API server and returns its
// combined output; a failure fails the test.
func (s *apiServer) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolPath(t, "kubectl"), append([]string{"--kubeconfig", s.Kubeconfig}, args...)...)
	cmd.Env = []string{"HOME=" + home, "KUBECACHEDIR=" + filepath.Join(home, "cache")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// controlPlaneFiles are the files kube-apiserver is started with.
type controlPlaneFiles struct {
	caCert, servingCert, servingKey string
	saPublic, saPrivate, tokens     string
}

func writeControlPlaneFiles(t *testing.T, dir string, pki *e2ePKI) controlPlaneFiles {
	t.Helper()
	certPEM, keyPEM := pki.ServingPEM(t)
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	saPriv, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		t.Fatal(err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f := controlPlaneFiles{
		caCert:      filepath.Join(dir, "ca.crt"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		saPublic:    filepath.Join(dir, "sa.pub"),
		saPrivate:   filepath.Join(dir, "sa.key"),
		tokens:      filepath.Join(dir, "tokens.csv"),
	}
	for path, data := range map[string][]byte{
		f.caCert:      pki.CAPEM,
		f.servingCert: certPEM,
		f.servingKey:  keyPEM,
		f.saPublic:    pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		f.saPrivate:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saPriv}),
		// token,user,uid,"group1,group2"
		f.tokens: []byte(e2eAdminToken + `,vouch-e2e-admin,vouch-e2e-admin,"system:masters"` + "\n" +
			e2eDevToken + `,vouch-e2e-dev,vouch-e2e-dev,"vouch-e2e-developers"` + "\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// startEtcd starts a single-member etcd with its client and peer URLs on free loopback ports
// and waits until /health says it is healthy. It returns the client URL.
func startEtcd(t *testing.T, bin, dataDir string, procEnv []string) (*process, string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := os.RemoveAll(dataDir); err != nil { // a retry starts afresh
		return nil, "", err
	}
	p, err := startProcess(t, "etcd", bin, procEnv,
		"--name=default", "--data-dir="+dataDir,
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer,
		"--unsafe-no-fsync", // a test's data need not survive a power cut
		"--log-level=warn",
	)
	if err != nil {
		return nil, "", err
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	err = p.waitReady(controlPlaneTimeout, func() error {
		resp, err := hc.Get(client + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), `"health":"true"`) {
			return fmt.Errorf("/health: %s %s", resp.Status, body.String())
		}
		return nil
	})
	return p, client, err
}

// startKubeAPIServer starts kube-apiserver on a free loopback port as TOOLCHAIN.md shows and
// waits until /readyz answers 200. It returns the server's URL.
func startKubeAPIServer(t *testing.T, bin, dir, etcdURL string, f controlPlaneFiles, pki *e2ePKI, procEnv []string) (*process, string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	p, err := startProcess(t, "kube-apiserver", bin, procEnv,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[0]),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+f.servingCert, "--tls-private-key-file="+f.servingKey,
		"--client-ca-file="+f.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+f.saPublic,
		"--service-account-signing-key-file="+f.saPrivate,
		"--authorization-mode=AlwaysAllow",
		"--token-auth-file="+f.tokens,
		"--service-cluster-ip-range="+serviceClusterIPRange,
		// No controller-manager makes the default ServiceAccount, so its admission would refuse
		// every Pod.
		"--disable-admission-plugins=ServiceAccount",
	)
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.CAPEM)
	hc := &http.Client{
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}},
		Timeout:   2 * time.Second,
	}
	err = p.waitReady(controlPlaneTimeout, func() error {
		req, err := http.NewRequest(http.MethodGet, url+"/readyz", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s %s", resp.Status, lastLines(body.String(), 5))
		}
		return nil
	})
	return p, url, err
}

// startWithFreePorts calls start up to three times: a free port can be taken between probing
// it and the process binding it. It returns what start returned and fails the test when every
// try failed.
func startWithFreePorts(t *testing.T, name string, start func() (*process, string, error)) string {
	t.Helper()
	var errs []error
	for range 3 {
		p, addr, err := start()
		if err == nil {
			t.Cleanup(func() { p.stop(t) })
			return addr
		}
		if p != nil {
			p.stop(t)
		}
		errs = append(errs, err)
	}
	t.Fatalf("starting %s: %v", name, errors.Join(errs...))
	return ""
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// process is a started control-plane process, its output collected.
type process struct {
	name   string
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited chan error // receives Wait's result once
	done   bool       // Wait's result has been received
}

// startProcess starts bin with args and exactly the environment procEnv. The process is
// killed if the test binary dies first (see setParentDeathSignal).
func startProcess(t *testing.T, name, bin string, procEnv []string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = procEnv
	p := &process{name: name, cmd: cmd, logs: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

// waitReady calls ready every 50ms until it returns nil, the process exits or timeout passes.
func (p *process) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case werr := <-p.exited:
			p.done = true
			return fmt.Errorf("%s (pid %d) exited (%v) before it was ready:\n%s", p.name, p.cmd.Process.Pid, werr, lastLines(p.logs.String(), 30))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not ready within %v: %v\n%s", p.name, p.cmd.Process.Pid, timeout, err, lastLines(p.logs.String(), 30))
		}
	}
}

// stop sends the process SIGTERM, then SIGKILL after processStopTimeout, by its PID only. When
// the test failed, the last lines of its output are logged.
func (p *process) stop(t *testing.T) {
	if !p.done {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(processStopTimeout):
			t.Logf("%s (pid %d) ignored SIGTERM for %v: killing it", p.name, p.cmd.Process.Pid, processStopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		p.done = true
	}
	if t.Failed() {
		t.Logf("%s log (last lines):\n%s", p.name, lastLines(p.logs.String(), 40))
	}
}

// e2ePKI is a CA made for one test. It signs the API server's serving certificate and those of
// the webhooks the API server calls, so the CA's PEM is both the clients' trust root and a
// webhook configuration's caBundle.
type e2ePKI struct {
	CAPEM []byte
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
}

func newE2EPKI(t *testing.T) *e2ePKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vouch e2e CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &e2ePKI{CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca: ca, key: key}
}

// ServingPEM issues a new serving certificate for 127.0.0.1 and localhost and returns it and
// its private key (PKCS#8), PEM-encoded.
func (p *e2ePKI) ServingPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// ServingCert is ServingPEM as a tls.Certificate, for an in-process HTTPS server.
func (p *e2ePKI) ServingCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.ServingPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
