package notarytest

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/notaryproject/tspclient-go"

	"github.com/vouchproject/vouch/internal/fixture"
)

// TSA is fixture's RFC 3161 timestamp authority (a root and a timestamping certificate with
// the critical timeStamping extended key usage alone, as RFC 3161 and notation require),
// answering tspclient requests.
type TSA fixture.TSA

// NewTSA returns a timestamp authority whose certificates are valid for v.
func NewTSA(commonName string, v Validity) (*TSA, error) {
	tsa, err := fixture.NewTSA(commonName, v)
	return (*TSA)(tsa), err
}

// ChainPEM returns the authority's certificates as a Kyverno ctlog.tsaCertChain: the
// timestamping certificate, then the root.
func (t *TSA) ChainPEM() string { return (*fixture.TSA)(t).ChainPEM() }

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
	der, err := (*fixture.TSA)(s.tsa).Respond(h, req.MessageImprint.HashedMessage, s.at.UTC(), req.Nonce, req.CertReq)
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
