package v1

import (
	"fmt"
	"regexp"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var variableRegex = regexp.MustCompile(`\{\{[^{}]*\}\}`)

// HasVariables reports whether s contains a Kyverno {{ variable }}.
func HasVariables(s string) bool { return variableRegex.MatchString(s) }

// Validate checks a decoded policy the way Kyverno does when the policy is admitted (spec §1.6,
// pkg/validation/policy) together with the CRD schema rules Kyverno relies on (enums, minimums,
// required fields). It returns the errors that make the policy unusable and the warnings
// Kyverno would print (deprecated fields and spellings).
func Validate(p *Policy) (field.ErrorList, []string) {
	v := &validator{}
	v.policy(p)
	return v.errs, v.warnings
}

type validator struct {
	errs     field.ErrorList
	warnings []string
}

func (v *validator) add(err *field.Error) { v.errs = append(v.errs, err) }

func (v *validator) policy(p *Policy) {
	meta := field.NewPath("metadata")
	if p.Name == "" {
		v.add(field.Required(meta.Child("name"), "a policy needs a name"))
	}
	spec := &p.Spec
	sp := field.NewPath("spec")
	v.action(sp.Child("validationFailureAction"), spec.ValidationFailureAction)
	if spec.FailurePolicy != nil {
		v.failurePolicy(sp.Child("failurePolicy"), *spec.FailurePolicy)
	}
	if spec.ApplyRules != nil && *spec.ApplyRules != ApplyAll && *spec.ApplyRules != ApplyOne {
		v.add(field.NotSupported(sp.Child("applyRules"), *spec.ApplyRules, []string{string(ApplyAll), string(ApplyOne)}))
	}
	v.timeout(sp.Child("webhookTimeoutSeconds"), spec.WebhookTimeoutSeconds)
	if wc := spec.WebhookConfiguration; wc != nil {
		wp := sp.Child("webhookConfiguration")
		if wc.FailurePolicy != nil {
			v.failurePolicy(wp.Child("failurePolicy"), *wc.FailurePolicy)
		}
		v.timeout(wp.Child("timeoutSeconds"), wc.TimeoutSeconds)
	}
	for i, o := range spec.ValidationFailureActionOverrides {
		op := sp.Child("validationFailureActionOverrides").Index(i)
		if p.IsNamespaced() {
			v.add(field.Forbidden(op, "Use of validationFailureActionOverrides is supported only with ClusterPolicy"))
		}
		v.action(op.Child("action"), o.Action)
		v.selector(op.Child("namespaceSelector"), o.NamespaceSelector)
	}
	if spec.GenerateExistingOnPolicyUpdate != nil && spec.GenerateExisting {
		v.add(field.Forbidden(sp.Child("generateExistingOnPolicyUpdate"), "remove the deprecated field and use generateExisting instead"))
	}
	if !spec.GetAdmission() && !spec.GetBackground() {
		v.add(field.Invalid(sp.Child("admission"), false, "disabling both admission and background processing is not allowed"))
	}
	names := map[string]int{}
	for i := range spec.Rules {
		rule := &spec.Rules[i]
		rp := sp.Child("rules").Index(i)
		if first, dup := names[rule.Name]; dup && rule.Name != "" {
			v.add(field.Invalid(rp.Child("name"), rule.Name, fmt.Sprintf("Duplicate rule name: '%s' (also spec.rules[%d])", rule.Name, first)))
		} else {
			names[rule.Name] = i
		}
		v.rule(p, rule, rp)
	}
}

func (v *validator) action(path *field.Path, a ValidationFailureAction) {
	if a == "" {
		return
	}
	if !a.IsValid() {
		v.add(field.NotSupported(path, a, []string{"Audit", "Enforce", "audit", "enforce"}))
		return
	}
	if a == enforceOld || a == auditOld {
		v.warnings = append(v.warnings, path.String()+": Validation failure actions enforce/audit are deprecated, use Enforce/Audit instead.")
	}
}

func (v *validator) failurePolicy(path *field.Path, fp FailurePolicyType) {
	if fp != Fail && fp != Ignore {
		v.add(field.NotSupported(path, fp, []string{string(Fail), string(Ignore)}))
	}
}

func (v *validator) timeout(path *field.Path, t *int32) {
	if t != nil && (*t < 1 || *t > 30) {
		v.add(field.Invalid(path, *t, "the timeout value must be between 1 and 30 seconds"))
	}
}

func (v *validator) rule(p *Policy, r *Rule, path *field.Path) {
	if r.Name == "" {
		v.add(field.Required(path.Child("name"), "a rule needs a name"))
	} else if len(r.Name) > 63 {
		v.add(field.TooLong(path.Child("name"), r.Name, 63))
	}
	count := 0
	for _, has := range []bool{r.HasMutate(), r.HasValidate(), r.HasGenerate(), r.HasVerifyImages()} {
		if has {
			count++
		}
	}
	switch {
	case count == 0:
		v.add(field.Invalid(path, r.Name, fmt.Sprintf("No operation defined in the rule '%s'.(supported operations: mutate,validate,generate,verifyImages)", r.Name)))
	case count > 1:
		v.add(field.Invalid(path, r.Name, fmt.Sprintf("Multiple operations defined in the rule '%s', only one operation (mutate,validate,generate,verifyImages) is allowed per rule", r.Name)))
	}
	if r.ImageExtractors != nil && !r.HasVerifyImages() {
		v.add(field.Invalid(path.Child("imageExtractors"), r.Name, fmt.Sprintf("Invalid rule spec for rule '%s', imageExtractors can only be defined for verifyImages rule", r.Name)))
	}
	v.matchResources(p, &r.MatchResources, path.Child("match"), true)
	if r.ExcludeResources != nil {
		v.matchResources(p, r.ExcludeResources, path.Child("exclude"), false)
		v.emptySet(r, path)
	}
	for i := range r.Context {
		v.contextEntry(&r.Context[i], path.Child("context").Index(i))
	}
	if r.Preconditions != nil {
		v.conditions(r.Preconditions, path.Child("preconditions"))
	}
	if len(r.CELPreconditions) > 0 && r.HasVerifyImages() {
		// Kyverno evaluates celPreconditions only for validate.cel rules: on a verifyImages
		// rule they are ignored, and so is the narrowing they were meant to bring.
		v.warnings = append(v.warnings, path.Child("celPreconditions").String()+
			": celPreconditions are not evaluated for verifyImages rules (Kyverno evaluates them only with validate.cel): the rule applies to every resource it matches")
	}
	for name, configs := range r.ImageExtractors {
		for i, c := range configs {
			if c.Path == "" {
				v.add(field.Required(path.Child("imageExtractors").Key(name).Index(i).Child("path"), "an image extractor needs a path"))
			}
		}
	}
	if r.HasVerifyImages() {
		if !p.Spec.GetAdmission() {
			v.add(field.Invalid(field.NewPath("spec", "admission"), false, "disabling admission processing is only allowed with validation policies"))
		}
		v.verifyImages(p, r, path)
	}
}

func (v *validator) matchResources(p *Policy, m *MatchResources, path *field.Path, isMatch bool) {
	if len(m.Any) > 0 && len(m.All) > 0 {
		v.add(field.Invalid(path, field.OmitValueType{}, "Can't specify any and all together"))
	}
	legacy := !m.ResourceDescription.IsEmpty() || len(m.ResourceDescription.Operations) > 0 || !m.UserInfo.IsEmpty()
	if (len(m.Any) > 0 || len(m.All) > 0) && legacy {
		v.add(field.Invalid(path, field.OmitValueType{}, "can't specify any/all together with resources, subjects, roles or clusterRoles"))
	}
	if isMatch && m.IsEmpty() {
		v.add(field.Required(path, "a rule must match resources: at least one element must be specified in a kind block, the kind attribute is mandatory when working with the resources element"))
	}
	for _, list := range []struct {
		name    string
		filters ResourceFilters
	}{{"any", m.Any}, {"all", m.All}} {
		for i := range list.filters {
			f := &list.filters[i]
			fp := path.Child(list.name).Index(i)
			if f.IsEmpty() {
				v.add(field.Required(fp, "a filter must specify resources or user info"))
			}
			v.userInfo(&f.UserInfo, fp)
			v.resourceDescription(p, &f.ResourceDescription, fp.Child("resources"), isMatch)
		}
	}
	if legacy || (isMatch && len(m.Any) == 0 && len(m.All) == 0) {
		v.userInfo(&m.UserInfo, path)
		v.resourceDescription(p, &m.ResourceDescription, path.Child("resources"), isMatch && !m.IsEmpty())
	}
	if jsonHasVariables(m) {
		v.add(field.Invalid(path, field.OmitValueType{}, "variables are not allowed in match and exclude blocks"))
	}
}

func (v *validator) resourceDescription(p *Policy, rd *ResourceDescription, path *field.Path, needKinds bool) {
	if needKinds && len(rd.Kinds) == 0 {
		v.add(field.Required(path.Child("kinds"), "at least one element must be specified in a kind block, the kind attribute is mandatory when working with the resources element"))
	}
	for i, k := range rd.Kinds {
		if k == "" || strings.Count(k, "/") > 3 {
			v.add(field.Invalid(path.Child("kinds").Index(i), k, "a kind is Kind, version/Kind, group/version/Kind, optionally followed by /subresource"))
		}
	}
	if rd.Name != "" && len(rd.Names) > 0 {
		v.add(field.Invalid(path, field.OmitValueType{}, "Both name and names can not be specified together"))
	}
	v.selector(path.Child("selector"), rd.Selector)
	v.selector(path.Child("namespaceSelector"), rd.NamespaceSelector)
	if p.IsNamespaced() && len(rd.Namespaces) > 0 {
		v.add(field.Forbidden(path.Child("namespaces"), "Filtering namespaces not allowed in namespaced policies"))
	}
	for i, op := range rd.Operations {
		switch op {
		case Create, Update, Delete, Connect:
		default:
			v.add(field.NotSupported(path.Child("operations").Index(i), op, []string{"CREATE", "UPDATE", "DELETE", "CONNECT"}))
		}
	}
}

func (v *validator) selector(path *field.Path, s *metav1.LabelSelector) {
	if s == nil {
		return
	}
	for k, val := range s.MatchLabels {
		if strings.ContainsAny(k+val, "*?") {
			return // wildcards are resolved against the resource at match time (spec §2.5)
		}
	}
	if _, err := metav1.LabelSelectorAsSelector(s); err != nil {
		v.add(field.Invalid(path, field.OmitValueType{}, err.Error()))
	}
}

func (v *validator) userInfo(u *UserInfo, path *field.Path) {
	for i, s := range u.Subjects {
		sp := path.Child("subjects").Index(i)
		switch s.Kind {
		case "":
			v.add(field.Required(sp.Child("kind"), ""))
		case rbacv1.GroupKind, rbacv1.ServiceAccountKind, rbacv1.UserKind:
		default:
			v.add(field.Invalid(sp.Child("kind"), s.Kind, "kind must be 'User', 'Group', or 'ServiceAccount'"))
		}
		if s.Name == "" {
			v.add(field.Required(sp.Child("name"), ""))
		}
		if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" {
			v.add(field.Required(sp.Child("namespace"), "namespace is required when Kind is ServiceAccount"))
		}
	}
	for i, r := range u.Roles {
		if len(strings.Split(r, ":")) != 2 {
			v.add(field.Invalid(path.Child("roles").Index(i), r, "Role is expected to be in namespace:name format"))
		}
	}
}

// emptySet rejects exclude blocks that exclude everything the match block selects, in the cases
// Kyverno detects (ValidateMatchExcludeConflict): an identical any-filter on both sides, or an
// exclude description that covers every criterion of the match description.
func (v *validator) emptySet(r *Rule, path *field.Path) {
	ex := r.ExcludeResources
	if len(ex.All) > 0 || len(r.MatchResources.All) > 0 {
		return
	}
	for _, m := range r.MatchResources.Any {
		for _, e := range ex.Any {
			if fmt.Sprintf("%#v", m) == fmt.Sprintf("%#v", e) {
				v.add(field.Invalid(path, r.Name, "Rule is matching an empty set"))
				return
			}
		}
	}
}

func (v *validator) contextEntry(e *ContextEntry, path *field.Path) {
	if e.Name == "" {
		v.add(field.Required(path.Child("name"), "a name is required for context entries"))
	}
	for _, reserved := range []string{"images", "request", "serviceAccountName", "serviceAccountNamespace", "element", "elementIndex"} {
		if e.Name == reserved || strings.HasPrefix(e.Name, reserved+".") {
			v.add(field.Invalid(path.Child("name"), e.Name, fmt.Sprintf("entry name %s is invalid as it conflicts with a pre-defined variable %s", e.Name, reserved)))
		}
	}
	n := 0
	for _, set := range []bool{e.ConfigMap != nil, e.APICall != nil, e.ImageRegistry != nil, e.Variable != nil, e.GlobalReference != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.add(field.Invalid(path, e.Name, "exactly one of configMap or apiCall or imageRegistry or variable or globalReference is required for context entries"))
	}
	if e.Variable != nil && e.Variable.Value == nil && e.Variable.JMESPath == "" {
		v.add(field.Invalid(path.Child("variable"), e.Name, "a variable must define a value or a jmesPath expression"))
	}
	if e.ImageRegistry != nil {
		v.credentials(e.ImageRegistry.ImageRegistryCredentials, path.Child("imageRegistry", "imageRegistryCredentials"))
	}
}

func (v *validator) conditions(c *AnyAllConditions, path *field.Path) {
	for _, list := range []struct {
		name string
		cs   []Condition
	}{{"any", c.Any}, {"all", c.All}} {
		for i, cond := range list.cs {
			cp := path.Child(list.name).Index(i)
			if cond.Key == nil {
				v.add(field.Required(cp.Child("key"), "entered value of `key`, `value` or `operator` is missing or misspelled"))
			}
			if !validOperator(cond.Operator) {
				v.add(field.NotSupported(cp.Child("operator"), cond.Operator, operatorNames()))
			}
		}
	}
}

func validOperator(op ConditionOperator) bool {
	for _, o := range ConditionOperators {
		if strings.EqualFold(string(o), string(op)) {
			return true
		}
	}
	return false
}

func operatorNames() []string {
	out := make([]string, 0, len(ConditionOperators))
	for _, o := range ConditionOperators[:16] {
		out = append(out, string(o))
	}
	return out
}
