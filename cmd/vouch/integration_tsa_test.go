//go:build integration

package main

// Integration tests of RFC 3161 timestamps from a real timestamp authority: sigstore's
// timestamp-server (built pinned by hack/tools.sh, in-memory signer, on 127.0.0.1) countersigns
// signatures made by the real cosign v2 CLI (--timestamp-server-url) and the real notation CLI
// (--timestamp-url, --timestamp-root-cert) on the distribution registry; vouch verifies them
// with ctlog.tsaCertChain set to the chain the authority serves, through the engine API and
// the built binary. Certificates that expire seconds after signing show what timestamps are
// for: the signature verifies after expiry only with the authority's chain.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/notaryproject/notation-core-go/signature"
	_ "github.com/notaryproject/notation-core-go/signature/cose" // registers the COSE envelope
	_ "github.com/notaryproject/notation-core-go/signature/jws"  // registers the JWS envelope

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

// shortLife is how long the short-lived signing certificates stay valid after they are made:
// long enough to sign with them (a few seconds), short enough to wait for their expiry.
const shortLife = 25 * time.Second

// TestIntegrationTSA starts one timestamp authority shared by its cosign and notation subtests.
func TestIntegrationTSA(t *testing.T) {
	t.Parallel()
	e := newToolEnv(t)
	tsa := e.startTimestampAuthority(t)
	t.Logf("timestamp authority %s, chain:\n%s", tsa.URL, describeChain(t, tsa.ChainPEM))
	// Another authority's chain: the same shape (timestamping certificate and root), another
	// key: a timestamp must verify with the policy's chain, not with any chain.
	other, err := fixture.NewTSA("another timestamp authority", fixture.ValidAround(-time.Hour, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("cosign", func(t *testing.T) {
		t.Parallel()
		testTSACosign(t, e, tsa, other.ChainPEM())
	})
	t.Run("notation", func(t *testing.T) {
		t.Parallel()
		testTSANotation(t, e, tsa, other.ChainPEM())
	})
}

// describeChain returns one line per certificate of a PEM chain: subject, issuer and validity.
func describeChain(t *testing.T, chain string) string {
	t.Helper()
	var b strings.Builder
	for _, block := range pemBlocks([]byte(chain)) {
		p, _ := pem.Decode([]byte(block))
		c, err := x509.ParseCertificate(p.Bytes)
		if err != nil {
			t.Fatalf("the TSA chain does not parse: %v", err)
		}
		fmt.Fprintf(&b, "  %s (issuer %s, CA %v, %s – %s)\n", c.Subject, c.Issuer, c.IsCA,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	return b.String()
}

// offlineTrust is an attestor's rekor and ctlog fields, offline (no tlog, no SCT), with
// ctlog.tsaCertChain when tsaChain is not empty.
func offlineTrust(tsaChain string) string {
	s := "rekor: {url: https://rekor.sigstore.dev, ignoreTlog: true}\nctlog:\n  ignoreSCT: true"
	if tsaChain != "" {
		s += "\n" + indent2(pemField("tsaCertChain", tsaChain))
	}
	return s
}

// waitUntilExpired sleeps until cert has expired, and fails the test when signing finished
// too late (signedAt not before the certificate's end): the timestamp would then be outside
// the certificate's validity and prove nothing.
func waitUntilExpired(t *testing.T, cert *x509.Certificate, signedAt time.Time) {
	t.Helper()
	if !signedAt.Before(cert.NotAfter) {
		t.Fatalf("signing finished at %s, after the certificate expired (%s): the machine is too slow for shortLife=%v",
			signedAt.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), shortLife)
	}
	wait := time.Until(cert.NotAfter) + 1500*time.Millisecond
	t.Logf("waiting %v for the signing certificate to expire (%s)", wait.Round(time.Millisecond), cert.NotAfter.Format(time.RFC3339))
	time.Sleep(wait)
}

// testTSACosign: cosign v2 signs with a key and with a short-lived certificate, countersigned
// by the timestamp authority; vouch verifies with the authority's chain, another chain, none.
func testTSACosign(t *testing.T, e *toolEnv, tsa *timestampAuthority, otherChain string) {
	cosign := toolPath(t, "cosign")
	host := startDistribution(t)
	key := e.generateKeyPair(t, cosign, "tsa-key")
	digests := map[string]string{}
	for _, tag := range []string{"key-tsa", "key", "cert-tsa", "cert"} {
		digests[tag] = pushRandom(t, host, "app:"+tag)
	}

	// A PKI whose leaf expires shortLife from now: root and intermediate stay valid.
	root, err := fixture.NewRootCA("vouch tsa root", fixture.ValidAround(-48*time.Hour, 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := root.NewIntermediate("vouch tsa intermediate", fixture.ValidAround(-24*time.Hour, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueLeaf(fixture.LeafOptions{Emails: []string{"signer@example.com"}, Issuer: "https://issuer.example.com",
		Validity: fixture.ValidAround(-time.Minute, shortLife)})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "cosign-leaf")
	writeLeafFiles(t, dir, leaf.Key, leaf.PEM(), leaf.ChainPEM())
	e.mustRun(t, dir, nil, cosign, "import-key-pair", "--key", "leaf.key", "--output-key-prefix", "leaf-import")
	signCert := func(tag string, timestamped bool) {
		args := []string{"sign", "--key", "leaf-import.key", "--certificate", "leaf.pem", "--certificate-chain", "chain.pem", "--tlog-upload=false", "-y"}
		if timestamped {
			args = append(args, "--timestamp-server-url", tsa.URL)
		}
		e.mustRun(t, dir, nil, cosign, append(args, host+"/app@"+digests[tag])...)
	}
	before := time.Now()
	signCert("cert-tsa", true)
	signCert("cert", false)
	signedAt := time.Now()

	// The key signatures, while the certificate runs out.
	e.mustRun(t, "", nil, cosign, "sign", "--key", key.private, "--tlog-upload=false", "--timestamp-server-url", tsa.URL,
		"-y", host+"/app@"+digests["key-tsa"])
	e.mustRun(t, "", nil, cosign, "sign", "--key", key.private, "--tlog-upload=false", "-y", host+"/app@"+digests["key"])
	checkCosignTimestamp(t, host+"/app", digests["cert-tsa"], before, signedAt)
	checkCosignTimestamp(t, host+"/app", digests["key-tsa"], before, time.Now())
	// cosign itself verifies the timestamp with the authority's chain, offline.
	e.mustRun(t, "", nil, cosign, "verify", "--key", key.public, "--insecure-ignore-tlog=true", "--use-signed-timestamps",
		"--timestamp-certificate-chain", tsa.ChainFile, host+"/app@"+digests["key-tsa"])

	waitUntilExpired(t, leaf.Cert, signedAt)
	// cosign agrees: after expiry the certificate signature verifies only with the timestamp.
	verifyCert := []string{"verify", "--certificate-chain", "chain.pem", "--certificate-identity", "signer@example.com",
		"--certificate-oidc-issuer", "https://issuer.example.com", "--insecure-ignore-sct", "--insecure-ignore-tlog"}
	e.mustRun(t, dir, nil, cosign, append(verifyCert, "--use-signed-timestamps", "--timestamp-certificate-chain", tsa.ChainFile,
		host+"/app@"+digests["cert-tsa"])...)
	if out, err := e.run(t, dir, nil, cosign, append(verifyCert, host+"/app@"+digests["cert-tsa"])...); err == nil {
		t.Errorf("cosign verify passed an expired certificate without the timestamp:\n%s", out)
	}

	keys := func(tsaChain string) string {
		return "keys:\n" + indent2(pemField("publicKeys", key.pem)+"\n"+offlineTrust(tsaChain))
	}
	certs := func(withCert bool, tsaChain string) string {
		f := pemField("certChain", leaf.ChainPEM())
		if withCert {
			f = pemField("cert", leaf.PEM()) + "\n" + f
		}
		return "certificates:\n" + indent2(f+"\n"+offlineTrust(tsaChain))
	}
	keyless := func(tsaChain string) string {
		return "keyless:\n" + indent2("subject: signer@example.com\nissuer: https://issuer.example.com\n"+
			pemField("roots", fixture.CertsPEM(root.Cert))+"\n"+offlineTrust(tsaChain))
	}
	img := func(tag string) string { return host + "/app:" + tag }
	ok := func(tag string) string { return "verified image signatures for " + img(tag) }
	const (
		entry   = ".attestors[0].entries[0]."
		noMatch = ": no matching signatures: "
		expired = "expected a signed timestamp to verify an expired certificate"
		// The response carries the authority's certificate; another chain names another one.
		otherTSA = "unable to verify RFC3161 timestamp bundle: certificate embedded in the TSR does not match the provided TSA certificate"
	)
	// The authority's chain without its timestamping certificate: the one the response carries
	// is used, and must chain to the root.
	blocks := pemBlocks([]byte(tsa.ChainPEM))
	caOnly := strings.Join(blocks[1:], "")
	cases := []struct {
		name, tag, entry, want, msg string
	}{
		{"key, timestamp verified with the authority's chain", "key-tsa", keys(tsa.ChainPEM), "pass", ok("key-tsa")},
		{"key, timestamp of another authority", "key-tsa", keys(otherChain), "fail", entry + "keys" + noMatch + otherTSA},
		{"key, the authority's intermediate and root only", "key-tsa", keys(caOnly), "pass", ok("key-tsa")},
		{"key, no tsaCertChain: the timestamp is not used", "key-tsa", keys(""), "pass", ok("key-tsa")},
		{"key, tsaCertChain but no timestamp", "key", keys(tsa.ChainPEM), "pass", ok("key")},
		{"expired certificate, timestamp while valid", "cert-tsa", certs(false, tsa.ChainPEM), "pass", ok("cert-tsa")},
		{"expired pinned certificate and chain, timestamp while valid", "cert-tsa", certs(true, tsa.ChainPEM), "pass", ok("cert-tsa")},
		{"expired certificate, no tsaCertChain", "cert-tsa", certs(false, ""), "fail", entry + "certificates" + noMatch + expired},
		{"expired certificate, timestamp of another authority", "cert-tsa", certs(false, otherChain), "fail", entry + "certificates" + noMatch + otherTSA},
		{"expired certificate, the authority's intermediate and root only", "cert-tsa", certs(false, caOnly), "pass", ok("cert-tsa")},
		{"expired certificate, not timestamped", "cert", certs(false, tsa.ChainPEM), "fail", entry + "certificates" + noMatch + expired},
		{"keyless, expired certificate, timestamp while valid", "cert-tsa", keyless(tsa.ChainPEM), "pass", ok("cert-tsa")},
		{"keyless, expired certificate, no tsaCertChain", "cert-tsa", keyless(""), "fail", entry + "keyless" + noMatch + expired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vc := verifyCase{name: c.name, image: img(c.tag), digest: digests[c.tag], want: c.want, msg: c.msg}
			pol, pod := certPolicy(c.entry), podYAML(vc.image)
			t.Run("engine", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithEngine(t, pol, pod)) })
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithCLI(t, pol, pod)) })
		})
	}
}

// writeLeafFiles writes leaf.key (PKCS#8), leaf.pem and chain.pem into dir.
func writeLeafFiles(t *testing.T, dir string, key any, leafPEM, chainPEM string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for file, body := range map[string]string{
		"leaf.key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"leaf.pem":  leafPEM,
		"chain.pem": chainPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// checkCosignTimestamp checks what cosign stored: the .sig layer's
// dev.sigstore.cosign/rfc3161timestamp annotation, the authority's RFC 3161 response (its
// token verified with the certificates it carries) stating a time while cosign ran.
func checkCosignTimestamp(t *testing.T, repo, digest string, from, to time.Time) {
	t.Helper()
	tag, err := name.NewTag(repo + ":sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatalf("reading %s: %v", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("%s has %d layers, want 1", tag, len(m.Layers))
	}
	raw, ok := m.Layers[0].Annotations["dev.sigstore.cosign/rfc3161timestamp"]
	if !ok {
		t.Fatalf("%s: no dev.sigstore.cosign/rfc3161timestamp annotation: %v", tag, m.Layers[0].Annotations)
	}
	var b struct{ SignedRFC3161Timestamp []byte }
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		t.Fatalf("%s: rfc3161timestamp annotation: %v", tag, err)
	}
	ts, err := timestamp.ParseResponse(b.SignedRFC3161Timestamp)
	if err != nil {
		t.Fatalf("%s: the RFC 3161 response does not parse: %v", tag, err)
	}
	if ts.Time.Before(from.Add(-time.Second)) || ts.Time.After(to.Add(time.Second)) {
		t.Errorf("%s: timestamp %s, want between %s and %s", tag, ts.Time, from, to)
	}
}

// testTSANotation: notation signs with its test key and with a short-lived certificate,
// countersigned by the timestamp authority (--timestamp-url, --timestamp-root-cert), in JWS and
// COSE; vouch's type: Notary verifies with the authority's chain, another chain, none.
func testTSANotation(t *testing.T, e *toolEnv, tsa *timestampAuthority, otherChain string) {
	w := &notationWorld{env: e, notation: toolPath(t, "notation"), host: startDistribution(t),
		certs: map[string]string{}, digests: map[string]string{}}
	w.config = filepath.Join(e.home, ".config")
	w.env.mustRun(t, "", w.notationEnv(), w.notation, "cert", "generate-test", "--default", "vouch.test")
	testCert, err := os.ReadFile(filepath.Join(w.config, "notation", "localkeys", "vouch.test.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"jws", "cose", "short-tsa", "short"} {
		w.digests[tag] = pushRandom(t, w.host, "app:"+tag)
	}

	// A notation key whose certificate expires shortLife from now (notation has no command to
	// add a local key: it is written into signingkeys.json as generate-test writes its own).
	root, err := notarytest.NewRoot("vouch notation root", notarytest.Around(-48*time.Hour, 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := root.NewIntermediate("vouch notation intermediate", notarytest.Around(-24*time.Hour, 24*time.Hour), notarytest.Endpoints{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueLeaf(notarytest.LeafOptions{CommonName: "short-lived signer", Validity: notarytest.Around(-time.Minute, shortLife)})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "notation-leaf")
	writeLeafFiles(t, dir, leaf.Key, notarytest.PEM(leaf.Cert), notarytest.PEM(leaf.Full()...))
	addNotationKey(t, w.config, "short", filepath.Join(dir, "leaf.key"), filepath.Join(dir, "chain.pem"))

	timestamped := []string{"--timestamp-url", tsa.URL, "--timestamp-root-cert", tsa.RootFile}
	w.sign(t, "short-tsa", append([]string{"--key", "short"}, timestamped...)...)
	w.sign(t, "short", "--key", "short")
	signedAt := time.Now()
	w.sign(t, "jws", append([]string{"--signature-format", "jws"}, timestamped...)...)
	w.sign(t, "cose", append([]string{"--signature-format", "cose"}, timestamped...)...)
	for tag, want := range map[string]bool{"jws": true, "cose": true, "short-tsa": true, "short": false} {
		if got := notationTimestamped(t, w.host+"/app@"+w.digests[tag]); got != want {
			t.Errorf("app:%s: signature countersigned by a TSA: %v, want %v", tag, got, want)
		}
	}

	waitUntilExpired(t, leaf.Cert, signedAt)
	// notation agrees: with a tsa trust store and verifyTimestamp afterCertExpiry, the
	// timestamped signature of the expired certificate verifies, the other does not.
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, []byte(notarytest.PEM(root.Cert)), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env.mustRun(t, "", w.notationEnv(), w.notation, "cert", "add", "--type", "ca", "--store", "short", rootFile)
	w.env.mustRun(t, "", w.notationEnv(), w.notation, "cert", "add", "--type", "tsa", "--store", "tsa", tsa.RootFile)
	trustPolicy := `{"version":"1.0","trustPolicies":[{"name":"vouch","registryScopes":["*"],
	  "signatureVerification":{"level":"strict","verifyTimestamp":"afterCertExpiry"},
	  "trustStores":["ca:vouch.test","ca:short","tsa:tsa"],"trustedIdentities":["*"]}]}`
	policyFile := filepath.Join(e.dir, "tsa-trustpolicy.json")
	if err := os.WriteFile(policyFile, []byte(trustPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env.mustRun(t, "", w.notationEnv(), w.notation, "policy", "import", "--force", policyFile)
	for tag, want := range map[string]bool{"jws": true, "cose": true, "short-tsa": true, "short": false} {
		out, err := w.env.run(t, "", w.notationEnv(), w.notation, "verify", "--insecure-registry", w.host+"/app@"+w.digests[tag])
		if (err == nil) != want {
			t.Errorf("notation verify app:%s succeeded=%v, want %v:\n%s", tag, err == nil, want, out)
		}
	}

	policy := func(cert, tsaChain string) string {
		p := notaryPolicy(w.host, cert)
		if tsaChain != "" {
			p += "            ctlog:\n" + "              " + strings.ReplaceAll(pemField("tsaCertChain", tsaChain), "\n", "\n              ") + "\n"
		}
		return p
	}
	shortRoot := notarytest.PEM(root.Cert)
	img := func(tag string) string { return w.host + "/app:" + tag }
	ok := func(tag string) string { return "verified image signatures for " + img(tag) }
	const expired = `authenticTimestamp: verification time is after certificate "CN=short-lived signer,O=vouch test" validity period, it was expired at`
	cases := []struct {
		name, tag, policy, want, msg string
	}{
		{"JWS, timestamped, authority's chain", "jws", policy(string(testCert), tsa.ChainPEM), "pass", ok("jws")},
		{"COSE, timestamped, authority's chain", "cose", policy(string(testCert), tsa.ChainPEM), "pass", ok("cose")},
		// While the signing certificate is valid the timestamp is not looked at
		// (verifyTimestamp afterCertExpiry), whichever authority the policy trusts.
		{"JWS, valid certificate, another authority's chain", "jws", policy(string(testCert), otherChain), "pass", ok("jws")},
		{"COSE, valid certificate, no tsaCertChain", "cose", policy(string(testCert), ""), "pass", ok("cose")},
		{"expired certificate, timestamp while valid", "short-tsa", policy(shortRoot, tsa.ChainPEM), "pass", ok("short-tsa")},
		{"expired certificate, timestamp of another authority", "short-tsa", policy(shortRoot, otherChain), "fail",
			"authenticTimestamp: failed to verify the timestamp countersignature with error: failed to verify signed token: cms verification failure: x509: certificate signed by unknown authority"},
		{"expired certificate, no tsaCertChain", "short-tsa", policy(shortRoot, ""), "fail", expired},
		{"expired certificate, not timestamped", "short", policy(shortRoot, tsa.ChainPEM), "fail", "authenticTimestamp: no timestamp countersignature was found in the signature envelope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vc := verifyCase{name: c.name, image: img(c.tag), digest: w.digests[c.tag], want: c.want, msg: c.msg}
			pod := podYAML(vc.image)
			t.Run("engine", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithEngine(t, c.policy, pod)) })
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithCLI(t, c.policy, pod)) })
		})
	}
}

// addNotationKey adds a local signing key to notation's signingkeys.json.
func addNotationKey(t *testing.T, config, keyName, keyPath, certPath string) {
	t.Helper()
	path := filepath.Join(config, "notation", "signingkeys.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	list, _ := keys["keys"].([]any)
	keys["keys"] = append(list, map[string]any{"name": keyName, "keyPath": keyPath, "certPath": certPath})
	if raw, err = json.Marshal(keys); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// notationTimestamped reads the one notation signature of image (host/repo@digest) and tells
// whether its envelope carries an RFC 3161 countersignature.
func notationTimestamped(t *testing.T, image string) bool {
	t.Helper()
	d, err := name.NewDigest(image)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	idx, err := remote.Referrers(d, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("listing the referrers of %s: %v", image, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s has %d referrers, want one notation signature", image, len(im.Manifests))
	}
	sig, err := remote.Image(d.Context().Digest(im.Manifests[0].Digest.String()), remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := sig.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("signature of %s: %d layers (%v), want 1", image, len(layers), err)
	}
	mt, err := layers[0].MediaType()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	env, err := signature.ParseEnvelope(string(mt), body)
	if err != nil {
		t.Fatalf("signature of %s: %v", image, err)
	}
	content, err := env.Content()
	if err != nil {
		t.Fatal(err)
	}
	return len(content.SignerInfo.UnsignedAttributes.TimestampSignature) > 0
}
