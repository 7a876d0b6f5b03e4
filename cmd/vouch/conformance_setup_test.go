package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/fixture"
)

// confRegistry is a case's registry set-up: an in-process go-containerregistry registry on
// 127.0.0.1 holding the case's images and their signatures.
type confRegistry struct {
	Referrers bool `json:"referrers,omitempty"` // serve the OCI 1.1 referrers API
	Down      bool `json:"down,omitempty"`      // stop the registry before evaluating: unreachable
}

// confImage is one image pushed to the case's registry as $(registry)/<name>.
type confImage struct {
	Name       string          `json:"name"` // repository:tag
	Signatures []confSignature `json:"signatures,omitempty"`
	Bundles    []confBundle    `json:"bundles,omitempty"` // referrers (conformance_bundle_setup_test.go)
	// Attestations are in-toto attestations of the image (conformance_attest_setup_test.go).
	Attestations []confAttestation `json:"attestations,omitempty"`
}

// confSignature is one cosign signature of an image (legacy .sig tag layout), by a key or by
// a certificate of the case's PKI, with a Rekor bundle and an RFC 3161 timestamp if asked.
type confSignature struct {
	Key         string            `json:"key,omitempty"`  // a key of the case's keys
	Cert        string            `json:"cert,omitempty"` // a certificate of pki.certs: sign with its key, store it and its chain
	NoChain     bool              `json:"noChain,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Repository  string            `json:"repository,omitempty"` // store in $(registry)/<repository> (COSIGN_REPOSITORY)
	// Rekor names a key of the case's keys acting as a Rekor log: the signature carries the
	// bundle (SET) it signs, integrated at RekorTime (a duration from now, e.g. -90m; default
	// now), broken as RekorTamper says (time: SET invalid; body: another entry's bundle).
	Rekor       string `json:"rekor,omitempty"`
	RekorTime   string `json:"rekorTime,omitempty"`
	RekorTamper string `json:"rekorTamper,omitempty"`
	// TSA names a timestamp authority of pki.tsas that timestamps the signature at TSATime.
	TSA     string `json:"tsa,omitempty"`
	TSATime string `json:"tsaTime,omitempty"`
}

// confPKI is a case's certificate material, generated in process. Times are durations from
// now ("-2h", "30m").
type confPKI struct {
	CAs          []confCA          `json:"cas,omitempty"`
	Certs        []confCert        `json:"certs,omitempty"`
	TSAs         []string          `json:"tsas,omitempty"` // timestamp authorities, valid -24h..24h
	TrustedRoots []confTrustedRoot `json:"trustedRoots,omitempty"`
}

// confCA is a root (valid -48h..48h) and an intermediate (-24h..24h unless given) that issues
// certificates; $(root <name>) is the root's PEM.
type confCA struct {
	Name         string        `json:"name"`
	Intermediate *confValidity `json:"intermediate,omitempty"`
}

type confValidity struct {
	NotBefore string `json:"notBefore"`
	NotAfter  string `json:"notAfter"`
}

// confCert is a Fulcio-style signing certificate issued by a CA's intermediate; $(cert
// <name>) is its PEM, $(chain <name>) its chain (intermediate, root).
type confCert struct {
	Name          string            `json:"name"`
	CA            string            `json:"ca"`
	Emails        []string          `json:"emails,omitempty"`
	URIs          []string          `json:"uris,omitempty"`
	Issuer        string            `json:"issuer,omitempty"`   // both issuer extensions (1.1 and 1.8)
	IssuerV1      string            `json:"issuerV1,omitempty"` // override extension 1.1
	IssuerV2      string            `json:"issuerV2,omitempty"` // override extension 1.8
	Extensions    map[string]string `json:"extensions,omitempty"`
	NotBefore     string            `json:"notBefore,omitempty"` // default -1h
	NotAfter      string            `json:"notAfter,omitempty"`  // default 1h
	SCT           string            `json:"sct,omitempty"`       // a key of the case's keys acting as CT log
	NoCodeSigning bool              `json:"noCodeSigning,omitempty"`
}

// confTrustedRoot is a Sigstore trusted_root.json of the case's material; $(trusted-root
// <name>) is its JSON on one line.
type confTrustedRoot struct {
	Name  string   `json:"name"`
	CAs   []string `json:"cas,omitempty"`
	Rekor []string `json:"rekor,omitempty"`
	CT    []string `json:"ct,omitempty"`
	TSAs  []string `json:"tsas,omitempty"`
}

// env is what a case's placeholders expand to.
type env struct {
	registry     string
	digests      map[string]string
	keys         map[string]string // name -> PEM public key
	pems         map[string]string // "cert <name>", "chain <name>", "root <name>", "tsa-chain <name>" -> PEM
	trustedRoots map[string]string // name -> trusted_root.json on one line
}

var placeholder = regexp.MustCompile(`\$\((registry|digest|key|cert|chain|root|tsa-chain|trusted-root)(?: ([^)]+))?\)`)

// expand replaces $(registry), $(digest <image>), $(key <name>), $(cert <name>), $(chain
// <name>), $(root <name>), $(tsa-chain <name>) and $(trusted-root <name>) in s. A PEM
// placeholder (key, cert, chain, root, tsa-chain) must stand alone on its line and becomes
// the PEM blocks, each line indented like the placeholder.
func (e *env) expand(t *testing.T, s string) string {
	t.Helper()
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		m := placeholder.FindStringSubmatch(trimmed)
		if m == nil || m[0] != trimmed {
			continue
		}
		var pemText string
		var ok bool
		switch m[1] {
		case "key":
			pemText, ok = e.keys[m[2]]
		case "cert", "chain", "root", "tsa-chain":
			pemText, ok = e.pems[m[1]+" "+m[2]]
		default:
			continue
		}
		if !ok {
			t.Fatalf("unknown %s %q", m[1], m[2])
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		lines[i] = indent + strings.ReplaceAll(strings.TrimSpace(pemText), "\n", "\n"+indent)
	}
	return placeholder.ReplaceAllStringFunc(strings.Join(lines, "\n"), func(m string) string {
		parts := placeholder.FindStringSubmatch(m)
		switch parts[1] {
		case "registry":
			return e.registry
		case "digest":
			d, ok := e.digests[parts[2]]
			if !ok {
				t.Fatalf("unknown image %q in %s", parts[2], m)
			}
			return d
		case "trusted-root":
			tr, ok := e.trustedRoots[parts[2]]
			if !ok {
				t.Fatalf("unknown trusted root %q in %s", parts[2], m)
			}
			return tr
		}
		t.Fatalf("$(%s) must stand alone on its line: %s", parts[1], m)
		return ""
	})
}

// setUp starts the case's registry, pushes and signs its images and returns the placeholder
// environment. Without a registry section the environment is empty.
func setUp(t *testing.T, c *confCase) *env {
	t.Helper()
	e := &env{digests: map[string]string{}, keys: map[string]string{}, pems: map[string]string{}, trustedRoots: map[string]string{}}
	signers := map[string]*fixture.Key{}
	for _, k := range c.Keys {
		key, err := fixture.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		signers[k], e.keys[k] = key, key.PEM
	}
	m := setUpPKI(t, c.PKI, signers, e)
	if c.Registry == nil {
		if len(c.Images) > 0 {
			t.Fatal("a case with images needs a registry section")
		}
		return e
	}
	reg := fixture.StartRegistry(c.Registry.Referrers, nil)
	t.Cleanup(reg.Close)
	e.registry = reg.Host
	ctx := context.Background()
	for _, im := range c.Images {
		d, err := reg.Push(ctx, im.Name)
		if err != nil {
			t.Fatal(err)
		}
		e.digests[im.Name] = d
	}
	for _, im := range c.Images {
		for _, sig := range im.Signatures {
			spec := m.signSpec(t, sig, signers)
			if err := reg.SignWith(ctx, fixture.Repository(im.Name), e.digests[im.Name], spec); err != nil {
				t.Fatalf("signing %s: %v", im.Name, err)
			}
		}
	}
	setUpNotary(t, c.Notary, reg, e)
	attestImages(t, reg, c, e, m, signers)
	signReferrers(t, reg, c, e, m, signers)
	if c.Registry.Down {
		reg.Close()
	}
	return e
}

// material is a case's generated PKI.
type material struct {
	cas   map[string]*fixture.CA // the issuing intermediates
	certs map[string]*fixture.Leaf
	tsas  map[string]*fixture.TSA
}

// setUpPKI generates the case's CAs, certificates, timestamp authorities and trusted roots,
// and records their placeholders in e.
func setUpPKI(t *testing.T, c *confPKI, keys map[string]*fixture.Key, e *env) *material {
	t.Helper()
	m := &material{cas: map[string]*fixture.CA{}, certs: map[string]*fixture.Leaf{}, tsas: map[string]*fixture.TSA{}}
	if c == nil {
		return m
	}
	for _, ca := range c.CAs {
		root, err := fixture.NewRootCA(ca.Name+" root", fixture.ValidAround(-48*time.Hour, 48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		v := fixture.ValidAround(-24*time.Hour, 24*time.Hour)
		if ca.Intermediate != nil {
			v = validity(t, ca.Intermediate.NotBefore, ca.Intermediate.NotAfter, "-24h", "24h")
		}
		inter, err := root.NewIntermediate(ca.Name+" intermediate", v)
		if err != nil {
			t.Fatal(err)
		}
		m.cas[ca.Name] = inter
		e.pems["root "+ca.Name] = fixture.CertsPEM(root.Cert)
	}
	for _, cc := range c.Certs {
		ca, ok := m.cas[cc.CA]
		if !ok {
			t.Fatalf("certificate %s: unknown CA %q", cc.Name, cc.CA)
		}
		opts := fixture.LeafOptions{
			Emails: cc.Emails, URIs: cc.URIs, Issuer: cc.Issuer, IssuerV1: cc.IssuerV1, IssuerV2: cc.IssuerV2,
			Validity: validity(t, cc.NotBefore, cc.NotAfter, "-1h", "1h"), NoCodeSigning: cc.NoCodeSigning,
		}
		if len(cc.Extensions) > 0 {
			opts.Extensions = map[string]string{}
			for k, v := range cc.Extensions {
				oid, ok := v1.CertificateExtensions[k]
				if !ok {
					oid = k
				}
				opts.Extensions[oid] = v
			}
		}
		if cc.SCT != "" {
			log, ok := keys[cc.SCT]
			if !ok {
				t.Fatalf("certificate %s: unknown CT log key %q", cc.Name, cc.SCT)
			}
			opts.SCTLog = log.Private
		}
		leaf, err := ca.IssueLeaf(opts)
		if err != nil {
			t.Fatal(err)
		}
		m.certs[cc.Name] = leaf
		e.pems["cert "+cc.Name], e.pems["chain "+cc.Name] = leaf.PEM(), leaf.ChainPEM()
	}
	for _, name := range c.TSAs {
		tsa, err := fixture.NewTSA(name, fixture.ValidAround(-24*time.Hour, 24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		m.tsas[name] = tsa
		e.pems["tsa-chain "+name] = tsa.ChainPEM()
	}
	for _, tr := range c.TrustedRoots {
		var opts fixture.TrustedRootOptions
		for _, n := range tr.CAs {
			opts.CAs = append(opts.CAs, lookup(t, m.cas, n, "CA"))
		}
		for _, n := range tr.Rekor {
			opts.Rekor = append(opts.Rekor, lookup(t, keys, n, "key"))
		}
		for _, n := range tr.CT {
			opts.CT = append(opts.CT, lookup(t, keys, n, "key"))
		}
		for _, n := range tr.TSAs {
			opts.TSAs = append(opts.TSAs, lookup(t, m.tsas, n, "TSA"))
		}
		data, err := fixture.TrustedRootJSON(opts)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatal(err)
		}
		e.trustedRoots[tr.Name] = compact.String()
	}
	return m
}

// signSpec turns a case's signature into what the fixture signs.
func (m *material) signSpec(t *testing.T, sig confSignature, keys map[string]*fixture.Key) fixture.SignSpec {
	t.Helper()
	spec := fixture.SignSpec{Annotations: sig.Annotations, Repository: sig.Repository, NoChain: sig.NoChain, RekorTamper: fixture.RekorTamper(sig.RekorTamper)}
	switch {
	case sig.Cert != "":
		spec.Leaf = lookup(t, m.certs, sig.Cert, "certificate")
	case sig.Key != "":
		spec.Key = lookup(t, keys, sig.Key, "key").Private
	default:
		t.Fatal("a signature needs a key or a cert")
	}
	if sig.Rekor != "" {
		spec.Rekor = lookup(t, keys, sig.Rekor, "key")
		spec.RekorTime = at(t, sig.RekorTime)
	}
	if sig.TSA != "" {
		spec.TSA = lookup(t, m.tsas, sig.TSA, "TSA")
		spec.TSATime = at(t, sig.TSATime)
	}
	return spec
}

func lookup[T any](t *testing.T, m map[string]T, name, what string) T {
	t.Helper()
	v, ok := m[name]
	if !ok {
		t.Fatalf("unknown %s %q", what, name)
	}
	return v
}

// at returns now plus a duration ("-90m"); "" is the zero time (the fixture's now).
func at(t *testing.T, d string) time.Time {
	t.Helper()
	if d == "" {
		return time.Time{}
	}
	dur, err := time.ParseDuration(d)
	if err != nil {
		t.Fatal(err)
	}
	return time.Now().Add(dur)
}

func validity(t *testing.T, notBefore, notAfter, defBefore, defAfter string) fixture.Validity {
	t.Helper()
	if notBefore == "" {
		notBefore = defBefore
	}
	if notAfter == "" {
		notAfter = defAfter
	}
	return fixture.Validity{NotBefore: at(t, notBefore), NotAfter: at(t, notAfter)}
}
