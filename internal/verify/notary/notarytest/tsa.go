package notarytest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/notaryproject/tspclient-go"
)

// TSA is an RFC 3161 timestamp authority: a root and a timestamping certificate (the
// critical timeStamping extended key usage alone, as RFC 3161 and notation require).
type TSA struct {
	Root *CA
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewTSA returns a timestamp authority whose certificates are valid for v.
func NewTSA(commonName string, v Validity) (*TSA, error) {
	root, err := NewRoot(commonName+" root", v)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}}) // id-kp-timeStamping
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial(),
		Subject:         pkix.Name{CommonName: commonName, Organization: []string{"vouch test"}},
		NotBefore:       v.NotBefore,
		NotAfter:        v.NotAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	cert, err := issue(tmpl, root.Cert, key, root.Key)
	if err != nil {
		return nil, err
	}
	return &TSA{Root: root, Cert: cert, Key: key}, nil
}

// ChainPEM returns the authority's certificates as a Kyverno ctlog.tsaCertChain: the
// timestamping certificate, then the root.
func (t *TSA) ChainPEM() string { return PEM(t.Cert, t.Root.Cert) }

// Roots returns a pool holding the authority's root.
func (t *TSA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(t.Root.Cert)
	return p
}

// At returns a timestamper whose timestamps state time at.
func (t *TSA) At(at time.Time) tspclient.Timestamper { return &stamper{tsa: t, at: at} }

type stamper struct {
	tsa *TSA
	at  time.Time
}

var hashes = map[string]crypto.Hash{
	"2.16.840.1.101.3.4.2.1": crypto.SHA256,
	"2.16.840.1.101.3.4.2.2": crypto.SHA384,
	"2.16.840.1.101.3.4.2.3": crypto.SHA512,
}

// Timestamp answers one request, as a TSA's HTTP endpoint would.
func (s *stamper) Timestamp(_ context.Context, req *tspclient.Request) (*tspclient.Response, error) {
	h, ok := hashes[req.MessageImprint.HashAlgorithm.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("unsupported hash algorithm %s", req.MessageImprint.HashAlgorithm.Algorithm)
	}
	ts := timestamp.Timestamp{
		HashAlgorithm:     h,
		HashedMessage:     req.MessageImprint.HashedMessage,
		Time:              s.at.UTC(),
		Nonce:             req.Nonce,
		Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2},
		AddTSACertificate: req.CertReq,
	}
	der, err := ts.CreateResponseWithOpts(s.tsa.Cert, s.tsa.Key, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	resp := &tspclient.Response{}
	if err := resp.UnmarshalBinary(der); err != nil {
		return nil, err
	}
	if err := resp.Validate(req); err != nil {
		return nil, err
	}
	return resp, nil
}
