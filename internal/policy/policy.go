package policy

import (
	"time"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/conditions"
	"github.com/vouchproject/vouch/internal/extract"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/verify"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Policy is a compiled ClusterPolicy or Policy. It is immutable once compiled.
type Policy struct {
	Name            string
	Namespace       string // "" for a ClusterPolicy
	Kind            string // v1.KindClusterPolicy or v1.KindPolicy
	UID             string
	ResourceVersion string
	Annotations     map[string]string
	Source          string // where the policy came from, for messages

	FailureAction  v1.ValidationFailureAction // spec.validationFailureAction, defaulted
	Overrides      []Override
	FailurePolicy  v1.FailurePolicyType
	WebhookTimeout time.Duration
	EmitWarning    bool
	Background     bool
	ApplyOne       bool
	Rules          []*Rule // original rules, then autogen rules (Kyverno's ComputeRules order)

	API *v1.Policy // the decoded policy; read-only; may be nil for a broken policy
	Err error      // set for a policy that could not be loaded (see Broken)
	// Insecure lists the settings that weaken verification (see Insecure), found once at
	// compilation.
	Insecure []Finding
}

// ReportName is the policy name as Kyverno reports it: "<namespace>/<name>" for a namespaced
// Policy, "<name>" for a ClusterPolicy.
func (p *Policy) ReportName() string {
	if p.Namespace != "" {
		return p.Namespace + "/" + p.Name
	}
	return p.Name
}

// ScopeKey is the policy's key in the kyverno.io/verify-images-scoped annotation:
// "<namespace>/<name>", with an empty namespace for a ClusterPolicy (spec §2.8).
func (p *Policy) ScopeKey() string { return p.Namespace + "/" + p.Name }

// Override is a compiled validationFailureActionOverride.
type Override struct {
	Action            v1.ValidationFailureAction
	Namespaces        []string
	NamespaceSelector *selector
}

// Rule is one compiled verifyImages rule (original or autogen).
type Rule struct {
	Policy        *Policy
	Name          string
	Path          string // field path of the source rule, e.g. "spec.rules[0]"
	Autogen       bool
	seq           int // global order, for deterministic matching output
	match         block
	exclude       *block
	Extractors    map[string][]extract.Config // nil: built-in extractors only
	Verifications []*Verification
	// Context is the rule's context entries, loaded in order before the preconditions
	// (spec §2.3); Preconditions decide whether the rule applies (nil: it does).
	Context       []*ContextEntry
	Preconditions *conditions.Conditions
	// Unsupported is set when the rule uses a feature vouch cannot evaluate yet (context
	// entries of kinds it cannot load); such rules fail closed with this message.
	Unsupported   string
	FailureAction v1.ValidationFailureAction // rule-level action (spec §2.12), before overrides
	kinds         []string                   // index keys; nil means "any kind"
	// needsContext and buildsDocument: see NeedsContext and BuildsDocument.
	needsContext, buildsDocument bool
}

// Verification is one compiled verifyImages entry (legacy fields converted, defaults applied).
type Verification struct {
	Index               int
	Path                string // e.g. "spec.rules[0].verifyImages[1]"
	Type                v1.ImageVerificationType
	ImageReferences     []string
	SkipImageReferences []string
	Entry               verify.Entry // what verifiers need beyond attestors
	Attestors           []*verify.AttestorSet
	Attestations        []*Attestation
	MutateDigest        bool
	VerifyDigest        bool
	Required            bool
	UseCache            bool
	FailureAction       *v1.ValidationFailureAction
	Credentials         *v1.ImageRegistryCredentials
	Validate            *v1.ValidateImageVerification
	// Deny is validate.deny.conditions compiled (nil: the entry has no validate.deny); true
	// fails the entry (spec §3.13). DenyMessage is validate.message compiled.
	Deny        *conditions.Conditions
	DenyMessage *conditions.Template
	// Variant identifies a substitution of a templated entry (see Substitute); empty for an
	// entry as written.
	Variant  string
	template *entryTemplate
	secrets  *secretKeys // entries with keys from Secrets (ReadsSecrets)
}

// NeedsContext reports whether evaluating the rule needs its context loaded: context
// entries, preconditions or entries with variables (decided when the rule is compiled).
func (r *Rule) NeedsContext() bool { return r.needsContext }

// BuildsDocument reports whether an evaluation builds the rule's context document: it needs
// its context, or an entry evaluates conditions (attestation conditions, validate.deny),
// which read the document (decided when the rule is compiled).
func (r *Rule) BuildsDocument() bool { return r.buildsDocument }

// decideDocument sets what NeedsContext and BuildsDocument report, once the rule is compiled.
func (r *Rule) decideDocument() {
	r.needsContext = len(r.Context) > 0 || r.Preconditions != nil
	r.buildsDocument = r.needsContext
	for _, v := range r.Verifications {
		r.needsContext = r.needsContext || v.template != nil
		r.buildsDocument = r.buildsDocument || v.template != nil || v.Deny != nil
		for _, a := range v.Attestations {
			r.buildsDocument = r.buildsDocument || len(a.Conditions) > 0
		}
	}
}

// NeedsVerification reports whether the entry checks signatures or attestations (an entry
// without attestors and attestations only does digest work, spec §2.6).
func (v *Verification) NeedsVerification() bool {
	return len(v.Attestors) > 0 || len(v.Attestations) > 0
}

// Attestation is one compiled attestations entry.
type Attestation struct {
	Path       string // e.g. ".attestations[0]"
	Name       string
	Type       string
	Attestors  []*verify.AttestorSet
	Conditions []v1.AnyAllConditions
	// Check is Conditions compiled (nil holds no condition).
	Check *conditions.Conditions
}

// selector is a label selector compiled once; selectors with wildcard keys or values are
// resolved against the labels at match time, as Kyverno does (spec §2.5).
type selector struct {
	raw      *metav1.LabelSelector
	compiled labels.Selector // nil when the selector has wildcards
}

// Matches reports whether the override applies to a namespace (Kyverno's
// GetValidationFailureAction): with namespaces, one must match by wildcard and the selector, if
// any, must match the namespace labels; without namespaces, the selector alone decides.
func (o *Override) Matches(namespace string, nsLabels map[string]string) bool {
	if len(o.Namespaces) == 0 {
		return o.NamespaceSelector != nil && o.NamespaceSelector.matches(nsLabels)
	}
	if !imageref.MatchAny(o.Namespaces, namespace) {
		return false
	}
	return o.NamespaceSelector == nil || o.NamespaceSelector.matches(nsLabels)
}
