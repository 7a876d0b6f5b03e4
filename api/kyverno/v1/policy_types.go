package v1

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group, versions and kinds of the policies vouch reads.
const (
	Group              = "kyverno.io"
	Version            = "v1"
	VersionV2beta1     = "v2beta1"
	KindClusterPolicy  = "ClusterPolicy"
	KindPolicy         = "Policy"
	AnnotationAutogen  = "pod-policies.kyverno.io/autogen-controllers"
	AnnotationVerified = "kyverno.io/verify-images"
	AnnotationScoped   = "kyverno.io/verify-images-scoped"
)

// Policy is a kyverno.io ClusterPolicy or (namespaced) Policy. Both kinds share one shape;
// Kind tells them apart.
type Policy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec `json:"spec"`
	// Status is written by controllers; vouch ignores it.
	Status map[string]any `json:"status,omitempty"`
}

// IsNamespaced reports whether the policy is a namespaced Policy.
func (p *Policy) IsNamespaced() bool { return p.Kind == KindPolicy }

// ValidationFailureAction says whether a failed rule blocks admission (Enforce) or is only
// reported (Audit).
type ValidationFailureAction string

// Failure actions. The lowercase forms are deprecated spellings Kyverno still accepts.
const (
	Enforce    ValidationFailureAction = "Enforce"
	Audit      ValidationFailureAction = "Audit"
	enforceOld ValidationFailureAction = "enforce"
	auditOld   ValidationFailureAction = "audit"
)

// Enforce reports whether the action blocks admission.
func (a ValidationFailureAction) Enforce() bool { return a == Enforce || a == enforceOld }

// IsValid reports whether a is one of the four spellings Kyverno accepts.
func (a ValidationFailureAction) IsValid() bool {
	return a == Enforce || a == Audit || a == enforceOld || a == auditOld
}

// FailurePolicyType says what happens when a policy cannot be evaluated (Fail or Ignore).
type FailurePolicyType string

// Failure policies.
const (
	Fail   FailurePolicyType = "Fail"
	Ignore FailurePolicyType = "Ignore"
)

// ApplyRulesType controls whether processing stops after the first applied rule.
type ApplyRulesType string

// ApplyRules values.
const (
	ApplyAll ApplyRulesType = "All"
	ApplyOne ApplyRulesType = "One"
)

// Spec contains the rules of a policy and its policy-wide controls.
type Spec struct {
	Rules                            []Rule                            `json:"rules,omitempty"`
	ApplyRules                       *ApplyRulesType                   `json:"applyRules,omitempty"`
	FailurePolicy                    *FailurePolicyType                `json:"failurePolicy,omitempty"`
	ValidationFailureAction          ValidationFailureAction           `json:"validationFailureAction,omitempty"`
	ValidationFailureActionOverrides []ValidationFailureActionOverride `json:"validationFailureActionOverrides,omitempty"`
	EmitWarning                      *bool                             `json:"emitWarning,omitempty"`
	Admission                        *bool                             `json:"admission,omitempty"`
	Background                       *bool                             `json:"background,omitempty"`
	SchemaValidation                 *bool                             `json:"schemaValidation,omitempty"`
	WebhookTimeoutSeconds            *int32                            `json:"webhookTimeoutSeconds,omitempty"`
	WebhookConfiguration             *WebhookConfiguration             `json:"webhookConfiguration,omitempty"`
	MutateExistingOnPolicyUpdate     bool                              `json:"mutateExistingOnPolicyUpdate,omitempty"`
	GenerateExistingOnPolicyUpdate   *bool                             `json:"generateExistingOnPolicyUpdate,omitempty"`
	GenerateExisting                 bool                              `json:"generateExisting,omitempty"`
	UseServerSideApply               bool                              `json:"useServerSideApply,omitempty"`
}

// GetValidationFailureAction returns the policy-wide failure action, Audit when unset (CRD default).
func (s *Spec) GetValidationFailureAction() ValidationFailureAction {
	if s.ValidationFailureAction == "" {
		return Audit
	}
	return s.ValidationFailureAction
}

// GetFailurePolicy returns webhookConfiguration.failurePolicy, else spec.failurePolicy, else Fail.
func (s *Spec) GetFailurePolicy() FailurePolicyType {
	if s.WebhookConfiguration != nil && s.WebhookConfiguration.FailurePolicy != nil {
		return *s.WebhookConfiguration.FailurePolicy
	}
	if s.FailurePolicy != nil {
		return *s.FailurePolicy
	}
	return Fail
}

// GetWebhookTimeoutSeconds returns webhookConfiguration.timeoutSeconds, else
// spec.webhookTimeoutSeconds, else 10 (Kyverno's default).
func (s *Spec) GetWebhookTimeoutSeconds() int32 {
	if s.WebhookConfiguration != nil && s.WebhookConfiguration.TimeoutSeconds != nil {
		return *s.WebhookConfiguration.TimeoutSeconds
	}
	if s.WebhookTimeoutSeconds != nil {
		return *s.WebhookTimeoutSeconds
	}
	return 10
}

// GetApplyRules returns applyRules, All when unset.
func (s *Spec) GetApplyRules() ApplyRulesType {
	if s.ApplyRules == nil {
		return ApplyAll
	}
	return *s.ApplyRules
}

// GetAdmission reports whether rules apply at admission (default true).
func (s *Spec) GetAdmission() bool { return boolOr(s.Admission, true) }

// GetBackground reports whether rules apply in background scans (default true).
func (s *Spec) GetBackground() bool { return boolOr(s.Background, true) }

// GetEmitWarning reports whether every non-skip result becomes an admission warning.
func (s *Spec) GetEmitWarning() bool { return boolOr(s.EmitWarning, false) }

// ValidationFailureActionOverride overrides the failure action for some namespaces.
type ValidationFailureActionOverride struct {
	Action            ValidationFailureAction `json:"action,omitempty"`
	Namespaces        []string                `json:"namespaces,omitempty"`
	NamespaceSelector *metav1.LabelSelector   `json:"namespaceSelector,omitempty"`
}

// WebhookConfiguration holds per-policy webhook settings.
type WebhookConfiguration struct {
	FailurePolicy   *FailurePolicyType `json:"failurePolicy,omitempty"`
	TimeoutSeconds  *int32             `json:"timeoutSeconds,omitempty"`
	MatchConditions []MatchCondition   `json:"matchConditions,omitempty"`
}

// MatchCondition is a CEL expression that must hold for the webhook to be called.
type MatchCondition struct {
	Name       string `json:"name"`
	Expression string `json:"expression"`
}

// Rule is one policy rule. vouch evaluates verifyImages rules; mutate, validate and generate
// rules are parsed (kept as raw JSON) so that rule-type validation is exact, but not enforced.
type Rule struct {
	Name                   string                `json:"name"`
	Context                []ContextEntry        `json:"context,omitempty"`
	MatchResources         MatchResources        `json:"match,omitempty"`
	ExcludeResources       *MatchResources       `json:"exclude,omitempty"`
	ImageExtractors        ImageExtractorConfigs `json:"imageExtractors,omitempty"`
	Preconditions          *AnyAllConditions     `json:"preconditions,omitempty"`
	CELPreconditions       []MatchCondition      `json:"celPreconditions,omitempty"`
	Mutation               map[string]any        `json:"mutate,omitempty"`
	Validation             map[string]any        `json:"validate,omitempty"`
	Generation             map[string]any        `json:"generate,omitempty"`
	VerifyImages           []ImageVerification   `json:"verifyImages,omitempty"`
	SkipBackgroundRequests *bool                 `json:"skipBackgroundRequests,omitempty"`
	ReportProperties       map[string]string     `json:"reportProperties,omitempty"`
}

// HasVerifyImages reports whether at least one verifyImages entry is not empty.
func (r *Rule) HasVerifyImages() bool {
	for i := range r.VerifyImages {
		if !r.VerifyImages[i].isZero() {
			return true
		}
	}
	return false
}

// HasMutate reports whether the rule has a mutate section.
func (r *Rule) HasMutate() bool { return len(r.Mutation) > 0 }

// HasValidate reports whether the rule has a validate section.
func (r *Rule) HasValidate() bool { return len(r.Validation) > 0 }

// HasGenerate reports whether the rule has a generate section.
func (r *Rule) HasGenerate() bool { return len(r.Generation) > 0 }

// ImageExtractorConfigs maps a resource kind to the custom image extractors for it.
type ImageExtractorConfigs map[string][]ImageExtractorConfig

// ImageExtractorConfig locates images in a custom resource.
type ImageExtractorConfig struct {
	Path     string `json:"path"`
	Value    string `json:"value,omitempty"`
	Name     string `json:"name,omitempty"`
	Key      string `json:"key,omitempty"`
	JMESPath string `json:"jmesPath,omitempty"`
}

// MatchResources selects resources by any/all filters or, in the legacy form, by one inline
// resource description and user info.
type MatchResources struct {
	Any                 ResourceFilters `json:"any,omitempty"`
	All                 ResourceFilters `json:"all,omitempty"`
	UserInfo            `json:",inline"`
	ResourceDescription ResourceDescription `json:"resources,omitempty"`
}

// IsEmpty reports whether nothing is specified.
func (m *MatchResources) IsEmpty() bool {
	return len(m.Any) == 0 && len(m.All) == 0 && m.UserInfo.IsEmpty() && m.ResourceDescription.IsEmpty()
}

// GetKinds returns every kind named anywhere in the block.
func (m *MatchResources) GetKinds() []string {
	kinds := append([]string(nil), m.ResourceDescription.Kinds...)
	for _, f := range m.All {
		kinds = append(kinds, f.Kinds...)
	}
	for _, f := range m.Any {
		kinds = append(kinds, f.Kinds...)
	}
	return kinds
}

// ResourceFilters is a list of resource filters.
type ResourceFilters []ResourceFilter

// ResourceFilter is one user-info plus resource-description criterion.
type ResourceFilter struct {
	UserInfo            `json:",inline"`
	ResourceDescription `json:"resources,omitempty"`
}

// IsEmpty reports whether the filter specifies nothing.
func (f ResourceFilter) IsEmpty() bool {
	return f.UserInfo.IsEmpty() && f.ResourceDescription.IsEmpty()
}

// AdmissionOperation is an admission operation: CREATE, UPDATE, DELETE or CONNECT.
type AdmissionOperation string

// Admission operations.
const (
	Create  AdmissionOperation = "CREATE"
	Update  AdmissionOperation = "UPDATE"
	Delete  AdmissionOperation = "DELETE"
	Connect AdmissionOperation = "CONNECT"
)

// ResourceDescription holds the resource criteria of a filter. All given criteria must hold;
// inside a list any element may match. Names, namespaces and annotations take wildcards.
type ResourceDescription struct {
	Kinds             []string              `json:"kinds,omitempty"`
	Name              string                `json:"name,omitempty"`
	Names             []string              `json:"names,omitempty"`
	Namespaces        []string              `json:"namespaces,omitempty"`
	Annotations       map[string]string     `json:"annotations,omitempty"`
	Selector          *metav1.LabelSelector `json:"selector,omitempty"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	Operations        []AdmissionOperation  `json:"operations,omitempty"`
}

// IsEmpty reports whether no criterion is given (operations alone do not count, as in Kyverno).
func (r ResourceDescription) IsEmpty() bool {
	return len(r.Kinds) == 0 && r.Name == "" && len(r.Names) == 0 && len(r.Namespaces) == 0 &&
		len(r.Annotations) == 0 && r.Selector == nil && r.NamespaceSelector == nil
}

// UserInfo holds the admission-user criteria of a filter.
type UserInfo struct {
	Roles        []string         `json:"roles,omitempty"`
	ClusterRoles []string         `json:"clusterRoles,omitempty"`
	Subjects     []rbacv1.Subject `json:"subjects,omitempty"`
}

// IsEmpty reports whether no user criterion is given.
func (u UserInfo) IsEmpty() bool {
	return len(u.Roles) == 0 && len(u.ClusterRoles) == 0 && len(u.Subjects) == 0
}

// ContextEntry adds a named value to the rule's evaluation context.
type ContextEntry struct {
	Name            string           `json:"name"`
	ConfigMap       *ConfigMapRef    `json:"configMap,omitempty"`
	APICall         *APICall         `json:"apiCall,omitempty"`
	ImageRegistry   *ImageRegistry   `json:"imageRegistry,omitempty"`
	Variable        *Variable        `json:"variable,omitempty"`
	GlobalReference *GlobalReference `json:"globalReference,omitempty"`
}

// ConfigMapRef names a ConfigMap.
type ConfigMapRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// APICall is a Kubernetes API or service call whose JSON result becomes a context value.
type APICall struct {
	URLPath  string        `json:"urlPath,omitempty"`
	Method   string        `json:"method,omitempty"`
	Data     []RequestData `json:"data,omitempty"`
	Service  *ServiceCall  `json:"service,omitempty"`
	JMESPath string        `json:"jmesPath,omitempty"`
	Default  any           `json:"default,omitempty"`
}

// RequestData is one key/value of an API call body.
type RequestData struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// ServiceCall is an HTTP call to a service.
type ServiceCall struct {
	URL      string       `json:"url"`
	CABundle string       `json:"caBundle,omitempty"`
	Headers  []HTTPHeader `json:"headers,omitempty"`
}

// HTTPHeader is one request header.
type HTTPHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ImageRegistry fetches image data (config, manifest) into the context.
type ImageRegistry struct {
	Reference                string                    `json:"reference"`
	JMESPath                 string                    `json:"jmesPath,omitempty"`
	ImageRegistryCredentials *ImageRegistryCredentials `json:"imageRegistryCredentials,omitempty"`
}

// Variable is a literal or JMESPath-computed context value.
type Variable struct {
	Value    any    `json:"value,omitempty"`
	JMESPath string `json:"jmesPath,omitempty"`
	Default  any    `json:"default,omitempty"`
}

// GlobalReference reads a GlobalContextEntry.
type GlobalReference struct {
	Name     string `json:"name"`
	JMESPath string `json:"jmesPath,omitempty"`
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}
