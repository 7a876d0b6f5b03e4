package engine

import (
	"context"
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	sigcosign "github.com/sigstore/cosign/v3/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/conditions"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
)

// BenchmarkVerifyAttestation measures one admission evaluation of a Pod whose image carries one
// SLSA provenance attestation checked with three conditions, against the in-process registry:
//
//   - cold: no cache — resolve the tag, fetch the .att tag and its layer, verify the DSSE
//     envelope and the statement's subject, evaluate the conditions, pin, annotate;
//   - warm/tag: the verified statements come from the cache; the tag is still resolved (one
//     HEAD) and the conditions evaluated again, as on every admission;
//   - warm/digest: the same, the image given by digest (no registry request at all);
//   - baseline/cosign: the cryptographic part alone on the same registry and client — resolve,
//     then cosign.VerifyImageAttestations (what Kyverno calls, without its conditions);
//   - conditions: the three conditions on the statement, the cost a cache hit still pays.
func BenchmarkVerifyAttestation(b *testing.B) {
	w := &world{counter: &registry.Counter{}}
	w.reg = fixture.StartRegistry(false, nil)
	defer w.reg.Close()
	var err error
	if w.k1, err = fixture.NewKey(); err != nil {
		b.Fatal(err)
	}
	tb := &testing.T{}
	digest := w.attestedImage(tb, "prov", fixture.AttestSpec{Key: w.k1.Private, PredicateType: slsaType, Predicate: provenance(builderID)})
	entry := attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(w.k1.PEM) + threeConditions}, "")
	ctx := context.Background()
	byTag, byDigest := pod(tb, "default", w.reg.Host+"/app:prov"), pod(tb, "default", w.reg.Host+"/app@"+digest)
	run := func(b *testing.B, e *Engine, obj map[string]any) {
		b.Helper()
		for i := 0; i < b.N; i++ {
			resp, err := e.Evaluate(ctx, Request{Object: obj})
			if err != nil || resp.Results[0].Status != Pass {
				b.Fatalf("%v %+v", err, resp.Results)
			}
		}
	}
	b.Run("cold", func(b *testing.B) { run(b, w.engine(tb, entry), byTag) })
	for _, c := range []struct {
		name string
		obj  map[string]any
	}{{"warm/tag", byTag}, {"warm/digest", byDigest}} {
		e := w.engine(tb, entry)
		if e.cache, err = cache.New(cache.Options{Enabled: true, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) { run(b, e, c.obj) })
	}
	regs, err := registry.NewPair(registry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline/cosign", func(b *testing.B) {
		sv, _ := signature.LoadVerifier(w.k1.Private.Public(), crypto.SHA256)
		for i := 0; i < b.N; i++ {
			ref, _ := name.ParseReference(w.reg.Host + "/app:prov")
			desc, err := regs.Secure.Resolve(ctx, ref)
			if err != nil {
				b.Fatal(err)
			}
			co := &sigcosign.CheckOpts{SigVerifier: sv, ClaimVerifier: sigcosign.IntotoSubjectClaimVerifier, IgnoreTlog: true, IgnoreSCT: true,
				RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(regs.RemoteOptions(ctx, false)...)}}
			if _, _, err := sigcosign.VerifyImageAttestations(ctx, ref.Context().Digest(desc.Digest.String()), co); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("conditions", func(b *testing.B) {
		e := w.engine(tb, entry)
		check := e.policies.Policies()[0].Rules[0].Verifications[0].Attestations[0].Check
		st := map[string]any{"type": slsaType, "predicate": provenance(builderID)}
		mreq := policy.RequestFor(byTag, "CREATE")
		base := requestContext(Request{Object: byTag}, &mreq)
		for i := 0; i < b.N; i++ {
			doc, err := conditions.AttestationDocument(base, st)
			if err != nil {
				b.Fatal(err)
			}
			if r, err := check.Evaluate(doc); err != nil || !r.Pass {
				b.Fatalf("%v %+v", err, r)
			}
		}
	})
}

// BenchmarkVerifyKeyless measures one cold admission evaluation (no cache) of a Pod whose image
// is signed keyless — a Fulcio-style certificate chained to keyless.roots with an embedded SCT
// and a Rekor bundle, identity matched — against the same image signed with a static key.
func BenchmarkVerifyKeyless(b *testing.B) {
	w := &world{counter: &registry.Counter{}}
	w.reg = fixture.StartRegistry(false, nil)
	defer w.reg.Close()
	ctx := context.Background()
	root, err := fixture.NewRootCA("bench root", fixture.ValidAround(-48*time.Hour, 48*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	ca, err := root.NewIntermediate("bench intermediate", fixture.ValidAround(-24*time.Hour, 24*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	rekor, _ := fixture.NewKey()
	ct, _ := fixture.NewKey()
	key, _ := fixture.NewKey()
	leaf, err := ca.IssueLeaf(fixture.LeafOptions{Emails: []string{"signer@example.com"}, Issuer: "https://issuer.example.com",
		Validity: fixture.ValidAround(-time.Hour, time.Hour), SCTLog: ct.Private})
	if err != nil {
		b.Fatal(err)
	}
	digest, err := w.reg.Push(ctx, "app:signed")
	if err != nil {
		b.Fatal(err)
	}
	if err := w.reg.SignWith(ctx, "app", digest, fixture.SignSpec{Leaf: leaf, Rekor: rekor}); err != nil {
		b.Fatal(err)
	}
	if err := w.reg.SignWith(ctx, "app", digest, fixture.SignSpec{Key: key.Private}); err != nil {
		b.Fatal(err)
	}
	keyless := "    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - keyless:\n" +
		"            subject: signer@example.com\n            issuer: https://issuer.example.com\n" +
		"            roots: |-\n" + indentPEM(fixture.CertsPEM(root.Cert), 14) +
		"            rekor:\n              url: https://rekor.sigstore.dev\n              pubkey: |-\n" + indentPEM(rekor.PEM, 16) +
		"            ctlog:\n              pubkey: |-\n" + indentPEM(ct.PEM, 16)
	tb := &testing.T{}
	obj := pod(tb, "default", w.reg.Host+"/app:signed")
	for _, c := range []struct{ name, entry string }{{"keyless", keyless}, {"key (baseline)", keyEntry(key.PEM)}} {
		e := w.engine(tb, c.entry)
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				resp, err := e.Evaluate(ctx, Request{Object: obj})
				if err != nil || resp.Results[0].Status != Pass {
					b.Fatalf("%v %+v", err, resp.Results)
				}
			}
		})
	}
}

func indentPEM(pem string, n int) string {
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(pem), "\n") {
		b.WriteString(pad + l + "\n")
	}
	return b.String()
}
