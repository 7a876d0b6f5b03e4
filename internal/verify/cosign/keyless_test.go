package cosign_test

import (
	"testing"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
)

// TestKeyless covers Kyverno's keyless identity matching (spec §3.5) on top of cosign's chain,
// SCT and Rekor checks: subject and issuer by wildcard, the RegExp fields as unanchored Go
// regular expressions, additionalExtensions by wildcard.
func TestKeyless(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	gh := p.leaf(t, func(o *fixture.LeafOptions) {
		o.Emails = nil
		o.URIs = []string{"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"}
		o.Issuer = "https://token.actions.githubusercontent.com"
		o.Extensions = map[string]string{fixture.OIDGithubWorkflowRef: "refs/heads/main", "1.3.6.1.4.1.57264.1.2": "push"}
	})
	signed := p.image(t, p.signed(p.leaf(t, nil)))
	ghSigned := p.image(t, p.signed(gh))
	keySigned := p.image(t, fixture.SignSpec{Key: p.leaf(t, nil).Key, Rekor: p.rekor})
	strangerSigned := p.image(t, fixture.SignSpec{Leaf: other.leaf(t, nil), Rekor: p.rekor})
	ext := func(k verify.Keyless, m map[string]string) verify.Keyless {
		k.AdditionalExtensions = m
		return k
	}
	const ref, trigger = "1.3.6.1.4.1.57264.1.6", "1.3.6.1.4.1.57264.1.2"
	tests := []struct {
		name    string
		subject verify.Subject
		k       verify.Keyless
		want    string
	}{
		{"subject and issuer", signed, verify.Keyless{Subject: signer, Issuer: issuer}, "pass"},
		{"no identity: any certificate under the roots", signed, verify.Keyless{}, "pass"},
		{"wildcard subject", signed, verify.Keyless{Subject: "*@example.com", Issuer: issuer}, "pass"},
		{"question-mark wildcard", signed, verify.Keyless{Subject: "signe?@example.com"}, "pass"},
		{"wildcard issuer", signed, verify.Keyless{Subject: signer, Issuer: "https://issuer.*"}, "pass"},
		{"subject regexp", signed, verify.Keyless{SubjectRegExp: re(t, `^signer@example\.com$`), Issuer: issuer}, "pass"},
		{"issuer regexp", signed, verify.Keyless{Subject: signer, IssuerRegExp: re(t, `^https://issuer\.example\.com$`)}, "pass"},
		{"issuer only", signed, verify.Keyless{Issuer: issuer}, "pass"},
		{"subject only", signed, verify.Keyless{Subject: signer}, "pass"},
		{"subject or subjectRegExp: either matches", signed, verify.Keyless{Subject: "nobody@example.com", SubjectRegExp: re(t, `^signer@`)}, "pass"},
		{"issuer and issuerRegExp: both must match", signed, verify.Keyless{Issuer: issuer, IssuerRegExp: re(t, `^https://other\.`)},
			"fail: issuer mismatch: expected ^https://other\\., received " + issuer},
		{"wrong subject", signed, verify.Keyless{Subject: "other@example.com", Issuer: issuer},
			"fail: subject mismatch: expected other@example.com, received " + signer},
		{"wrong subject regexp", signed, verify.Keyless{SubjectRegExp: re(t, `^other@`)}, "fail: subject mismatch: expected ^other@, received " + signer},
		{"wrong issuer", signed, verify.Keyless{Subject: signer, Issuer: "https://accounts.google.com"},
			"fail: issuer mismatch: expected https://accounts.google.com, received " + issuer},
		{"wildcard is whole-string", signed, verify.Keyless{Subject: "signer@example"}, "fail: subject mismatch"},
		{"github workflow extensions match", ghSigned, ext(verify.Keyless{Issuer: "https://token.actions.githubusercontent.com"}, map[string]string{ref: "refs/heads/main", trigger: "push"}), "pass"},
		{"github workflow extension by wildcard", ghSigned, ext(verify.Keyless{}, map[string]string{ref: "refs/heads/*"}), "pass"},
		{"github workflow ref mismatch", ghSigned, ext(verify.Keyless{}, map[string]string{ref: "refs/tags/v*"}),
			"fail: extension mismatch: expected refs/tags/v* for key githubWorkflowRef, received refs/heads/main"},
		{"missing extension", signed, ext(verify.Keyless{}, map[string]string{ref: "refs/heads/main"}),
			"fail: extension mismatch: expected refs/heads/main for key githubWorkflowRef, received "},
		{"oidcIssuer extension", signed, ext(verify.Keyless{}, map[string]string{"1.3.6.1.4.1.57264.1.1": issuer}), "pass"},
		{"URI subject", ghSigned, verify.Keyless{Subject: "https://github.com/acme/app/.github/workflows/*@refs/heads/main"}, "pass"},
		{"certificate under another root", strangerSigned, verify.Keyless{Subject: signer}, "fail: no matching signatures: cert verification failed: x509: certificate signed by unknown authority"},
		{"signature without certificate", keySigned, verify.Keyless{Subject: signer}, "fail: no matching signatures: error verifying bundle: empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expect(t, outcome(t, p, tt.subject, nil, p.keyless(tt.k)), tt.want)
		})
	}
}

// TestKeylessIdentityIsPerSignature: the identity and the required annotations must be met by
// the same signature (Kyverno lets two different signatures meet them, spec §3.5 quirk).
func TestKeylessIdentityIsPerSignature(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	trusted := p.leaf(t, nil)
	anyone := p.leaf(t, func(o *fixture.LeafOptions) { o.Emails = []string{"anyone@example.com"} })
	s := p.image(t,
		fixture.SignSpec{Leaf: trusted, Rekor: p.rekor, Annotations: map[string]string{"env": "dev"}},
		fixture.SignSpec{Leaf: anyone, Rekor: p.rekor, Annotations: map[string]string{"env": "prod"}})
	a := p.keyless(verify.Keyless{Subject: signer, Issuer: issuer})
	a.Annotations = map[string]string{"env": "prod"}
	expect(t, outcome(t, p, s, nil, a), "fail: no signature matched the required annotations")
	a.Annotations = map[string]string{"env": "dev"}
	expect(t, outcome(t, p, s, nil, a), "pass")
	// Two signatures, neither by the identity: every mismatch is reported ("; ").
	a = p.keyless(verify.Keyless{Subject: "nobody@example.com"})
	got := outcome(t, p, s, nil, a)
	expect(t, got, "fail: subject mismatch: expected nobody@example.com, received "+signer+"; subject mismatch: expected nobody@example.com, received anyone@example.com")
}

// TestLandscapeGroup4Identity is landscape §4.4 group 4: keyless identity attacks.
func TestLandscapeGroup4Identity(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	issuedFor := func(edit func(*fixture.LeafOptions)) verify.Subject {
		return p.image(t, p.signed(p.leaf(t, edit)))
	}
	// An identity that merely contains the trusted one (same CA: e.g. a self-service Fulcio).
	confusing := issuedFor(func(o *fixture.LeafOptions) {
		o.Emails = nil
		o.URIs = []string{"https://evil.example/x?https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"}
		o.Issuer = "https://token.actions.githubusercontent.com.evil.example"
	})
	genuine := issuedFor(func(o *fixture.LeafOptions) {
		o.Emails = nil
		o.URIs = []string{"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"}
		o.Issuer = "https://token.actions.githubusercontent.com"
		o.Extensions = map[string]string{fixture.OIDGithubWorkflowRef: "refs/heads/main"}
	})
	t.Run("unanchored regexps match a confusing identity (Kyverno semantics, documented)", func(t *testing.T) {
		k := verify.Keyless{SubjectRegExp: re(t, `https://github\.com/acme/`), IssuerRegExp: re(t, `https://token\.actions\.githubusercontent\.com`)}
		expect(t, outcome(t, p, confusing, nil, p.keyless(k)), "pass")
	})
	t.Run("anchored subject regexp denies the confusing identity", func(t *testing.T) {
		k := verify.Keyless{SubjectRegExp: re(t, `^https://github\.com/acme/`), Issuer: "https://token.actions.githubusercontent.com"}
		expect(t, outcome(t, p, confusing, nil, p.keyless(k)), "fail: subject mismatch: expected ^https://github\\.com/acme/, received https://evil.example/x?")
		expect(t, outcome(t, p, genuine, nil, p.keyless(k)), "pass")
	})
	t.Run("anchored issuer regexp denies a look-alike issuer", func(t *testing.T) {
		k := verify.Keyless{IssuerRegExp: re(t, `^https://token\.actions\.githubusercontent\.com$`)}
		expect(t, outcome(t, p, confusing, nil, p.keyless(k)), "fail: issuer mismatch: expected ^https://token")
		expect(t, outcome(t, p, genuine, nil, p.keyless(k)), "pass")
	})
	t.Run("exact fields are whole-string wildcards, not substrings", func(t *testing.T) {
		k := verify.Keyless{Subject: "https://github.com/acme/*", Issuer: "https://token.actions.githubusercontent.com"}
		expect(t, outcome(t, p, confusing, nil, p.keyless(k)), "fail: subject mismatch")
		expect(t, outcome(t, p, genuine, nil, p.keyless(k)), "pass")
	})
	t.Run("regexp mismatch denies", func(t *testing.T) {
		k := verify.Keyless{SubjectRegExp: re(t, `^https://github\.com/other/`)}
		expect(t, outcome(t, p, genuine, nil, p.keyless(k)), "fail: subject mismatch")
	})
	t.Run("issuer-only constraint does not pin the subject", func(t *testing.T) {
		k := verify.Keyless{Issuer: "https://token.actions.githubusercontent.com"}
		expect(t, outcome(t, p, genuine, nil, p.keyless(k)), "pass")
		expect(t, outcome(t, p, confusing, nil, p.keyless(k)), "fail: issuer mismatch")
	})
	t.Run("subject-only constraint does not pin the issuer", func(t *testing.T) {
		other := issuedFor(func(o *fixture.LeafOptions) { o.Issuer = "https://attacker.example" })
		expect(t, outcome(t, p, other, nil, p.keyless(verify.Keyless{Subject: signer})), "pass")
		expect(t, outcome(t, p, other, nil, p.keyless(verify.Keyless{Subject: signer, Issuer: issuer})), "fail: issuer mismatch: expected "+issuer+", received https://attacker.example")
	})
	t.Run("github workflow ref mismatch", func(t *testing.T) {
		k := verify.Keyless{Issuer: "https://token.actions.githubusercontent.com", AdditionalExtensions: map[string]string{"1.3.6.1.4.1.57264.1.6": "refs/tags/v*"}}
		expect(t, outcome(t, p, genuine, nil, p.keyless(k)), "fail: extension mismatch: expected refs/tags/v* for key githubWorkflowRef, received refs/heads/main")
	})
	t.Run("issuer confusion: the two issuer extensions disagree", func(t *testing.T) {
		split := issuedFor(func(o *fixture.LeafOptions) { o.IssuerV1 = issuer; o.IssuerV2 = "https://attacker.example" })
		for _, want := range []string{issuer, "https://attacker.example"} {
			got := outcome(t, p, split, nil, p.keyless(verify.Keyless{Issuer: want}))
			expect(t, got, "fail: issuer mismatch: the certificate names two OIDC issuers, "+issuer+" (1.3.6.1.4.1.57264.1.1) and https://attacker.example (1.3.6.1.4.1.57264.1.8)")
		}
		got := outcome(t, p, split, nil, p.keyless(verify.Keyless{AdditionalExtensions: map[string]string{"1.3.6.1.4.1.57264.1.1": issuer}}))
		expect(t, got, "fail: issuer mismatch: the certificate names two OIDC issuers")
	})
	t.Run("issuer read from extension 1.8 alone", func(t *testing.T) {
		v2 := issuedFor(func(o *fixture.LeafOptions) { o.Issuer = ""; o.IssuerV2 = issuer })
		expect(t, outcome(t, p, v2, nil, p.keyless(verify.Keyless{Issuer: issuer})), "pass")
		expect(t, outcome(t, p, v2, nil, p.keyless(verify.Keyless{Issuer: "https://other.example"})), "fail: issuer mismatch")
	})
	t.Run("issuer read from extension 1.1 alone", func(t *testing.T) {
		v1 := issuedFor(func(o *fixture.LeafOptions) { o.Issuer = ""; o.IssuerV1 = issuer })
		expect(t, outcome(t, p, v1, nil, p.keyless(verify.Keyless{Issuer: issuer})), "pass")
	})
	t.Run("certificate without SANs never satisfies a subject", func(t *testing.T) {
		bare := issuedFor(func(o *fixture.LeafOptions) { o.Emails = nil })
		expect(t, outcome(t, p, bare, nil, p.keyless(verify.Keyless{Subject: signer})), "fail: subject mismatch: expected "+signer+", received ")
		expect(t, outcome(t, p, bare, nil, p.keyless(verify.Keyless{SubjectRegExp: re(t, `.*`)})), "fail: subject mismatch")
	})
	t.Run("certificate without the issuer extensions", func(t *testing.T) {
		none := issuedFor(func(o *fixture.LeafOptions) { o.Issuer = "" })
		expect(t, outcome(t, p, none, nil, p.keyless(verify.Keyless{Issuer: issuer})), "fail: issuer mismatch: expected "+issuer+", received ")
	})
	t.Run("certificate without the code-signing usage", func(t *testing.T) {
		noEKU := issuedFor(func(o *fixture.LeafOptions) { o.NoCodeSigning = true })
		expect(t, outcome(t, p, noEKU, nil, p.keyless(verify.Keyless{Subject: signer})), "fail: no matching signatures: cert verification failed: x509: certificate specifies an incompatible key usage")
	})
}
