package policy

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/verify"
)

// Trust-material limits: bound the work a hostile or mistaken policy can cause at load.
const (
	maxKeysPerField  = 32
	maxCertsPerChain = 11 // Kyverno's limit for certChain (spec §3.2)
	maxTSAChain      = 12 // Kyverno's limit for tsaCertChain (spec §3.2)
)

// splitPublicKeys parses a publicKeys value. PEM text yields one PublicKey per "PUBLIC KEY"
// block (spec §3.4: each becomes its own attestor entry). A value with Kyverno variables, a
// k8s:// secret reference or a KMS URI is returned as a reference to resolve later.
func splitPublicKeys(value string) (keys []verify.PublicKey, ref string, err error) {
	trimmed := strings.TrimSpace(value)
	if v1.HasVariables(trimmed) {
		return nil, trimmed, nil
	}
	if !strings.HasPrefix(trimmed, "-----BEGIN") {
		if isKeyRef(trimmed) {
			return nil, trimmed, nil
		}
		return nil, "", fmt.Errorf("publicKeys must hold PEM \"PUBLIC KEY\" blocks, a k8s://<namespace>/<secret> reference or a KMS URI (awskms://, gcpkms://, azurekms://, hashivault://)")
	}
	rest := []byte(trimmed)
	for len(strings.TrimSpace(string(rest))) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, "", fmt.Errorf("key %d: text after the last PEM block is not a PEM block", len(keys)+1)
		}
		key, err := publicKeyFrom(block)
		if err != nil {
			return nil, "", fmt.Errorf("key %d: %w", len(keys)+1, err)
		}
		if len(keys) == maxKeysPerField {
			return nil, "", fmt.Errorf("more than %d keys in one field", maxKeysPerField)
		}
		keys = append(keys, key)
	}
	return keys, "", nil
}

// publicKeyFrom parses a PEM "PUBLIC KEY" block.
func publicKeyFrom(block *pem.Block) (verify.PublicKey, error) {
	if block.Type != "PUBLIC KEY" {
		return verify.PublicKey{}, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return verify.PublicKey{}, fmt.Errorf("parsing public key: %w", err)
	}
	return verify.PublicKey{Key: pub, PEM: string(pem.EncodeToMemory(block))}, nil
}

func isKeyRef(s string) bool {
	for _, prefix := range []string{"k8s://", "awskms://", "gcpkms://", "azurekms://", "hashivault://"} {
		if strings.HasPrefix(s, prefix) && len(s) > len(prefix) {
			return true
		}
	}
	return false
}

// parseSingleKey parses a field that holds exactly one PEM public key (rekor/ctlog pubkey).
func parseSingleKey(value string) (*verify.PublicKey, error) {
	if strings.TrimSpace(value) == "" || v1.HasVariables(value) {
		return nil, nil
	}
	keys, ref, err := splitPublicKeys(value)
	if err != nil {
		return nil, err
	}
	if ref != "" || len(keys) != 1 {
		return nil, fmt.Errorf("want exactly one PEM \"PUBLIC KEY\" block")
	}
	return &keys[0], nil
}

// parseCertificates parses PEM CERTIFICATE blocks; Kyverno also accepts base64-encoded PEM
// (spec §3.2). max bounds the number of certificates.
func parseCertificates(value string, max int) ([]*x509.Certificate, error) {
	text := strings.TrimSpace(value)
	if text == "" || v1.HasVariables(text) {
		return nil, nil
	}
	if !strings.HasPrefix(text, "-----BEGIN") {
		decoded, err := base64.StdEncoding.DecodeString(text)
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(decoded)), "-----BEGIN") {
			return nil, fmt.Errorf("want PEM \"CERTIFICATE\" blocks (or base64-encoded PEM)")
		}
		text = strings.TrimSpace(string(decoded))
	}
	var certs []*x509.Certificate
	rest := []byte(text)
	for len(strings.TrimSpace(string(rest))) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("certificate %d: text after the last PEM block is not a PEM block", len(certs)+1)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate %d: PEM block is %q, want \"CERTIFICATE\"", len(certs)+1, block.Type)
		}
		if len(certs) == max {
			return nil, fmt.Errorf("certificate chain too long, maximum allowed is %d", max)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}
