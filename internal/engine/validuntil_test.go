package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
)

// shortLived issues a certificate (with its root) that expires within a few seconds.
func shortLived(t *testing.T) (*fixture.CA, *fixture.Leaf) {
	t.Helper()
	root, err := fixture.NewRootCA("short-lived root", fixture.ValidAround(-time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := root.NewIntermediate("short-lived intermediate", fixture.ValidAround(-time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueLeaf(fixture.LeafOptions{Emails: []string{"signer@example.com"}, Validity: fixture.ValidAround(-time.Minute, 3*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return ca, leaf
}

// certificatesYAML is a certificates attestor (cert and certChain, no transparency log, no
// SCT) at the given indentation of its "- certificates:" line.
func certificatesYAML(indent string, l *fixture.Leaf) string {
	var b strings.Builder
	b.WriteString(indent + "- certificates:\n" + indent + "    rekor: {ignoreTlog: true}\n" + indent + "    ctlog: {ignoreSCT: true}\n")
	for _, f := range []struct{ key, pem string }{{"cert", l.PEM()}, {"certChain", l.ChainPEM()}} {
		b.WriteString(indent + "    " + f.key + ": |-\n")
		for _, line := range strings.Split(strings.TrimSpace(f.pem), "\n") {
			b.WriteString(indent + "      " + line + "\n")
		}
	}
	return b.String()
}

// waitUntilExpired sleeps until the certificate has expired.
func waitUntilExpired(l *fixture.Leaf) {
	time.Sleep(time.Until(l.Cert.NotAfter) + 50*time.Millisecond)
}

// TestCachedPassEndsWithTheCertificate: a signature whose certificate was checked at the time
// of verification (no Rekor bundle, no timestamp) passes, and the pass is cached — but only
// until the certificate expires, not for the cache's TTL: the next admission verifies again
// and fails as a verification at that moment does.
func TestCachedPassEndsWithTheCertificate(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, leaf := shortLived(t)
	ctx := context.Background()
	digest, err := w.reg.Push(ctx, "app:cert")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.reg.SignWith(ctx, "app", digest, fixture.SignSpec{Leaf: leaf}); err != nil {
		t.Fatal(err)
	}
	entry := "    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n" + certificatesYAML("        ", leaf)
	e := w.engine(t, entry)
	c, err := cache.New(cache.Options{Enabled: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
	img := pod(t, "default", w.reg.Host+"/app:cert")
	if res := evaluate(t, e, img, nil); res[0].Status != Pass {
		t.Fatalf("while the certificate is valid: %+v", res)
	}
	if res := evaluate(t, e, img, nil); res[0].Status != Pass {
		t.Fatalf("again, while the certificate is valid: %+v", res)
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("cache stats %+v, want the second evaluation answered from the cache", st)
	}
	waitUntilExpired(leaf)
	res := evaluate(t, e, img, nil)
	if res[0].Status != Fail || !strings.Contains(res[0].Message, "expected a signed timestamp to verify an expired certificate") {
		t.Fatalf("once the certificate expired, within the cache TTL: %+v\nwant a failure: the certificate has expired", res)
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 2 {
		t.Errorf("cache stats %+v, want the pass not to be served after the certificate expired", st)
	}
}

// TestCachedAttestationsEndWithTheCertificate: the same for an attestation signed with a
// short-lived certificate, the image's signature being a key's: the cached statements end
// with the certificate of their signature.
func TestCachedAttestationsEndWithTheCertificate(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, leaf := shortLived(t)
	w.attestedImage(t, "attested", fixture.AttestSpec{Leaf: leaf, PredicateType: slsaType, Predicate: provenance(builderID)})
	att := "      - type: " + slsaType + "\n        attestors:\n        - entries:\n" + certificatesYAML("          ", leaf)
	e := w.engine(t, attestEntry([]string{att}, ""))
	c, err := cache.New(cache.Options{Enabled: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
	img := pod(t, "default", w.reg.Host+"/app:attested")
	for i := 0; i < 2; i++ {
		if res := evaluate(t, e, img, nil); res[0].Status != Pass {
			t.Fatalf("evaluation %d, while the certificate is valid: %+v", i, res)
		}
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("cache stats %+v, want the second evaluation answered from the cache", st)
	}
	waitUntilExpired(leaf)
	res := evaluate(t, e, img, nil)
	if res[0].Status != Fail || !strings.Contains(res[0].Message, "expected a signed timestamp to verify an expired certificate") {
		t.Fatalf("once the certificate expired, within the cache TTL: %+v\nwant a failure: the certificate has expired", res)
	}
}
