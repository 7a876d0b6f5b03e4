package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// selfSignedPEM is a throwaway CA certificate as PEM.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestPolicyCertificateChainCaps (DESIGN §6: every count is capped): a policy's certChain and
// keyless.roots hold at most 11 certificates, a tsaCertChain at most 12 (Kyverno's limits,
// spec §3.2); one more is a compile error naming the field and the cap, found before the extra
// certificate is parsed.
func TestPolicyCertificateChainCaps(t *testing.T) {
	t.Parallel()
	cert := selfSignedPEM(t)
	quoted := func(n int) string {
		q, _ := json.Marshal(strings.Repeat(cert, n))
		return string(q)
	}
	policy := func(entry string) string {
		return strings.Replace(podPolicy, `verifyImages: [{imageReferences: ["*"]}]`,
			`verifyImages: [{imageReferences: ["*"], attestors: [{entries: [`+entry+`]}]}]`, 1)
	}
	tests := []struct {
		name, entry, err string
	}{
		{"certChain at the cap", `{certificates: {certChain: ` + quoted(maxCertsPerChain) + `}}`, ""},
		{"certChain over the cap", `{certificates: {certChain: ` + quoted(maxCertsPerChain+1) + `}}`,
			"entries[0].certificates.certChain: Invalid value: certificate chain too long, maximum allowed is 11"},
		{"keyless.roots over the cap", `{keyless: {subject: s, issuer: i, roots: ` + quoted(maxCertsPerChain+1) + `}}`,
			"entries[0].keyless.roots: Invalid value: certificate chain too long, maximum allowed is 11"},
		{"tsaCertChain at the cap", `{certificates: {certChain: ` + quoted(1) + `, ctlog: {tsaCertChain: ` + quoted(maxTSAChain) + `}}}`, ""},
		{"tsaCertChain over the cap", `{certificates: {certChain: ` + quoted(1) + `, ctlog: {tsaCertChain: ` + quoted(maxTSAChain+1) + `}}}`,
			"entries[0].certificates.ctlog.tsaCertChain: Invalid value: certificate chain too long, maximum allowed is 12"},
		{"over the cap with an unparsable extra", `{certificates: {certChain: ` + func() string {
			q, _ := json.Marshal(strings.Repeat(cert, maxCertsPerChain) + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
			return string(q)
		}() + `}}`, "certificate chain too long, maximum allowed is 11"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == "" {
				load(t, policy(tc.entry))
				return
			}
			if err := loadErr(t, policy(tc.entry)); !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want it to contain %q", err, tc.err)
			}
		})
	}
}
