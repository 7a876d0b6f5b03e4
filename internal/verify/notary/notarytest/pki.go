package notarytest

import (
	"crypto/x509"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
)

// CA is a certificate authority of fixture's test PKI, issuing Notary certificates.
type CA fixture.CA

// Leaf is a code-signing certificate with its key and issuing chain (issuer first, root last).
type Leaf fixture.Leaf

// Validity is a certificate's validity window.
type Validity = fixture.Validity

// Endpoints are a certificate's revocation endpoints (CRL distribution point, OCSP server).
type Endpoints = fixture.Endpoints

// LeafOptions describes a code-signing certificate: its CommonName ("signer" if empty),
// Validity and Endpoints; fixture's Fulcio options are for cosign.
type LeafOptions = fixture.LeafOptions

// Around returns the window [now+from, now+to].
func Around(from, to time.Duration) Validity { return fixture.ValidAround(from, to) }

// NewRoot returns a self-signed root CA.
func NewRoot(commonName string, v Validity) (*CA, error) {
	ca, err := fixture.NewRootCA(commonName, v)
	return (*CA)(ca), err
}

// NewIntermediate returns a CA issued by ca. Unlike fixture's intermediate it carries no
// extended key usage (notation-go asks none of a CA), and ep publishes its revocation.
func (ca *CA) NewIntermediate(commonName string, v Validity, ep Endpoints) (*CA, error) {
	sub, err := (*fixture.CA)(ca).NewSubCA(commonName, fixture.CAOptions{Validity: v, Endpoints: ep})
	return (*CA)(sub), err
}

// IssueLeaf issues a code-signing certificate (digitalSignature, codeSigning).
func (ca *CA) IssueLeaf(o LeafOptions) (*Leaf, error) {
	if o.CommonName == "" {
		o.CommonName = "signer"
	}
	leaf, err := (*fixture.CA)(ca).IssueLeaf(o)
	return (*Leaf)(leaf), err
}

// Full returns the chain a Notary envelope carries: the leaf, its issuers, the root.
func (l *Leaf) Full() []*x509.Certificate {
	return append([]*x509.Certificate{l.Cert}, l.Chain...)
}

// Root returns the root certificate above the leaf.
func (l *Leaf) Root() *x509.Certificate { return l.Chain[len(l.Chain)-1] }

// PEM encodes certificates as PEM, in order.
func PEM(certs ...*x509.Certificate) string { return fixture.CertsPEM(certs...) }
