package notary

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/notaryproject/notation-core-go/revocation"
	"github.com/notaryproject/notation-core-go/revocation/crl"
	"github.com/notaryproject/notation-core-go/revocation/purpose"
	"github.com/notaryproject/notation-core-go/revocation/result"
	"github.com/notaryproject/notation-go"
	nverifier "github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vouchproject/vouch/internal/verify"
)

// storeName names vouch's trust stores in the trust policies it builds.
const storeName = "vouch"

// maxRevocationResponse caps an OCSP response or CRL body.
const maxRevocationResponse = 8 << 20

// memoryStore is notation's X509TrustStore over certificates held in memory: the same
// certificates under "ca" and "signingAuthority", the TSA certificates under "tsa".
type memoryStore struct {
	signing []*x509.Certificate
	tsa     []*x509.Certificate
}

// GetCertificates returns the certificates of the named store of the given type.
func (m *memoryStore) GetCertificates(_ context.Context, t truststore.Type, name string) ([]*x509.Certificate, error) {
	if name != storeName {
		return nil, truststore.TrustStoreError{Msg: fmt.Sprintf("the trust store %q of type %q does not exist", name, t)}
	}
	var certs []*x509.Certificate
	switch t {
	case truststore.TypeCA, truststore.TypeSigningAuthority:
		certs = m.signing
	case truststore.TypeTSA:
		certs = m.tsa
	}
	if len(certs) == 0 {
		return nil, truststore.TrustStoreError{Msg: fmt.Sprintf("no x509 certificates were found in trust store %q of type %q", name, t)}
	}
	return certs, nil
}

// policyFor returns the trust policy of one verification: a single strict statement scoped
// to the repository, any identity under the trusted certificates, and the TSA store (checked
// once the signing chain has expired) when the attestor names TSA certificates.
func policyFor(repo string, withTSA bool) *trustpolicy.Document {
	stores := []string{"ca:" + storeName, "signingAuthority:" + storeName}
	sv := trustpolicy.SignatureVerification{VerificationLevel: trustpolicy.LevelStrict.Name}
	if withTSA {
		stores = append(stores, "tsa:"+storeName)
		sv.VerifyTimestamp = trustpolicy.OptionAfterCertExpiry
	}
	return &trustpolicy.Document{
		Version: "1.0",
		TrustPolicies: []trustpolicy.TrustPolicy{{
			Name:                  storeName,
			RegistryScopes:        []string{repo},
			SignatureVerification: sv,
			TrustStores:           stores,
			TrustedIdentities:     []string{"*"},
		}},
	}
}

// trustVerifier is notation's verifier for one attestor and repository, with the revocation
// recorder that tells an unknown revocation status from a revoked certificate.
type trustVerifier struct {
	nv         notation.Verifier
	revocation *recorder
	recheck    time.Duration // how long a pass that rests on a revocation check holds
}

// newTrustVerifier builds the trust store, trust policy and notation verifier of an attestor.
func (v *Verifier) newTrustVerifier(a *verify.Attestor, repo string) (*trustVerifier, error) {
	store := &memoryStore{}
	if a.Certificate != nil {
		store.signing = append(store.signing, a.Certificate)
	}
	store.signing = append(store.signing, a.CertificateChain...)
	if a.CTLog != nil {
		// Notation trusts TSA roots only: the token carries the rest of its chain.
		for _, c := range a.CTLog.TSACertChain {
			if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
				store.tsa = append(store.tsa, c)
			}
		}
	}
	rec := &recorder{}
	fetcher, err := crl.NewHTTPFetcher(v.revocationHTTP)
	if err != nil {
		return nil, verify.Errorf(verify.CodeUnsupported, "building the CRL fetcher", err)
	}
	opts := nverifier.VerifierOptions{}
	for _, p := range []purpose.Purpose{purpose.CodeSigning, purpose.Timestamping} {
		val, err := revocation.NewWithOptions(revocation.Options{OCSPHTTPClient: v.revocationHTTP, CRLFetcher: fetcher, CertChainPurpose: p})
		if err != nil {
			return nil, verify.Errorf(verify.CodeUnsupported, "building the revocation validator", err)
		}
		if p == purpose.CodeSigning {
			opts.RevocationCodeSigningValidator = &recordingValidator{next: val, rec: rec}
		} else {
			opts.RevocationTimestampingValidator = &recordingValidator{next: val, rec: rec}
		}
	}
	withTSA := a.CTLog != nil && len(a.CTLog.TSACertChain) > 0
	nv, err := nverifier.NewWithOptions(policyFor(repo, withTSA), store, nil, opts)
	if err != nil {
		return nil, verify.Errorf(verify.CodeUnsupported, fmt.Sprintf("building the trust policy for %s", repo), err)
	}
	return &trustVerifier{nv: nv, revocation: rec, recheck: v.revocationRecheck}, nil
}

// recorder remembers whether a revocation check of the current signature ended with an
// unknown status (no responder answered) rather than a revoked certificate.
type recorder struct {
	mu      sync.Mutex
	unkwn   bool
	checked bool // a certificate's status was checked and found good (it is revocable)
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.unkwn, r.checked = false, false
	r.mu.Unlock()
}

// revocable reports whether the last signature's verification rested on a revocation check.
func (r *recorder) revocable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checked
}

func (r *recorder) unknown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unkwn
}

// recordingValidator passes revocation checks to notation-core-go and records their results.
type recordingValidator struct {
	next revocation.Validator
	rec  *recorder
}

// ValidateContext checks a chain's revocation status, noting an unknown one.
func (r *recordingValidator) ValidateContext(ctx context.Context, opts revocation.ValidateContextOptions) ([]*result.CertRevocationResult, error) {
	res, err := r.next.ValidateContext(ctx, opts)
	if err != nil {
		return res, err
	}
	revoked, unknown, checked := false, false, false
	for _, c := range res {
		switch c.Result {
		case result.ResultRevoked:
			revoked = true
		case result.ResultOK:
			checked = true
		case result.ResultNonRevokable:
		default:
			unknown = true
		}
	}
	r.rec.mu.Lock()
	if unknown && !revoked {
		r.rec.unkwn = true
	}
	if checked {
		r.rec.checked = true
	}
	r.rec.mu.Unlock()
	return res, err
}

// classify turns notation's verdict on one signature into a vouch error: the first enforced
// check that failed decides the code; an unknown revocation status is undecided.
func classify(what string, target *artifact, outcome *notation.VerificationOutcome, err error, revocationUnknown bool) *verify.Error {
	if outcome == nil {
		return verify.Errorf(verify.CodeUnsupported, what, err)
	}
	for _, r := range outcome.VerificationResults {
		if r.Error == nil || r.Action != trustpolicy.ActionEnforce {
			continue
		}
		msg := fmt.Sprintf("%s: %s: %s", what, r.Type, r.Error)
		switch r.Type {
		case trustpolicy.TypeIntegrity:
			return verify.Errorf(verify.CodeInvalid, msg, nil)
		case trustpolicy.TypeRevocation, trustpolicy.TypeAuthenticTimestamp:
			if revocationUnknown {
				return verify.Errorf(verify.CodeUnavailable, msg+" (could not reach a revocation responder)", nil)
			}
		}
		return verify.Errorf(verify.CodeNoMatch, msg, nil)
	}
	if named, ok := signedTarget(outcome); ok && !sameDescriptor(named, target.desc) {
		return verify.Errorf(verify.CodeDigestMismatch, fmt.Sprintf("%s: the signature envelope names %s (%s, %d bytes), the image is %s (%s, %d bytes)",
			what, named.Digest, named.MediaType, named.Size, target.desc.Digest, target.desc.MediaType, target.desc.Size), nil)
	}
	return verify.Errorf(verify.CodeNoMatch, what+": "+err.Error(), nil)
}

// signedTarget returns the target descriptor a verified envelope's payload names.
func signedTarget(outcome *notation.VerificationOutcome) (ocispec.Descriptor, bool) {
	if outcome.EnvelopeContent == nil {
		return ocispec.Descriptor{}, false
	}
	var p struct {
		TargetArtifact ocispec.Descriptor `json:"targetArtifact"`
	}
	if json.Unmarshal(outcome.EnvelopeContent.Payload.Content, &p) != nil {
		return ocispec.Descriptor{}, false
	}
	return p.TargetArtifact, true
}

func sameDescriptor(a, b ocispec.Descriptor) bool {
	return a.Digest == b.Digest && a.MediaType == b.MediaType && a.Size == b.Size
}

// cappedTransport refuses revocation responses larger than limit.
type cappedTransport struct {
	base  http.RoundTripper
	limit int64
}

// RoundTrip sends req and caps the response body.
func (t *cappedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.limit {
		resp.Body.Close()
		return nil, fmt.Errorf("revocation response from %s is %d bytes, more than the limit of %d", req.URL.Host, resp.ContentLength, t.limit)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.limit + 1}
	return resp, nil
}

// cappedBody fails a read that would take the body past its limit (left starts at limit+1).
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left <= 0 {
		return n - 1, errors.New("revocation response exceeds its size limit")
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }
