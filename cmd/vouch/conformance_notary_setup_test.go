package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify/notary"
	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

// confNotary is a case's Notary material, made in process with notation's envelope code:
// a PKI meeting the Notary Project's certificate requirements, timestamp authorities, a
// revocation responder on 127.0.0.1, and signatures and attestations stored as notation
// stores them (referrers; the referrers tag schema when the case's registry has no referrers
// API). Its certificates share the placeholders of the case's pki: $(root <ca>), $(chain
// <ca>) (intermediate, root), $(cert <cert>) and $(tsa-chain <tsa>).
type confNotary struct {
	CAs          []confNotaryCA          `json:"cas,omitempty"`
	Certs        []confNotaryCert        `json:"certs,omitempty"`
	TSAs         []string                `json:"tsas,omitempty"` // valid -48h..48h
	Signatures   []confNotarySignature   `json:"signatures,omitempty"`
	Attestations []confNotaryAttestation `json:"attestations,omitempty"`
}

// confNotaryCA is a root (valid -48h..48h) and an intermediate (-24h..24h). With Under, the
// root is a fresh one named like Under's, so that the intermediate looks like Under's
// intermediate to a name-only check.
type confNotaryCA struct {
	Name  string `json:"name"`
	Under string `json:"under,omitempty"`
}

// confNotaryCert is a code-signing certificate issued by a CA's intermediate. Revocation
// gives it an endpoint: "crl" or "ocsp" at the case's responder, or "unreachable" (both, on
// a port where nothing listens); Revoked revokes it there.
type confNotaryCert struct {
	Name       string `json:"name"`
	CA         string `json:"ca"`
	NotBefore  string `json:"notBefore,omitempty"` // default -1h
	NotAfter   string `json:"notAfter,omitempty"`  // default 1h
	Revocation string `json:"revocation,omitempty"`
	Revoked    bool   `json:"revoked,omitempty"`
}

// confNotarySignature signs an image (repository:tag of the case's images) with a
// certificate. SigningTime and TSATime are durations from now; Target names another image
// whose descriptor the envelope names instead (a signature for the wrong artifact).
type confNotarySignature struct {
	Image       string `json:"image"`
	Cert        string `json:"cert"`
	Format      string `json:"format,omitempty"` // jws (default) or cose
	SigningTime string `json:"signingTime,omitempty"`
	TSA         string `json:"tsa,omitempty"`
	TSATime     string `json:"tsaTime,omitempty"` // default: the signing time
	Target      string `json:"target,omitempty"`
}

// confNotaryAttestation attaches a JSON payload to an image as a referrer of the given
// artifact type, signed with Cert (unsigned without).
type confNotaryAttestation struct {
	Image   string `json:"image"`
	Type    string `json:"type"`
	Payload string `json:"payload"`
	Cert    string `json:"cert,omitempty"`
}

// setUpNotary makes the case's Notary material and stores it in the registry.
func setUpNotary(t *testing.T, c *confNotary, reg *fixture.Registry, e *env) {
	t.Helper()
	if c == nil {
		return
	}
	long := notarytest.Around(-48*time.Hour, 48*time.Hour)
	cas := map[string]*notarytest.CA{}
	for _, ca := range c.CAs {
		rootName := ca.Name + " root"
		if ca.Under != "" {
			rootName = ca.Under + " root"
		}
		root, err := notarytest.NewRoot(rootName, long)
		if err != nil {
			t.Fatal(err)
		}
		interName := ca.Name + " intermediate"
		if ca.Under != "" {
			interName = ca.Under + " intermediate"
		}
		inter, err := root.NewIntermediate(interName, notarytest.Around(-24*time.Hour, 24*time.Hour), notarytest.Endpoints{})
		if err != nil {
			t.Fatal(err)
		}
		cas[ca.Name] = inter
		e.pems["root "+ca.Name] = notarytest.PEM(root.Cert)
		e.pems["chain "+ca.Name] = notarytest.PEM(inter.Cert, root.Cert)
	}
	var resp *notarytest.Responder
	certs := map[string]*notarytest.Leaf{}
	for _, cc := range c.Certs {
		ca := lookup(t, cas, cc.CA, "Notary CA")
		var ep notarytest.Endpoints
		switch cc.Revocation {
		case "":
		case "crl", "ocsp":
			if resp == nil {
				resp = notarytest.NewResponder()
				t.Cleanup(resp.Close)
			}
			resp.AddCA(cc.CA, ca)
			if cc.Revocation == "crl" {
				ep.CRL = resp.CRL(cc.CA)
			} else {
				ep.OCSP = resp.OCSP(cc.CA)
			}
		case "unreachable":
			ep.CRL, ep.OCSP = notarytest.Unreachable(), notarytest.Unreachable()
		default:
			t.Fatalf("certificate %s: unknown revocation %q", cc.Name, cc.Revocation)
		}
		leaf, err := ca.IssueLeaf(notarytest.LeafOptions{CommonName: cc.Name, Endpoints: ep,
			Validity: notarytest.Validity(validity(t, cc.NotBefore, cc.NotAfter, "-1h", "1h"))})
		if err != nil {
			t.Fatal(err)
		}
		if cc.Revoked {
			if resp == nil {
				t.Fatalf("certificate %s: revoked needs a crl or ocsp endpoint", cc.Name)
			}
			resp.Revoke(leaf.Cert)
		}
		certs[cc.Name] = leaf
		e.pems["cert "+cc.Name] = notarytest.PEM(leaf.Cert)
	}
	tsas := map[string]*notarytest.TSA{}
	for _, n := range c.TSAs {
		tsa, err := notarytest.NewTSA(n, long)
		if err != nil {
			t.Fatal(err)
		}
		tsas[n] = tsa
		e.pems["tsa-chain "+n] = tsa.ChainPEM()
	}
	ctx := context.Background()
	imageRef := func(image, d string) name.Digest {
		ref, err := name.NewDigest(reg.Host + "/" + fixture.Repository(image) + "@" + d)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	for _, s := range c.Signatures {
		so := signOptions(t, s, lookup(t, certs, s.Cert, "Notary certificate"), tsas)
		if s.Target != "" {
			target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(lookup(t, e.digests, s.Target, "image"))}
			desc, err := remote.Head(imageRef(s.Target, string(target.Digest)), remote.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			target.Size = desc.Size
			so.Target = &target
		}
		if _, err := notary.Sign(ctx, imageRef(s.Image, lookup(t, e.digests, s.Image, "image")), so); err != nil {
			t.Fatalf("notary signing %s: %v", s.Image, err)
		}
	}
	for _, a := range c.Attestations {
		ref := imageRef(a.Image, lookup(t, e.digests, a.Image, "image"))
		h, err := notary.Attach(ctx, ref, a.Type, []byte(a.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if a.Cert == "" {
			continue
		}
		so := signOptions(t, confNotarySignature{}, lookup(t, certs, a.Cert, "Notary certificate"), tsas)
		if _, err := notary.Sign(ctx, ref.Context().Digest(h.String()), so); err != nil {
			t.Fatalf("notary signing an attestation of %s: %v", a.Image, err)
		}
	}
}

func signOptions(t *testing.T, s confNotarySignature, leaf *notarytest.Leaf, tsas map[string]*notarytest.TSA) notary.SignOptions {
	t.Helper()
	so := notary.SignOptions{Key: leaf.Key, Chain: leaf.Full(), Format: s.Format, SigningTime: at(t, s.SigningTime)}
	if s.TSA != "" {
		tsa := lookup(t, tsas, s.TSA, "TSA")
		when := so.SigningTime
		if s.TSATime != "" {
			when = at(t, s.TSATime)
		}
		if when.IsZero() {
			when = time.Now()
		}
		so.Timestamper, so.TSARoots = tsa.At(when), tsa.Roots()
	}
	return so
}
