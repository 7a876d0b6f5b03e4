package notary

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

// check verifies s with a (in a new evaluation) and checks the outcome: want "" is a pass.
func check(t *testing.T, w *world, s verify.Subject, a *verify.Attestor, want verify.Code, msg string) {
	t.Helper()
	ev, err := w.verifier.Verify(context.Background(), fresh(s), entry(), a)
	if want == "" {
		if err != nil {
			t.Fatalf("want pass, got %v", err)
		}
		if ev.Digest != s.Digest {
			t.Errorf("evidence digest %s, want %s", ev.Digest, s.Digest)
		}
		return
	}
	if err == nil {
		t.Fatalf("want %s, got pass", want)
	}
	if got := verify.CodeOf(err); got != want {
		t.Errorf("code %s, want %s; error: %v", got, want, err)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not contain %q", err, msg)
	}
}

func TestSignatureFormatsAndRoutes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		format    string
		referrers bool
	}{
		{"jws/referrers API", "jws", true},
		{"jws/tag schema", "jws", false},
		{"cose/referrers API", "cose", true},
		{"cose/tag schema", "cose", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tc.referrers)
			s := w.push("app:1")
			w.sign(s, w.leaf, SignOptions{Format: tc.format})
			check(t, w, s, trusting(w.root.Cert), "", "")
		})
	}
}

func TestTrust(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	s := w.push("app:1")
	w.sign(s, w.leaf, SignOptions{})
	other := mustCA(t)(notarytest.NewRoot("other root", notarytest.Around(-time.Hour, time.Hour)))

	// A rogue intermediate with the trusted intermediate's name, under another root.
	rogueRoot := mustCA(t)(notarytest.NewRoot("root", notarytest.Around(-time.Hour, time.Hour)))
	rogue := mustCA(t)(rogueRoot.NewIntermediate("intermediate", notarytest.Around(-time.Hour, time.Hour), notarytest.Endpoints{}))
	s2 := w.push("rogue:1")
	w.sign(s2, mustLeaf(t)(rogue.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)})), SignOptions{})

	for _, tc := range []struct {
		name    string
		s       verify.Subject
		a       *verify.Attestor
		want    verify.Code
		wantMsg string
	}{
		{"root as cert", s, trusting(w.root.Cert), "", ""},
		{"intermediate and root as certChain", s, &verify.Attestor{Kind: "certificates", CertificateChain: []*x509.Certificate{w.inter.Cert, w.root.Cert}}, "", ""},
		{"leaf pinned as cert", s, trusting(w.leaf.Cert), "", ""},
		{"another root", s, trusting(other.Cert), verify.CodeNoMatch, "failed to verify " + s.Ref.Repository() + "@" + s.Digest},
		{"untrusted intermediate under a root of the same name", s2, trusting(w.root.Cert), verify.CodeNoMatch, "authenticity"},
		{"keys are not notary material", s, &verify.Attestor{Kind: "keys", Path: ".attestors[0].entries[0]"}, verify.CodeUnsupported, "keys are not supported for type Notary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			check(t, w, tc.s, tc.a, tc.want, tc.wantMsg)
		})
	}
}

func TestNoSignature(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	s := w.push("app:1")
	check(t, w, s, trusting(w.root.Cert), verify.CodeNoSignatures, "no signature is associated with")
	// A cosign-style or other referrer is not a Notary signature.
	if _, err := Attach(context.Background(), w.digestRef(s, s.Digest), "application/vnd.example.sbom", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	check(t, w, s, trusting(w.root.Cert), verify.CodeNoSignatures, "")
}

// TestLandscapeGroup14EnvelopeSubject is landscape §4.4 group 14 (CVE-2023-33959): a valid signature made for
// another artifact, attached to this one, must not verify it.
func TestLandscapeGroup14EnvelopeSubject(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	s := w.push("app:1")
	other := w.push("other:1")
	// The envelope names other's descriptor but is stored as a referrer of s.
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(other.Digest), Size: sizeOf(t, w, other)}
	w.sign(s, w.leaf, SignOptions{Target: &target})
	check(t, w, s, trusting(w.root.Cert), verify.CodeDigestMismatch, "the signature envelope names "+other.Digest)
	// Same digest, another size: notation compares whole descriptors.
	s3 := w.push("size:1")
	bad := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(s3.Digest), Size: 1}
	w.sign(s3, w.leaf, SignOptions{Target: &bad})
	check(t, w, s3, trusting(w.root.Cert), verify.CodeDigestMismatch, "")
}

func sizeOf(t *testing.T, w *world, s verify.Subject) int64 {
	t.Helper()
	d, err := w.client.Resolve(context.Background(), w.digestRef(s, s.Digest))
	if err != nil {
		t.Fatal(err)
	}
	return d.Size
}

// TestLandscapeGroup14TimestampAfterExpiry is landscape §4.4 group 14 (TSA after certificate expiry).
func TestLandscapeGroup14TimestampAfterExpiry(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	tsa := mustTSA(t)(notarytest.NewTSA("tsa", notarytest.Around(-48*time.Hour, 48*time.Hour)))
	otherTSA := mustTSA(t)(notarytest.NewTSA("other tsa", notarytest.Around(-48*time.Hour, 48*time.Hour)))
	expired := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-3*time.Hour, -time.Hour)})
	signedAt := time.Now().Add(-2 * time.Hour)

	plain := w.push("plain:1")
	w.sign(plain, expired, SignOptions{SigningTime: signedAt})
	stamped := w.push("stamped:1")
	w.sign(stamped, expired, SignOptions{SigningTime: signedAt, Timestamper: tsa.At(signedAt), TSARoots: tsa.Roots()})
	late := w.push("late:1") // timestamped after the certificate expired
	w.sign(late, expired, SignOptions{SigningTime: signedAt, Timestamper: tsa.At(time.Now()), TSARoots: tsa.Roots()})
	valid := w.push("valid:1") // a valid certificate needs no timestamp even with a TSA configured
	w.sign(valid, w.leaf, SignOptions{})
	gone := w.push("gone:1") // the signature's own expiry has passed
	w.sign(gone, w.leaf, SignOptions{SigningTime: time.Now().Add(-30 * time.Minute), Expiry: time.Now().Add(-time.Minute)})

	for _, tc := range []struct {
		name string
		s    verify.Subject
		a    *verify.Attestor
		want verify.Code
		msg  string
	}{
		{"expired without timestamp", plain, trusting(w.root.Cert), verify.CodeNoMatch, "validity period"},
		{"expired without timestamp, TSA configured", plain, withTSA(trusting(w.root.Cert), tsa), verify.CodeNoMatch, "no timestamp countersignature"},
		{"expired with timestamp inside validity", stamped, withTSA(trusting(w.root.Cert), tsa), "", ""},
		{"expired with timestamp, no TSA configured", stamped, trusting(w.root.Cert), verify.CodeNoMatch, "validity period"},
		{"expired with timestamp by an untrusted TSA", stamped, withTSA(trusting(w.root.Cert), otherTSA), verify.CodeNoMatch, "timestamp"},
		{"expired with timestamp after expiry", late, withTSA(trusting(w.root.Cert), tsa), verify.CodeNoMatch, "timestamp can be after certificate"},
		{"valid certificate, TSA configured, no timestamp", valid, withTSA(trusting(w.root.Cert), tsa), "", ""},
		{"signature expiry passed", gone, trusting(w.root.Cert), verify.CodeNoMatch, "digital signature has expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			check(t, w, tc.s, tc.a, tc.want, tc.msg)
		})
	}
}

// TestLandscapeGroup14Revocation is landscape §4.4 group 14 (OCSP/CRL; unreachable responder → configured
// behaviour): revoked fails, unknown is undecided (the failurePolicy decides), a reachable
// responder that says good passes.
func TestLandscapeGroup14Revocation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	resp := notarytest.NewResponder()
	t.Cleanup(resp.Close)
	resp.AddCA("inter", w.inter)
	crlLeaf := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour), Endpoints: notarytest.Endpoints{CRL: resp.CRL("inter")}})
	ocspLeaf := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour), Endpoints: notarytest.Endpoints{OCSP: resp.OCSP("inter")}})
	revokedCRL := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour), Endpoints: notarytest.Endpoints{CRL: resp.CRL("inter")}})
	revokedOCSP := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour), Endpoints: notarytest.Endpoints{OCSP: resp.OCSP("inter")}})
	resp.Revoke(revokedCRL.Cert)
	resp.Revoke(revokedOCSP.Cert)
	down := notarytest.Unreachable()
	unreachable := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour), Endpoints: notarytest.Endpoints{CRL: down, OCSP: down}})

	for _, tc := range []struct {
		name string
		leaf *notarytest.Leaf
		want verify.Code
		msg  string
	}{
		{"CRL good", crlLeaf, "", ""},
		{"OCSP good", ocspLeaf, "", ""},
		{"CRL revoked", revokedCRL, verify.CodeNoMatch, "is revoked"},
		{"OCSP revoked", revokedOCSP, verify.CodeNoMatch, "is revoked"},
		{"responder unreachable", unreachable, verify.CodeUnavailable, "revocation status is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := w.push(strings.ReplaceAll(strings.ToLower(tc.name), " ", "-") + ":1")
			w.sign(s, tc.leaf, SignOptions{})
			before := resp.Hits()
			check(t, w, s, trusting(w.root.Cert), tc.want, tc.msg)
			if tc.leaf != unreachable && resp.Hits() == before {
				t.Error("the revocation responder was not asked")
			}
			if tc.want.Undecided() {
				_, err := w.verifier.Verify(context.Background(), fresh(s), entry(), trusting(w.root.Cert))
				if !verify.Undecided(err) {
					t.Errorf("unknown revocation status must be undecided, got %v", err)
				}
			}
		})
	}
}

// TestSeveralSignatures: one good signature is enough, even if another one is revoked; an
// undecided one does not hide a failure of every other.
func TestSeveralSignatures(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	resp := notarytest.NewResponder()
	t.Cleanup(resp.Close)
	resp.AddCA("inter", w.inter)
	revoked := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour), Endpoints: notarytest.Endpoints{CRL: resp.CRL("inter")}})
	resp.Revoke(revoked.Cert)
	other := mustCA(t)(notarytest.NewRoot("other", notarytest.Around(-time.Hour, time.Hour)))
	otherInter := mustCA(t)(other.NewIntermediate("other inter", notarytest.Around(-time.Hour, time.Hour), notarytest.Endpoints{}))
	stranger := mustLeaf(t)(otherInter.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)}))

	s := w.push("app:1")
	w.sign(s, revoked, SignOptions{})
	w.sign(s, stranger, SignOptions{Format: "cose"})
	check(t, w, s, trusting(w.root.Cert), verify.CodeNoMatch, "is revoked")
	w.sign(s, w.leaf, SignOptions{})
	check(t, w, s, trusting(w.root.Cert), "", "")
	check(t, w, s, trusting(other.Cert), "", "")
}

// TestSignatureCap: at most MaxSignatures envelopes are read; when none of those verifies,
// the rest are reported, never silently dropped.
func TestSignatureCap(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	w.verifier = w.newVerifier(Options{MaxSignatures: 2})
	other := mustCA(t)(notarytest.NewRoot("other", notarytest.Around(-time.Hour, time.Hour)))
	otherInter := mustCA(t)(other.NewIntermediate("other inter", notarytest.Around(-time.Hour, time.Hour), notarytest.Endpoints{}))
	stranger := mustLeaf(t)(otherInter.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)}))
	s := w.push("app:1")
	for i := 0; i < 3; i++ {
		w.sign(s, stranger, SignOptions{})
	}
	check(t, w, s, trusting(w.root.Cert), verify.CodeNoMatch, "signature evaluation stopped: 3 signatures, more than the limit of 2")
}

func TestEnvelopeSizeCap(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	w.verifier = w.newVerifier(Options{MaxEnvelopeBytes: 100})
	s := w.push("app:1")
	w.sign(s, w.leaf, SignOptions{})
	check(t, w, s, trusting(w.root.Cert), verify.CodeTooLarge, "more than the limit of 100")
}

func TestRegistryDownIsUndecided(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	s := w.push("app:1")
	w.sign(s, w.leaf, SignOptions{})
	w.reg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := w.verifier.Verify(ctx, fresh(s), entry(), trusting(w.root.Cert))
	if !verify.Undecided(err) {
		t.Fatalf("want undecided, got %v", err)
	}
}

// TestFetchOncePerEvaluation: attestors of one evaluation share the signature fetches.
func TestFetchOncePerEvaluation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	s := w.push("app:1")
	w.sign(s, w.leaf, SignOptions{})
	s = fresh(s)
	if _, err := w.verifier.Verify(context.Background(), s, entry(), trusting(w.root.Cert)); err != nil {
		t.Fatal(err)
	}
	before := w.requests.Load()
	for _, a := range []*verify.Attestor{trusting(w.leaf.Cert), trusting(w.inter.Cert, w.root.Cert)} {
		if _, err := w.verifier.Verify(context.Background(), s, entry(), a); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.requests.Load() - before; n != 0 {
		t.Errorf("%d more registry requests for two more attestors, want 0", n)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{}); err == nil {
		t.Error("New without Registry must fail")
	}
	if _, err := New(Options{Registry: nil, MaxSignatures: -1}); err == nil {
		t.Error("negative limits must fail")
	}
}

// TestLandscapeGroup14StrictScopedTrustPolicy is landscape §4.4 group 14 (permissive-level
// rollback, GHSA-57wx-m636-g3g8): the trust policy vouch builds is always strict — an expired
// or revoked signer is enforced, never only logged — and applies to the image's repository
// only, never "*".
func TestLandscapeGroup14StrictScopedTrustPolicy(t *testing.T) {
	t.Parallel()
	for _, withTSA := range []bool{false, true} {
		doc := policyFor("registry.example/team/app", withTSA)
		if err := doc.Validate(); err != nil {
			t.Fatal(err)
		}
		p := doc.TrustPolicies[0]
		if len(doc.TrustPolicies) != 1 || p.SignatureVerification.VerificationLevel != "strict" || len(p.SignatureVerification.Override) != 0 {
			t.Errorf("trust policy %+v is not strict", p)
		}
		if len(p.RegistryScopes) != 1 || p.RegistryScopes[0] != "registry.example/team/app" {
			t.Errorf("registry scopes %v, want the image's repository only", p.RegistryScopes)
		}
		if _, err := doc.GetApplicableTrustPolicy("registry.example/team/other@sha256:" + strings.Repeat("a", 64)); err == nil {
			t.Error("the trust policy applies to another repository")
		}
		if got := p.SignatureVerification.VerifyTimestamp; withTSA && got != "afterCertExpiry" || !withTSA && got != "" {
			t.Errorf("verifyTimestamp %q with TSA %v", got, withTSA)
		}
	}
	// Strict enforces expiry: an expired signer that a permissive level would only log fails.
	w := newWorld(t, true)
	s := w.push("app:1")
	expired := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-3*time.Hour, -time.Hour)})
	w.sign(s, expired, SignOptions{SigningTime: time.Now().Add(-2 * time.Hour)})
	check(t, w, s, trusting(w.root.Cert), verify.CodeNoMatch, "authenticTimestamp")
}

// TestReferrersCap: more referrers than the registry client's MaxReferrers is a failure, as
// in Kyverno ("too many referrers found"), never a silent truncation.
func TestReferrersCap(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	c, err := registry.New(registry.Options{MaxReferrers: 2})
	if err != nil {
		t.Fatal(err)
	}
	w.client = c
	s := w.push("app:1")
	for i := 0; i < 3; i++ {
		w.sign(s, w.leaf, SignOptions{})
	}
	check(t, w, s, trusting(w.root.Cert), verify.CodeTooLarge, "max limit is 2")
}
