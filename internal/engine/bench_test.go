package engine

import (
	"context"
	"testing"

	"crypto"
	"github.com/google/go-containerregistry/pkg/name"
	sigcosign "github.com/sigstore/cosign/v3/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
)

// BenchmarkVerifyPath measures one admission evaluation of a Pod whose image is signed, against
// the in-process registry: resolve the tag, fetch and verify the signature, pin the digest,
// write the annotations. The baseline is Kyverno's call path on the same registry and client:
// cosign.VerifyImageSignatures once per attestor entry (Kyverno does not share fetched
// signatures between entries), after resolving the tag.
func BenchmarkVerifyPath(b *testing.B) {
	w := &world{counter: &registry.Counter{}}
	w.reg = fixture.StartRegistry(false, nil)
	defer w.reg.Close()
	ctx := context.Background()
	var keys []*fixture.Key
	for i := 0; i < 3; i++ {
		k, err := fixture.NewKey()
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, k)
	}
	digest, err := w.reg.Push(ctx, "app:signed")
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		if err := w.reg.Sign(ctx, "app", digest, k.Private, nil, ""); err != nil {
			b.Fatal(err)
		}
	}
	img := w.reg.Host + "/app:signed"
	for _, n := range []int{1, 3} {
		var pems []string
		for _, k := range keys[:n] {
			pems = append(pems, k.PEM)
		}
		tb := &testing.T{}
		e := w.engine(tb, keyEntry(pems...))
		obj := pod(tb, "default", img)
		b.Run("vouch/keys="+string(rune('0'+n)), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				resp, err := e.Evaluate(ctx, Request{Object: obj})
				if err != nil || resp.Results[0].Status != Pass {
					b.Fatalf("%v %+v", err, resp)
				}
			}
		})
		regs, _ := registry.NewPair(registry.Options{})
		b.Run("kyverno-path/keys="+string(rune('0'+n)), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ref, _ := name.ParseReference(img)
				desc, err := regs.Secure.Resolve(ctx, ref)
				if err != nil {
					b.Fatal(err)
				}
				d := ref.Context().Digest(desc.Digest.String())
				for _, k := range keys[:n] {
					sv, _ := signature.LoadVerifier(k.Private.Public(), crypto.SHA256)
					co := &sigcosign.CheckOpts{SigVerifier: sv, ClaimVerifier: sigcosign.SimpleClaimVerifier, IgnoreTlog: true, IgnoreSCT: true,
						RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(regs.RemoteOptions(ctx, false)...)}}
					if _, _, err := sigcosign.VerifyImageSignatures(ctx, d, co); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
