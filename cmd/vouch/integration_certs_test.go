//go:build integration

package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
)

// certPolicy is a ClusterPolicy whose one rule verifies every image of a Pod with one attestor
// entry (certificates or keyless YAML, indented under "- "), offline.
func certPolicy(entry string) string {
	return `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: verify-signatures}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      attestors:
      - entries:
        - ` + strings.ReplaceAll(strings.TrimSpace(entry), "\n", "\n          ") + "\n"
}

// pemField renders "name: |-" followed by the PEM text indented two more spaces.
func pemField(name, text string) string {
	return name + ": |-\n  " + strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n  ")
}

// TestIntegrationCosignCertificateChain: an image signed by the real cosign v2 CLI with an X.509
// leaf and its chain (cosign import-key-pair, then sign --certificate --certificate-chain
// --tlog-upload=false), verified by vouch with certificates and keyless attestors, and
// cross-checked with `cosign verify --certificate-chain`.
func TestIntegrationCosignCertificateChain(t *testing.T) {
	t.Parallel()
	e := newToolEnv(t)
	cosign := toolPath(t, "cosign")
	host := startDistribution(t)

	root, err := fixture.NewRootCA("vouch integration root", fixture.ValidAround(-48*time.Hour, 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := root.NewIntermediate("vouch integration intermediate", fixture.ValidAround(-24*time.Hour, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueLeaf(fixture.LeafOptions{Emails: []string{"signer@example.com"}, Issuer: "https://issuer.example.com", Validity: fixture.ValidAround(-time.Hour, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	other, err := fixture.NewRootCA("another root", fixture.ValidAround(-48*time.Hour, 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "leaf")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"leaf.key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"leaf.pem":  leaf.PEM(),
		"chain.pem": leaf.ChainPEM(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// cosign refuses a plain PKCS#8 key for signing: import it first (TOOLCHAIN.md).
	e.mustRun(t, dir, nil, cosign, "import-key-pair", "--key", "leaf.key", "--output-key-prefix", "leaf-import")
	digest := pushRandom(t, host, "app:cert")
	e.mustRun(t, dir, nil, cosign, "sign", "--key", "leaf-import.key", "--certificate", "leaf.pem",
		"--certificate-chain", "chain.pem", "--tlog-upload=false", "-y", host+"/app@"+digest)
	// cosign itself accepts it, offline.
	e.mustRun(t, dir, nil, cosign, "verify", "--certificate-chain", "chain.pem",
		"--certificate-identity", "signer@example.com", "--certificate-oidc-issuer", "https://issuer.example.com",
		"--insecure-ignore-sct", "--insecure-ignore-tlog", host+"/app@"+digest)

	offline := "\nrekor: {url: https://rekor.sigstore.dev, ignoreTlog: true}\nctlog: {ignoreSCT: true}"
	image := host + "/app:cert"
	cases := []struct {
		name, entry, want, msg string
	}{
		{"cert and chain", "certificates:\n" + indent2(pemField("cert", leaf.PEM())+"\n"+pemField("certChain", leaf.ChainPEM())+offline),
			"pass", "verified image signatures for " + image},
		{"chain only", "certificates:\n" + indent2(pemField("certChain", leaf.ChainPEM())+offline),
			"pass", "verified image signatures for " + image},
		{"chain of another root", "certificates:\n" + indent2(pemField("certChain", fixture.CertsPEM(other.Cert))+offline),
			"fail", ".attestors[0].entries[0].certificates: no matching signatures: cert verification failed: x509: certificate signed by unknown authority"},
		{"keyless identity", "keyless:\n" + indent2("subject: signer@example.com\nissuer: https://issuer.example.com\n"+pemField("roots", fixture.CertsPEM(root.Cert))+offline),
			"pass", "verified image signatures for " + image},
		{"keyless wrong identity", "keyless:\n" + indent2("subject: release@example.com\nissuer: https://issuer.example.com\n"+pemField("roots", fixture.CertsPEM(root.Cert))+offline),
			"fail", ".attestors[0].entries[0].keyless: subject mismatch: expected release@example.com, received signer@example.com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vc := verifyCase{name: c.name, image: image, digest: digest, want: c.want, msg: c.msg}
			pol, pod := certPolicy(c.entry), podYAML(image)
			t.Run("engine", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithEngine(t, pol, pod)) })
			t.Run("cli", func(t *testing.T) { checkVerifyCase(t, vc, evaluateWithCLI(t, pol, pod)) })
		})
	}
}

func indent2(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
