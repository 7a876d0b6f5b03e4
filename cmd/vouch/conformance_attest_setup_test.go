package main

import (
	"context"
	"testing"

	"github.com/vouchproject/vouch/internal/fixture"
)

// confAttestation is one in-toto attestation of an image, signed as `cosign attest` stores it
// (a DSSE envelope in the sha256-<hex>.att tag, annotation predicateType), by a key or by a
// certificate of the case's PKI, without a transparency-log entry.
type confAttestation struct {
	Key     string `json:"key,omitempty"`  // a key of the case's keys
	Cert    string `json:"cert,omitempty"` // a certificate of pki.certs: sign with its key, store it and its chain
	NoChain bool   `json:"noChain,omitempty"`
	// Type is the signed statement's predicateType.
	Type string `json:"type"`
	// Predicate is the statement's predicate (YAML/JSON; absent is {}).
	Predicate any `json:"predicate,omitempty"`
	// AnnotationType is the layer's unsigned predicateType annotation ("" = Type).
	AnnotationType string `json:"annotationType,omitempty"`
	// SubjectImage names another image of the case whose digest the statement names: that
	// image's envelope, copied to this one.
	SubjectImage string `json:"subjectImage,omitempty"`
	Repository   string `json:"repository,omitempty"` // store in $(registry)/<repository>
}

// attestImages signs the attestations of the case's images.
func attestImages(t *testing.T, reg *fixture.Registry, c *confCase, e *env, m *material, keys map[string]*fixture.Key) {
	t.Helper()
	for _, im := range c.Images {
		for _, a := range im.Attestations {
			spec := fixture.AttestSpec{PredicateType: a.Type, Predicate: a.Predicate, AnnotationType: a.AnnotationType,
				Repository: a.Repository, NoChain: a.NoChain}
			switch {
			case a.Cert != "":
				spec.Leaf = lookup(t, m.certs, a.Cert, "certificate")
			case a.Key != "":
				spec.Key = lookup(t, keys, a.Key, "key").Private
			default:
				t.Fatal("an attestation needs a key or a cert")
			}
			if a.SubjectImage != "" {
				spec.SubjectDigest = lookup(t, e.digests, a.SubjectImage, "image")
			}
			if err := reg.Attest(context.Background(), fixture.Repository(im.Name), e.digests[im.Name], spec); err != nil {
				t.Fatalf("attesting %s: %v", im.Name, err)
			}
		}
	}
}
