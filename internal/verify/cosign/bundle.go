package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vouchproject/vouch/internal/verify"
)

// CosignSignPredicateType is the predicate type of the in-toto statement cosign v3 signs for
// a plain image signature (`cosign sign` in the bundle format): the statement's subject is the
// image digest, its annotations the -a values.
const CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"

// intotoPayloadType is the DSSE payload type of an in-toto statement.
const intotoPayloadType = "application/vnd.in-toto+json"

// Bundle is a Sigstore bundle found as a referrer of an image: the parsed bundle (its
// verification material: key hint or certificate, transparency-log entries, RFC 3161
// timestamps) and what it signs.
type Bundle struct {
	Bundle   *sgbundle.Bundle
	Version  string // v0.1, v0.2, v0.3
	Referrer string // digest of the referrer manifest holding it
	Listing  string // verify.RouteOCI11Referrer or verify.RouteReferrersTagSchema
	// For a DSSE envelope: its payload type, and the in-toto statement it carries (decoded from
	// the envelope's payload, nil if it is not one). Empty for a message signature.
	PayloadType   string
	Statement     *Statement
	PredicateType string
}

// Statement is an in-toto statement as a DSSE envelope carries it.
type Statement struct {
	Type          string            `json:"_type"`
	PredicateType string            `json:"predicateType"`
	Subject       []StatementTarget `json:"subject"`
	Predicate     json.RawMessage   `json:"predicate,omitempty"`
}

// StatementTarget is one subject of an in-toto statement.
type StatementTarget struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// IsSignature reports whether the bundle is an image signature: a message signature, or a
// DSSE envelope of cosign's signature statement (cosign v3 `cosign sign`). Other DSSE bundles
// are attestations.
func (b *Bundle) IsSignature() bool {
	return b.PayloadType == "" || b.PredicateType == CosignSignPredicateType
}

// detail describes where the bundle was found, for messages.
func (b *Bundle) detail() string {
	content := "message signature"
	if b.PayloadType != "" {
		content = "DSSE " + b.PredicateType
	}
	return fmt.Sprintf("Sigstore bundle %s (%s) in referrer %s (%s)", b.Version, content, b.Referrer, routeName(b.Listing))
}

type bundlesResult struct {
	found    []*Bundle
	problems []string
}

// bundles reads the Sigstore bundles among the image's referrers in repo, once per
// evaluation: each referrer manifest must hold exactly one bundle layer (cosign v3's layout),
// at most MaxPayloadBytes, that parses as a bundle sigstore-go accepts (v0.1 to v0.3).
// Referrers that do not are kept as problems, reported when nothing verifies.
func (v *Verifier) bundles(_ context.Context, s verify.Subject, src *source, repo name.Repository, list *referrerList) ([]*Bundle, []string, error) {
	got, err := s.Memo.Do("cosign-bundles:"+src.in(repo).String(), func() (any, error) {
		out := &bundlesResult{}
		for _, r := range list.items {
			if r.kind != kindBundle {
				continue
			}
			b, err := v.readBundle(repo.Digest(r.desc.Digest.String()), src.remote)
			if err != nil {
				if verify.Undecided(err) {
					return nil, err
				}
				out.problems = append(out.problems, fmt.Sprintf("referrer %s: %v", r.desc.Digest, err))
				continue
			}
			b.Referrer, b.Listing = r.desc.Digest.String(), r.route
			out.found = append(out.found, b)
		}
		return out, nil
	})
	if err != nil {
		return nil, nil, err
	}
	res := got.(*bundlesResult)
	return res.found, res.problems, nil
}

// readBundle fetches and parses the bundle of one referrer manifest.
func (v *Verifier) readBundle(ref name.Digest, ropts []remote.Option) (*Bundle, error) {
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return nil, registryError("fetching "+ref.String(), err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "parsing the referrer manifest", err)
	}
	if len(m.Layers) != 1 {
		return nil, verify.Errorf(verify.CodeInvalid, fmt.Sprintf("a bundle referrer must have exactly one layer, has %d", len(m.Layers)), nil)
	}
	l := m.Layers[0]
	if !strings.HasPrefix(string(l.MediaType), BundleMediaTypePrefix) {
		return nil, verify.Errorf(verify.CodeInvalid, "layer media type "+string(l.MediaType)+" is not a Sigstore bundle", nil)
	}
	raw, err := v.readBlob(ref, l, ropts)
	if err != nil {
		return nil, err
	}
	return ParseBundle(raw)
}

// ParseBundle parses a Sigstore bundle (JSON, v0.1 to v0.3) and decodes what it signs. A
// certificate chain of more than MaxChainCertificates is a failure, before any is parsed.
func ParseBundle(raw []byte) (*Bundle, error) {
	pb := &protobundle.Bundle{}
	if err := protojson.Unmarshal(raw, pb); err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "parsing the Sigstore bundle", err)
	}
	if n := len(pb.GetVerificationMaterial().GetX509CertificateChain().GetCertificates()); n > MaxChainCertificates {
		return nil, chainTooLarge("Sigstore bundle verification material", n)
	}
	sb, err := sgbundle.NewBundle(pb)
	if err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "invalid Sigstore bundle", err)
	}
	b := &Bundle{Bundle: sb}
	if b.Version, err = sb.Version(); err != nil {
		return nil, verify.Errorf(verify.CodeInvalid, "invalid Sigstore bundle", err)
	}
	if env := pb.GetDsseEnvelope(); env != nil {
		b.PayloadType = env.GetPayloadType()
		if b.PayloadType == intotoPayloadType {
			st := &Statement{}
			if err := json.Unmarshal(env.GetPayload(), st); err != nil {
				return nil, verify.Errorf(verify.CodeInvalid, "decoding the in-toto statement of the bundle", err)
			}
			b.Statement, b.PredicateType = st, st.PredicateType
		}
	}
	return b, nil
}

// bundleTrust is what a bundle is verified with for one attestor: sigstore-go trusted material
// built from the attestor's key, certificates, roots, Rekor, CT and TSA material and the
// policy's trusted root (the same sources, in the same order, as the cosign checks of plan),
// and whether transparency-log entries and SCTs are required. Everything is offline.
type bundleTrust struct {
	material    root.TrustedMaterialCollection
	key         bool // verify with a public key (keys, KMS, certificates.cert)
	pinned      *x509.Certificate
	pinnedChain []*x509.Certificate
	keyless     *verify.Keyless
	tlog        bool
	sct         bool
	tsa         bool
}

// newBundleTrust builds the trust of attestor a for bundles; sv is the plan's key verifier (nil
// for keyless and certChain-only attestors).
func newBundleTrust(a *verify.Attestor, tr *trustRoot, sv signature.Verifier) (*bundleTrust, error) {
	bt := &bundleTrust{tlog: !a.IgnoreTlog()}
	var cas []root.CertificateAuthority
	switch a.Kind {
	case "keys":
		bt.key = true
	case "certificates":
		bt.key = a.Certificate != nil
		bt.pinned, bt.pinnedChain = a.Certificate, a.CertificateChain
		switch {
		case len(a.CertificateChain) > 0:
			cas = authorities(a.CertificateChain)
			bt.sct = !a.IgnoreSCT()
		case a.Certificate != nil:
			cas = []root.CertificateAuthority{&root.FulcioCertificateAuthority{Root: a.Certificate}}
		}
	case "keyless":
		bt.keyless, bt.sct = a.Keyless, !a.IgnoreSCT()
		switch {
		case len(a.Keyless.Roots) > 0:
			cas = authorities(a.Keyless.Roots)
		case tr != nil && tr.sg != nil:
			cas = tr.sg.FulcioCertificateAuthorities()
		}
	}
	if bt.key && sv != nil {
		k := root.NewExpiringKey(sv, time.Time{}, time.Time{})
		bt.material = append(bt.material, root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return k, nil }))
	}
	rekor, err := logsFor(a.Rekor != nil && a.Rekor.PubKey != nil, func() *verify.PublicKey { return a.Rekor.PubKey }, tr, func(r *root.TrustedRoot) map[string]*root.TransparencyLog { return r.RekorLogs() })
	if err != nil {
		return nil, verify.Errorf(verify.CodeUnsupported, "failed to load Rekor public keys", err)
	}
	ct, err := logsFor(a.CTLog != nil && a.CTLog.PubKey != nil, func() *verify.PublicKey { return a.CTLog.PubKey }, tr, func(r *root.TrustedRoot) map[string]*root.TransparencyLog { return r.CTLogs() })
	if err != nil {
		return nil, verify.Errorf(verify.CodeUnsupported, "failed to load CTLogs public keys", err)
	}
	var tsas []root.TimestampingAuthority
	switch {
	case a.CTLog != nil && len(a.CTLog.TSACertChain) > 0:
		c, err := splitTSAChain(a.CTLog.TSACertChain)
		if err != nil {
			return nil, verify.Errorf(verify.CodeUnsupported, "ctlog.tsaCertChain", err)
		}
		for _, r := range c.roots {
			tsas = append(tsas, &root.SigstoreTimestampingAuthority{Root: r, Intermediates: c.intermediates, Leaf: c.leaf})
		}
	case tr != nil && tr.sg != nil:
		tsas = tr.sg.TimestampingAuthorities()
	}
	bt.tsa = len(tsas) > 0
	base, err := root.NewTrustedRoot(root.TrustedRootMediaType01, cas, ct, tsas, rekor)
	if err != nil {
		return nil, verify.Errorf(verify.CodeUnsupported, "building the trusted material", err)
	}
	bt.material = append(bt.material, base)
	return bt, nil
}

// authorities turns policy certificates into certificate authorities as anchors does: each
// self-signed certificate a root with the others as intermediates; without one, every
// certificate a root (Kyverno makes them all roots, spec §3.2).
func authorities(certs []*x509.Certificate) []root.CertificateAuthority {
	var self, other []*x509.Certificate
	for _, c := range certs {
		if selfSigned(c) {
			self = append(self, c)
		} else {
			other = append(other, c)
		}
	}
	if len(self) == 0 {
		self, other = certs, nil
	}
	out := make([]root.CertificateAuthority, 0, len(self))
	for _, r := range self {
		out = append(out, &root.FulcioCertificateAuthority{Root: r, Intermediates: other})
	}
	return out
}

// logsFor returns the transparency logs of one kind: the attestor's key when it names one,
// else the policy's trusted root's logs. A policy key is valid for any time.
func logsFor(own bool, key func() *verify.PublicKey, tr *trustRoot, fromRoot func(*root.TrustedRoot) map[string]*root.TransparencyLog) (map[string]*root.TransparencyLog, error) {
	if !own {
		if tr != nil && tr.sg != nil {
			return fromRoot(tr.sg), nil
		}
		return map[string]*root.TransparencyLog{}, nil
	}
	pk := key()
	id, err := cosign.GetTransparencyLogID(pk.Key)
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(id)
	if err != nil {
		return nil, err
	}
	return map[string]*root.TransparencyLog{id: {
		ID: raw, PublicKey: pk.Key, HashFunc: crypto.SHA256, SignatureHashFunc: crypto.SHA256,
		ValidityPeriodStart: time.Unix(0, 0),
	}}, nil
}

// verifyBundle verifies one bundle for the attestor offline with sigstore-go, bound to the
// image digest h: a DSSE statement must name h among its subjects, a message signature must
// be over h (landscape §4.4 group 6). It then applies vouch's checks: the keyless identity
// (spec §3.5) and the pinned certificate.
func (bt *bundleTrust) verifyBundle(b *Bundle, h v1.Hash) (*sgverify.VerificationResult, error) {
	vc, err := b.Bundle.VerificationContent()
	if err != nil {
		return nil, err
	}
	leaf := vc.Certificate()
	switch {
	case leaf == nil && !bt.key:
		return nil, fmt.Errorf("the bundle is signed with a key, the attestor trusts certificates")
	case leaf != nil && bt.key && bt.pinned == nil:
		return nil, fmt.Errorf("expected key signature, not certificate")
	}
	var opts []sgverify.VerifierOption
	if bt.tlog {
		opts = append(opts, sgverify.WithTransparencyLog(1))
	}
	if leaf != nil && bt.sct {
		opts = append(opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	ts, err := b.Bundle.Timestamps()
	if err != nil {
		return nil, err
	}
	switch {
	case leaf == nil:
		// A key needs no observer time (cosign: WithNoObserverTimestamps); timestamps in the
		// bundle are verified when the policy trusts a TSA.
		if bt.tsa && len(ts) > 0 {
			opts = append(opts, sgverify.WithSignedTimestamps(1))
		} else {
			opts = append(opts, sgverify.WithNoObserverTimestamps())
		}
	case bt.tlog:
		opts = append(opts, sgverify.WithObserverTimestamps(1))
	case bt.tsa && len(ts) > 0:
		opts = append(opts, sgverify.WithSignedTimestamps(1))
	default:
		opts = append(opts, sgverify.WithCurrentTime())
	}
	v, err := sgverify.NewVerifier(bt.material, opts...)
	if err != nil {
		return nil, err
	}
	digest, err := hex.DecodeString(h.Hex)
	if err != nil {
		return nil, err
	}
	policy := sgverify.NewPolicy(sgverify.WithArtifactDigest(h.Algorithm, digest), sgverify.WithoutIdentitiesUnsafe())
	res, err := v.Verify(b.Bundle, policy)
	if err != nil {
		return nil, err
	}
	if b.PayloadType != "" && b.Statement == nil {
		return nil, fmt.Errorf("the DSSE payload is %s, not an in-toto statement", b.PayloadType)
	}
	return res, nil
}

// accept applies vouch's checks after sigstore-go's: a pinned certificate must be the
// bundle's certificate (or, for a key-signed bundle, valid at the verified times); the
// keyless identity must match.
func (bt *bundleTrust) accept(leaf *x509.Certificate, res *sgverify.VerificationResult) error {
	switch {
	case bt.pinned != nil && leaf != nil && !leaf.Equal(bt.pinned):
		return fmt.Errorf("the bundle's certificate is not certificates.cert")
	case bt.pinned != nil && leaf == nil:
		times := []time.Time{time.Now()}
		if len(res.VerifiedTimestamps) > 0 {
			times = times[:0]
			for _, t := range res.VerifiedTimestamps {
				times = append(times, t.Timestamp)
			}
		}
		for _, t := range times {
			if err := cosign.CheckExpiry(bt.pinned, bt.pinnedChain, t); err != nil {
				return fmt.Errorf("checking expiry on certificate: %w", err)
			}
		}
	}
	if bt.keyless != nil && constrains(bt.keyless) {
		if leaf == nil {
			return fmt.Errorf("certificate not found")
		}
		return checkIdentity(leaf, bt.keyless)
	}
	return nil
}

// annotations returns the annotations a signature bundle carries for the digest: those of the
// statement subject naming it (cosign v3 `sign -a`). Message signatures carry none.
func (b *Bundle) annotations(h v1.Hash) map[string]any {
	if b.Statement == nil {
		return nil
	}
	for _, s := range b.Statement.Subject {
		if s.Digest[h.Algorithm] == h.Hex {
			return s.Annotations
		}
	}
	return nil
}

// envelopeJSON returns the bundle's DSSE envelope as JSON (payload base64), nil for a message
// signature.
func (b *Bundle) envelopeJSON() []byte {
	env := b.Bundle.GetDsseEnvelope()
	if env == nil {
		return nil
	}
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	out := struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{PayloadType: env.GetPayloadType(), Payload: base64.StdEncoding.EncodeToString(env.GetPayload())}
	for _, s := range env.GetSignatures() {
		out.Signatures = append(out.Signatures, sig{KeyID: s.GetKeyid(), Sig: base64.StdEncoding.EncodeToString(s.GetSig())})
	}
	raw, _ := json.Marshal(out)
	return raw
}

// leafOf returns the bundle's signing certificate, nil for a key-signed bundle.
func leafOf(b *Bundle) *x509.Certificate {
	vc, err := b.Bundle.VerificationContent()
	if err != nil {
		return nil
	}
	return vc.Certificate()
}
