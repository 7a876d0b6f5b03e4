package cosign

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"

	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/tuf"

	"github.com/vouchproject/vouch/internal/verify"
)

// maxTrustedRoots bounds the parsed trusted roots kept by a Verifier (one per distinct
// annotation value, so in practice one per policy version).
const maxTrustedRoots = 64

// trustRoot is a trusted_root.json turned into cosign's legacy trust fields. Validity periods
// of the logs and authorities are not carried over: cosign's legacy checks have no place for
// them (the certificates' own validity is still checked at the signature's trusted time).
type trustRoot struct {
	fulcioRoots         []*x509.Certificate
	fulcioIntermediates []*x509.Certificate
	rekor               *cosign.TrustedTransparencyLogPubKeys // nil: no Rekor log
	ct                  *cosign.TrustedTransparencyLogPubKeys // nil: no CT log
	tsa                 *tsaChain                             // nil: no timestamp authority
	sg                  *root.TrustedRoot                     // the document itself, for Sigstore bundles
}

// tsaChain is an RFC 3161 timestamp authority's certificates, as cosign's CheckOpts take them.
type tsaChain struct {
	leaf          *x509.Certificate // optional: timestamps usually embed it
	intermediates []*x509.Certificate
	roots         []*x509.Certificate
}

func parseTrustedRoot(data []byte) (*trustRoot, error) {
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parsing trusted_root.json: %w", err)
	}
	out := &trustRoot{sg: tr}
	for _, ca := range tr.FulcioCertificateAuthorities() {
		if f, ok := ca.(*root.FulcioCertificateAuthority); ok && f.Root != nil {
			out.fulcioRoots = append(out.fulcioRoots, f.Root)
			out.fulcioIntermediates = append(out.fulcioIntermediates, f.Intermediates...)
		}
	}
	if out.rekor, err = logKeys(tr.RekorLogs()); err != nil {
		return nil, fmt.Errorf("trusted_root.json tlogs: %w", err)
	}
	if out.ct, err = logKeys(tr.CTLogs()); err != nil {
		return nil, fmt.Errorf("trusted_root.json ctlogs: %w", err)
	}
	var tsa tsaChain
	var leaves int
	for _, ta := range tr.TimestampingAuthorities() {
		s, ok := ta.(*root.SigstoreTimestampingAuthority)
		if !ok || s.Root == nil {
			continue
		}
		tsa.roots = append(tsa.roots, s.Root)
		tsa.intermediates = append(tsa.intermediates, s.Intermediates...)
		if s.Leaf != nil {
			tsa.leaf = s.Leaf
			leaves++
		}
	}
	if leaves > 1 {
		tsa.leaf = nil // several authorities: each timestamp names its own signer
	}
	if len(tsa.roots) > 0 {
		out.tsa = &tsa
	}
	return out, nil
}

// logKeys turns transparency-log instances into cosign's map of log ID to key.
func logKeys(logs map[string]*root.TransparencyLog) (*cosign.TrustedTransparencyLogPubKeys, error) {
	if len(logs) == 0 {
		return nil, nil
	}
	keys := cosign.NewTrustedTransparencyLogPubKeys()
	for _, l := range logs {
		if l == nil || l.PublicKey == nil {
			continue
		}
		id, err := cosign.GetTransparencyLogID(l.PublicKey)
		if err != nil {
			return nil, err
		}
		keys.Keys[id] = cosign.TransparencyLogPubKey{PubKey: l.PublicKey, Status: tuf.Active}
	}
	if len(keys.Keys) == 0 {
		return nil, nil
	}
	return &keys, nil
}

// trustRoots caches parsed trusted roots by content.
type trustRoots struct {
	mu     sync.Mutex
	parsed map[[32]byte]*trustRoot
}

// get returns the parsed trusted root of an entry, nil when it has none.
func (c *trustRoots) get(data []byte) (*trustRoot, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	sum := sha256.Sum256(data)
	c.mu.Lock()
	tr, ok := c.parsed[sum]
	c.mu.Unlock()
	if ok {
		return tr, nil
	}
	tr, err := parseTrustedRoot(data)
	if err != nil {
		return nil, verify.Errorf(verify.CodeUnsupported, "invalid "+verify.TrustedRootAnnotation+" annotation", err)
	}
	c.mu.Lock()
	if c.parsed == nil || len(c.parsed) >= maxTrustedRoots {
		c.parsed = map[[32]byte]*trustRoot{}
	}
	c.parsed[sum] = tr
	c.mu.Unlock()
	return tr, nil
}

// missing collects the trust material an attestor needs and has nowhere to take from.
type missing []string

func (m missing) err() error {
	if len(m) == 0 {
		return nil
	}
	it := "it"
	if len(m) > 1 {
		it = "them"
	}
	return verify.Errorf(verify.CodeUnsupported, "cannot verify offline: no "+strings.Join(m, ", no ")+
		"; provide "+it+" in the attestor or in a "+verify.TrustedRootAnnotation+" policy annotation (vouch does not fetch the public-good Sigstore trust root)", nil)
}

// transparency sets the Rekor trust of co: the attestor's rekor.pubkey, else the trusted
// root's Rekor logs. Verification is offline: the signature's bundle (SET) is the proof.
func transparency(co *cosign.CheckOpts, a *verify.Attestor, tr *trustRoot, need *missing) error {
	co.IgnoreTlog = a.IgnoreTlog()
	if co.IgnoreTlog {
		return nil
	}
	switch {
	case a.Rekor != nil && a.Rekor.PubKey != nil:
		keys := cosign.NewTrustedTransparencyLogPubKeys()
		if err := keys.AddTransparencyLogPubKey([]byte(a.Rekor.PubKey.PEM), tuf.Active); err != nil {
			return verify.Errorf(verify.CodeUnsupported, "failed to load Rekor public keys", err)
		}
		co.RekorPubKeys = &keys
	case tr != nil && tr.rekor != nil:
		co.RekorPubKeys = tr.rekor
	default:
		*need = append(*need, "Rekor public key (rekor.pubkey, or rekor.ignoreTlog: true)")
	}
	return nil
}

// certificateTransparency sets the CT trust of co for attestors whose certificates must carry
// an SCT: the attestor's ctlog.pubkey, else the trusted root's CT logs.
func certificateTransparency(co *cosign.CheckOpts, a *verify.Attestor, tr *trustRoot, need *missing) error {
	co.IgnoreSCT = a.IgnoreSCT()
	if co.IgnoreSCT {
		return nil
	}
	switch {
	case a.CTLog != nil && a.CTLog.PubKey != nil:
		keys := cosign.NewTrustedTransparencyLogPubKeys()
		if err := keys.AddTransparencyLogPubKey([]byte(a.CTLog.PubKey.PEM), tuf.Active); err != nil {
			return verify.Errorf(verify.CodeUnsupported, "failed to load CTLogs public keys", err)
		}
		co.CTLogPubKeys = &keys
	case tr != nil && tr.ct != nil:
		co.CTLogPubKeys = tr.ct
	default:
		*need = append(*need, "CT log public key (ctlog.pubkey, or ctlog.ignoreSCT: true)")
	}
	return nil
}

// timestamps sets the RFC 3161 timestamp trust of co: the attestor's ctlog.tsaCertChain, else
// the trusted root's timestamp authorities. Without either, timestamps are not used.
func timestamps(co *cosign.CheckOpts, a *verify.Attestor, tr *trustRoot) error {
	var chain *tsaChain
	switch {
	case a.CTLog != nil && len(a.CTLog.TSACertChain) > 0:
		c, err := splitTSAChain(a.CTLog.TSACertChain)
		if err != nil {
			return verify.Errorf(verify.CodeUnsupported, "ctlog.tsaCertChain", err)
		}
		chain = c
	case tr != nil && tr.tsa != nil:
		chain = tr.tsa
	default:
		return nil
	}
	co.UseSignedTimestamps = true
	co.TSACertificate = chain.leaf
	co.TSAIntermediateCertificates = chain.intermediates
	co.TSARootCertificates = chain.roots
	return nil
}

// splitTSAChain sorts a tsaCertChain into the TSA's certificate, intermediates and roots as
// Kyverno does (spec §3.2): self-signed CAs are roots, other CAs intermediates, the rest the
// TSA's own certificate — at most one.
func splitTSAChain(certs []*x509.Certificate) (*tsaChain, error) {
	c := &tsaChain{}
	for _, cert := range certs {
		switch {
		case !cert.IsCA:
			if c.leaf != nil {
				return nil, fmt.Errorf("certificate chain must contain at most one TSA certificate")
			}
			c.leaf = cert
		case selfSigned(cert):
			c.roots = append(c.roots, cert)
		default:
			c.intermediates = append(c.intermediates, cert)
		}
	}
	if len(c.roots) == 0 {
		return nil, fmt.Errorf("certificate chain has no root (self-signed CA) certificate")
	}
	return c, nil
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

func pool(certs ...[]*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, list := range certs {
		for _, c := range list {
			p.AddCert(c)
		}
	}
	return p
}
