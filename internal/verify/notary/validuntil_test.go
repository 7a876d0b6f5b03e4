package notary

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

// TestValidUntil: a Notary signature whose signing chain notation checked at the time of
// verification holds until the chain's earliest NotAfter (and the signature's own expiry);
// one whose chain had expired and that verified on a trusted timestamp countersignature holds
// without bound. With a TSA configured and the chain still valid, notation does not use the
// timestamp ("afterCertExpiry"): the chain bounds the signature, although verifying again
// after it expires would pass on the timestamp (conservative: one more verification).
func TestValidUntil(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	tsa := mustTSA(t)(notarytest.NewTSA("tsa", notarytest.Around(-48*time.Hour, 48*time.Hour)))
	short := mustCA(t)(w.root.NewIntermediate("short-lived intermediate", notarytest.Around(-24*time.Hour, 30*time.Minute), notarytest.Endpoints{}))
	underShort := mustLeaf(t)(short.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)}))
	shorter := mustLeaf(t)(short.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, 20*time.Minute)}))
	expired := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-3*time.Hour, -time.Hour)})
	signedAt := time.Now().Add(-2 * time.Hour)
	expiry := time.Now().Add(10 * time.Minute).Truncate(time.Second)

	for i, tc := range []struct {
		name string
		leaf *notarytest.Leaf
		so   SignOptions
		tsa  bool
		want time.Time
	}{
		{name: "no TSA: the leaf", leaf: w.leaf, want: w.leaf.Cert.NotAfter},
		{name: "no TSA: the intermediate expires first", leaf: underShort, want: short.Cert.NotAfter},
		{name: "no TSA, jws and cose alike", leaf: w.leaf, so: SignOptions{Format: "cose"}, want: w.leaf.Cert.NotAfter},
		{name: "timestamped, chain valid: checked at now all the same", leaf: w.leaf, tsa: true,
			so: SignOptions{Timestamper: tsa.At(time.Now()), TSARoots: tsa.Roots()}, want: w.leaf.Cert.NotAfter},
		{name: "chain expired, verified on the timestamp: unbounded", leaf: expired, tsa: true,
			so: SignOptions{SigningTime: signedAt, Timestamper: tsa.At(signedAt), TSARoots: tsa.Roots()}},
		{name: "the signature's own expiry", leaf: w.leaf, so: SignOptions{Expiry: expiry}, want: expiry},
		{name: "the signature's expiry after the chain's end", leaf: shorter, so: SignOptions{Expiry: time.Now().Add(time.Hour)}, want: shorter.Cert.NotAfter},
		{name: "signingAuthority scheme: checked at the signing time", leaf: w.leaf, so: SignOptions{SigningAuthority: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := w.push(fmt.Sprintf("case%d:1", i))
			w.sign(s, tc.leaf, tc.so)
			a := trusting(w.root.Cert)
			if tc.tsa {
				a = withTSA(a, tsa)
			}
			ev, err := w.verifier.Verify(context.Background(), fresh(s), entry(), a)
			if err != nil {
				t.Fatalf("want a pass, got %v", err)
			}
			if !ev.ValidUntil.Equal(tc.want) {
				t.Errorf("ValidUntil = %v, want %v", ev.ValidUntil, tc.want)
			}
		})
	}
}

// TestAttestationsValidUntil: Notary attestations hold until the earliest bound of the
// signatures of the statements returned.
func TestAttestationsValidUntil(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	soon := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, 10*time.Minute)})
	s := w.push("app:1")
	w.attach(s, sbomType, `{"bomFormat":"CycloneDX"}`, w.leaf)
	w.attach(s, sbomType, `{"bomFormat":"CycloneDX","n":2}`, soon)
	w.attach(s, "vulnerability-scan", `{"high":0}`, w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, 5*time.Minute)}))
	sts, until, err := w.verifier.Attestations(context.Background(), fresh(s), entry(), trusting(w.root.Cert), sbomType)
	if err != nil || len(sts) != 2 {
		t.Fatalf("want two statements, got %d, %v", len(sts), err)
	}
	if !until.Equal(soon.Cert.NotAfter) {
		t.Errorf("ValidUntil = %v, want %v", until, soon.Cert.NotAfter)
	}
	var _ verify.AttestationVerifier = w.verifier
}

// TestValidUntilRevocationRecheck: a pass that rests on a revocation check (a certificate
// with a CRL or OCSP endpoint, found good) holds no longer than the recheck interval, so a
// cached pass sees a revocation within it; a chain without endpoints is not revocable and is
// bounded by its certificates only.
func TestValidUntilRevocationRecheck(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	resp := notarytest.NewResponder()
	t.Cleanup(resp.Close)
	resp.AddCA("inter", w.inter)
	for _, tc := range []struct {
		name      string
		endpoints notarytest.Endpoints
		revocable bool
	}{
		{"CRL", notarytest.Endpoints{CRL: resp.CRL("inter")}, true},
		{"OCSP", notarytest.Endpoints{OCSP: resp.OCSP("inter")}, true},
		{"no endpoints", notarytest.Endpoints{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Ends before the intermediate (24 h, made earlier): the leaf ends the chain.
			leaf := w.issue(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, 12*time.Hour), Endpoints: tc.endpoints})
			s := w.push(strings.ReplaceAll(strings.ToLower(tc.name), " ", "-") + ":1")
			w.sign(s, leaf, SignOptions{})
			start := time.Now()
			ev, err := w.verifier.Verify(context.Background(), fresh(s), entry(), trusting(w.root.Cert))
			if err != nil {
				t.Fatalf("want a pass, got %v", err)
			}
			recheck := start.Add(DefaultRevocationRecheck)
			switch {
			case tc.revocable && (ev.ValidUntil.Before(start) || ev.ValidUntil.After(time.Now().Add(DefaultRevocationRecheck))):
				t.Errorf("ValidUntil = %v, want about %v (the recheck interval)", ev.ValidUntil, recheck)
			case !tc.revocable && !ev.ValidUntil.Equal(leaf.Cert.NotAfter):
				t.Errorf("ValidUntil = %v, want the leaf's NotAfter %v", ev.ValidUntil, leaf.Cert.NotAfter)
			}
		})
	}
}
