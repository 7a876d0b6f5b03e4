package v1

import "reflect"

// ImageVerificationType selects the signature format: Cosign (default), SigstoreBundle or Notary.
type ImageVerificationType string

// Verification types.
const (
	Cosign         ImageVerificationType = "Cosign"
	SigstoreBundle ImageVerificationType = "SigstoreBundle"
	Notary         ImageVerificationType = "Notary"
)

// CredentialProvider names a registry credential helper.
type CredentialProvider string

// Credential providers (spec §7).
const (
	ProviderDefault CredentialProvider = "default"
	ProviderAmazon  CredentialProvider = "amazon"
	ProviderAzure   CredentialProvider = "azure"
	ProviderGoogle  CredentialProvider = "google"
	ProviderGitHub  CredentialProvider = "github"
)

// ImageVerification is one verifyImages entry (spec §1.2).
type ImageVerification struct {
	FailureAction            *ValidationFailureAction   `json:"failureAction,omitempty"`
	Type                     ImageVerificationType      `json:"type,omitempty"`
	Image                    string                     `json:"image,omitempty"`
	ImageReferences          []string                   `json:"imageReferences,omitempty"`
	SkipImageReferences      []string                   `json:"skipImageReferences,omitempty"`
	Key                      string                     `json:"key,omitempty"`
	Roots                    string                     `json:"roots,omitempty"`
	Subject                  string                     `json:"subject,omitempty"`
	Issuer                   string                     `json:"issuer,omitempty"`
	AdditionalExtensions     map[string]string          `json:"additionalExtensions,omitempty"`
	Attestors                []AttestorSet              `json:"attestors,omitempty"`
	Attestations             []Attestation              `json:"attestations,omitempty"`
	Annotations              map[string]string          `json:"annotations,omitempty"`
	Repository               string                     `json:"repository,omitempty"`
	CosignOCI11              bool                       `json:"cosignOCI11,omitempty"`
	MutateDigest             *bool                      `json:"mutateDigest,omitempty"`
	VerifyDigest             *bool                      `json:"verifyDigest,omitempty"`
	Validation               *ValidateImageVerification `json:"validate,omitempty"`
	Required                 *bool                      `json:"required,omitempty"`
	ImageRegistryCredentials *ImageRegistryCredentials  `json:"imageRegistryCredentials,omitempty"`
	UseCache                 *bool                      `json:"useCache,omitempty"`
}

func (iv *ImageVerification) isZero() bool { return reflect.ValueOf(*iv).IsZero() }

// GetType returns the verification type; empty means Cosign.
func (iv *ImageVerification) GetType() ImageVerificationType {
	if iv.Type == "" {
		return Cosign
	}
	return iv.Type
}

// GetMutateDigest returns mutateDigest (CRD default true).
func (iv *ImageVerification) GetMutateDigest() bool { return boolOr(iv.MutateDigest, true) }

// GetVerifyDigest returns verifyDigest (CRD default true).
func (iv *ImageVerification) GetVerifyDigest() bool { return boolOr(iv.VerifyDigest, true) }

// GetRequired returns required (CRD default true).
func (iv *ImageVerification) GetRequired() bool { return boolOr(iv.Required, true) }

// GetUseCache returns useCache (CRD default true).
func (iv *ImageVerification) GetUseCache() bool { return boolOr(iv.UseCache, true) }

// ValidateImageVerification is the cross-attestation deny check of an entry (spec §3.13).
type ValidateImageVerification struct {
	Message string `json:"message,omitempty"`
	Deny    *Deny  `json:"deny,omitempty"`
}

// Deny holds the conditions that, when true, fail the entry.
type Deny struct {
	Conditions *AnyAllConditions `json:"conditions,omitempty"`
}

// ImageRegistryCredentials configures registry authentication for one entry (spec §7).
type ImageRegistryCredentials struct {
	AllowInsecureRegistry bool                 `json:"allowInsecureRegistry,omitempty"`
	Providers             []CredentialProvider `json:"providers,omitempty"`
	Secrets               []string             `json:"secrets,omitempty"`
}

// AttestorSet is a list of attestors of which Count (default: all) must verify.
type AttestorSet struct {
	Count   *int       `json:"count,omitempty"`
	Entries []Attestor `json:"entries,omitempty"`
}

// RequiredCount returns how many entries must verify: count if set and non-zero, else all.
func (as *AttestorSet) RequiredCount() int {
	if as.Count == nil || *as.Count == 0 {
		return len(as.Entries)
	}
	return *as.Count
}

// Attestor is one authority: exactly one of Keys, Certificates, Keyless or a nested Attestor set.
type Attestor struct {
	Keys               *StaticKeyAttestor   `json:"keys,omitempty"`
	Certificates       *CertificateAttestor `json:"certificates,omitempty"`
	Keyless            *KeylessAttestor     `json:"keyless,omitempty"`
	Attestor           *AttestorSet         `json:"attestor,omitempty"`
	Annotations        map[string]string    `json:"annotations,omitempty"`
	Repository         string               `json:"repository,omitempty"`
	SignatureAlgorithm string               `json:"signatureAlgorithm,omitempty"`
}

// GetSignatureAlgorithm returns the hash for key and certificate verification: keys-level
// signatureAlgorithm wins over the attestor-level one (spec §3.7); both default to sha256.
func (a *Attestor) GetSignatureAlgorithm() string {
	if a.Keys != nil && a.Keys.SignatureAlgorithm != "" {
		return a.Keys.SignatureAlgorithm
	}
	if a.SignatureAlgorithm != "" {
		return a.SignatureAlgorithm
	}
	return "sha256"
}

// StaticKeyAttestor verifies with public keys: PEM text, a k8s:// secret reference, a KMS URI,
// or a Secret holding cosign.pub.
type StaticKeyAttestor struct {
	PublicKeys         string           `json:"publicKeys,omitempty"`
	SignatureAlgorithm string           `json:"signatureAlgorithm,omitempty"`
	KMS                string           `json:"kms,omitempty"`
	Secret             *SecretReference `json:"secret,omitempty"`
	Rekor              *Rekor           `json:"rekor,omitempty"`
	CTLog              *CTLog           `json:"ctlog,omitempty"`
}

// SecretReference names a Secret that holds a cosign.pub key.
type SecretReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

// CertificateAttestor verifies with an X.509 certificate and/or chain.
type CertificateAttestor struct {
	Certificate      string `json:"cert,omitempty"`
	CertificateChain string `json:"certChain,omitempty"`
	Rekor            *Rekor `json:"rekor,omitempty"`
	CTLog            *CTLog `json:"ctlog,omitempty"`
}

// KeylessAttestor verifies Sigstore keyless (Fulcio-style) certificates and their identity.
type KeylessAttestor struct {
	Rekor                *Rekor            `json:"rekor,omitempty"`
	CTLog                *CTLog            `json:"ctlog,omitempty"`
	Issuer               string            `json:"issuer,omitempty"`
	IssuerRegExp         string            `json:"issuerRegExp,omitempty"`
	Subject              string            `json:"subject,omitempty"`
	SubjectRegExp        string            `json:"subjectRegExp,omitempty"`
	Roots                string            `json:"roots,omitempty"`
	AdditionalExtensions map[string]string `json:"additionalExtensions,omitempty"`
}

// Rekor configures the transparency log.
type Rekor struct {
	URL        string `json:"url,omitempty"`
	PubKey     string `json:"pubkey,omitempty"`
	IgnoreTlog bool   `json:"ignoreTlog,omitempty"`
}

// CTLog configures certificate-transparency (SCT) and timestamp-authority checks.
type CTLog struct {
	IgnoreSCT    bool   `json:"ignoreSCT,omitempty"`
	PubKey       string `json:"pubkey,omitempty"`
	TSACertChain string `json:"tsaCertChain,omitempty"`
}

// Attestation checks signed in-toto statements of one predicate type.
type Attestation struct {
	Name          string             `json:"name,omitempty"`
	PredicateType string             `json:"predicateType,omitempty"`
	Type          string             `json:"type,omitempty"`
	Attestors     []AttestorSet      `json:"attestors,omitempty"`
	Conditions    []AnyAllConditions `json:"conditions,omitempty"`
}

// GetType returns type, falling back to the deprecated predicateType.
func (a *Attestation) GetType() string {
	if a.Type != "" {
		return a.Type
	}
	return a.PredicateType
}

// AnyAllConditions is a block of conditions: any (one must hold) and all (every one must hold).
// The legacy form, a plain list, is read as all.
type AnyAllConditions struct {
	Any []Condition `json:"any,omitempty"`
	All []Condition `json:"all,omitempty"`
}

// Condition compares key with value using operator; key and value may hold JMESPath variables.
type Condition struct {
	Key      any               `json:"key,omitempty"`
	Operator ConditionOperator `json:"operator,omitempty"`
	Value    any               `json:"value,omitempty"`
	Message  string            `json:"message,omitempty"`
}

// ConditionOperator names a Kyverno condition operator.
type ConditionOperator string

// ConditionOperators lists every operator Kyverno's CRD accepts (spec §1.3, §3.14), plus the
// deprecated aliases its engine still evaluates.
var ConditionOperators = []ConditionOperator{
	"Equals", "NotEquals", "In", "AnyIn", "AllIn", "NotIn", "AnyNotIn", "AllNotIn",
	"GreaterThanOrEquals", "GreaterThan", "LessThanOrEquals", "LessThan",
	"DurationGreaterThanOrEquals", "DurationGreaterThan", "DurationLessThanOrEquals", "DurationLessThan",
	"Equal", "NotEqual",
}
