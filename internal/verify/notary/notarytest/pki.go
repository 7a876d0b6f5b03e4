package notarytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"time"
)

// CA is a certificate authority: its certificate and key, and the certificates above it
// (nearest first, the root last; empty for a root).
type CA struct {
	Cert  *x509.Certificate
	Key   *ecdsa.PrivateKey
	Chain []*x509.Certificate
}

// Leaf is a code-signing certificate with its key and issuing chain (issuer first, root last).
type Leaf struct {
	Cert  *x509.Certificate
	Key   *ecdsa.PrivateKey
	Chain []*x509.Certificate
}

// Validity is a certificate's validity window.
type Validity struct{ NotBefore, NotAfter time.Time }

// Around returns the window [now+from, now+to].
func Around(from, to time.Duration) Validity {
	now := time.Now()
	return Validity{NotBefore: now.Add(from), NotAfter: now.Add(to)}
}

// NewRoot returns a self-signed root CA.
func NewRoot(commonName string, v Validity) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"vouch test"}},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert, err := issue(tmpl, tmpl, key, key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Endpoints are a certificate's revocation endpoints (CRL distribution point, OCSP server).
type Endpoints struct{ CRL, OCSP string }

// NewIntermediate returns a CA issued by ca.
func (ca *CA) NewIntermediate(commonName string, v Validity, ep Endpoints) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"vouch test"}},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	ep.apply(tmpl)
	cert, err := issue(tmpl, ca.Cert, key, ca.Key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, Chain: append([]*x509.Certificate{ca.Cert}, ca.Chain...)}, nil
}

// LeafOptions describes a code-signing certificate.
type LeafOptions struct {
	CommonName string
	Validity   Validity
	Endpoints  Endpoints
}

// IssueLeaf issues a code-signing certificate (digitalSignature, codeSigning).
func (ca *CA) IssueLeaf(o LeafOptions) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if o.CommonName == "" {
		o.CommonName = "signer"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.CommonName, Organization: []string{"vouch test"}},
		NotBefore:    o.Validity.NotBefore,
		NotAfter:     o.Validity.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	o.Endpoints.apply(tmpl)
	cert, err := issue(tmpl, ca.Cert, key, ca.Key)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, Key: key, Chain: append([]*x509.Certificate{ca.Cert}, ca.Chain...)}, nil
}

// Full returns the chain a Notary envelope carries: the leaf, its issuers, the root.
func (l *Leaf) Full() []*x509.Certificate {
	return append([]*x509.Certificate{l.Cert}, l.Chain...)
}

// Root returns the root certificate above the leaf.
func (l *Leaf) Root() *x509.Certificate { return l.Chain[len(l.Chain)-1] }

func (ep Endpoints) apply(tmpl *x509.Certificate) {
	if ep.CRL != "" {
		tmpl.CRLDistributionPoints = []string{ep.CRL}
	}
	if ep.OCSP != "" {
		tmpl.OCSPServer = []string{ep.OCSP}
	}
}

// PEM encodes certificates as PEM, in order.
func PEM(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

func issue(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}
