package cosign

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"sort"
	"strings"

	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/verify"
)

// Fulcio's OIDC issuer extensions: 1.1 holds the issuer URL as raw bytes (deprecated), 1.8 as a
// DER UTF8String (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// constrains reports whether a keyless attestor names any identity; without one, every
// certificate that chains to the roots is accepted (spec §3.5).
func constrains(k *verify.Keyless) bool {
	return k.Subject != "" || k.SubjectRegExp != nil || k.Issuer != "" || k.IssuerRegExp != nil || len(k.AdditionalExtensions) > 0
}

// matchIdentity returns the verified signatures whose certificate carries the attestor's
// identity (spec §3.5), or an identity error combining why each did not ("; ", as Kyverno).
func matchIdentity(sigs []oci.Signature, k *verify.Keyless) ([]oci.Signature, error) {
	if !constrains(k) {
		return sigs, nil
	}
	var matched []oci.Signature
	var problems []string
	for _, sig := range sigs {
		cert, err := sig.Cert()
		switch {
		case err != nil:
			problems = append(problems, "failed to read certificate: "+err.Error())
		case cert == nil:
			problems = append(problems, "certificate not found")
		default:
			if err := checkIdentity(cert, k); err != nil {
				problems = append(problems, err.Error())
				continue
			}
			matched = append(matched, sig)
		}
	}
	if len(matched) == 0 {
		return nil, verify.Errorf(verify.CodeIdentity, strings.Join(problems, "; "), nil)
	}
	return matched, nil
}

// checkIdentity applies Kyverno's matching (spec §3.5): subject and issuer by wildcard
// (imageref.Match: '*' and '?', whole string), subjectRegExp/issuerRegExp as unanchored Go
// regular expressions, additionalExtensions by wildcard. Two deliberate differences: a
// certificate without SANs never satisfies a subject constraint, and the issuer is read from
// both Fulcio extensions (a certificate whose two issuer extensions disagree satisfies none).
func checkIdentity(cert *x509.Certificate, k *verify.Keyless) error {
	if k.Subject != "" || k.SubjectRegExp != nil {
		sans := cryptoutils.GetSubjectAlternateNames(cert)
		if !subjectMatches(sans, k) {
			expected := k.Subject
			if expected == "" {
				expected = k.SubjectRegExp.String()
			}
			return fmt.Errorf("subject mismatch: expected %s, received %s", expected, strings.Join(sans, ", "))
		}
	}
	var issuer string
	if k.Issuer != "" || k.IssuerRegExp != nil || k.AdditionalExtensions[oidIssuerV1.String()] != "" {
		var err error
		if issuer, err = oidcIssuer(cert); err != nil {
			return err
		}
	}
	if k.Issuer != "" && !imageref.Match(k.Issuer, issuer) {
		return fmt.Errorf("issuer mismatch: expected %s, received %s", k.Issuer, issuer)
	}
	if k.IssuerRegExp != nil && !k.IssuerRegExp.MatchString(issuer) {
		return fmt.Errorf("issuer mismatch: expected %s, received %s", k.IssuerRegExp.String(), issuer)
	}
	oids := make([]string, 0, len(k.AdditionalExtensions))
	for oid := range k.AdditionalExtensions {
		oids = append(oids, oid)
	}
	sort.Strings(oids)
	for _, oid := range oids {
		want := k.AdditionalExtensions[oid]
		got := issuer
		if oid != oidIssuerV1.String() {
			got = rawExtension(cert, oid)
		}
		if !imageref.Match(want, got) {
			return fmt.Errorf("extension mismatch: expected %s for key %s, received %s", want, extensionName(oid), got)
		}
	}
	return nil
}

func subjectMatches(sans []string, k *verify.Keyless) bool {
	for _, san := range sans {
		if k.Subject != "" && imageref.Match(k.Subject, san) {
			return true
		}
		if k.SubjectRegExp != nil && k.SubjectRegExp.MatchString(san) {
			return true
		}
	}
	return false
}

// oidcIssuer returns the OIDC issuer a Fulcio-style certificate names, from extension 1.8
// (DER UTF8String) and the deprecated 1.1 (raw bytes). When both are present they must agree:
// otherwise which one a tool reads decides the identity, so neither is trusted.
func oidcIssuer(cert *x509.Certificate) (string, error) {
	var v1, v2 string
	var has1, has2 bool
	for _, ext := range cert.Extensions {
		switch {
		case ext.Id.Equal(oidIssuerV1):
			v1, has1 = string(ext.Value), true
		case ext.Id.Equal(oidIssuerV2):
			rest, err := asn1.Unmarshal(ext.Value, &v2)
			if err != nil || len(rest) > 0 {
				return "", fmt.Errorf("issuer mismatch: the OIDC issuer extension %s is not a DER string", oidIssuerV2)
			}
			has2 = true
		}
	}
	switch {
	case has1 && has2 && v1 != v2:
		return "", fmt.Errorf("issuer mismatch: the certificate names two OIDC issuers, %s (%s) and %s (%s)", v1, oidIssuerV1, v2, oidIssuerV2)
	case has2:
		return v2, nil
	}
	return v1, nil
}

// rawExtension returns an extension's value as a string (Fulcio's 1.2–1.6 GitHub extensions
// hold raw bytes), "" when the certificate lacks it.
func rawExtension(cert *x509.Certificate, oid string) string {
	for _, ext := range cert.Extensions {
		if ext.Id.String() == oid {
			return string(ext.Value)
		}
	}
	return ""
}

// extensionName returns cosign's name for a Fulcio extension OID (githubWorkflowRef, ...).
func extensionName(oid string) string {
	if n, ok := cosign.CertExtensionMap[oid]; ok {
		return n
	}
	return oid
}
