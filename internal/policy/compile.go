package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/conditions"
	"github.com/vouchproject/vouch/internal/extract"
	"github.com/vouchproject/vouch/internal/verify"
)

// Compile validates a decoded policy and compiles it. The returned error lists every problem
// with its field path; warnings are Kyverno's deprecation notices.
func Compile(api *v1.Policy, source string) (*Policy, []string, error) {
	errs, warnings := v1.Validate(api)
	if len(errs) > 0 {
		return nil, warnings, joinFieldErrors(errs)
	}
	p := &Policy{
		Name:            api.Name,
		Namespace:       api.Namespace,
		Kind:            api.Kind,
		UID:             string(api.UID),
		ResourceVersion: api.ResourceVersion,
		Annotations:     api.Annotations,
		Source:          source,
		FailureAction:   api.Spec.GetValidationFailureAction(),
		FailurePolicy:   api.Spec.GetFailurePolicy(),
		WebhookTimeout:  time.Duration(api.Spec.GetWebhookTimeoutSeconds()) * time.Second,
		EmitWarning:     api.Spec.GetEmitWarning(),
		Background:      api.Spec.GetBackground(),
		ApplyOne:        api.Spec.GetApplyRules() == v1.ApplyOne,
		API:             api,
		Insecure:        Insecure(api),
	}
	if p.Kind == v1.KindPolicy && p.Namespace == "" {
		p.Namespace = "default"
	}
	if p.UID == "" {
		// Policies from files have no UID or resourceVersion: identify them by kind and name,
		// and version them by content, so that caches keyed on both see every change.
		p.UID = "file:" + p.Kind + "/" + p.ReportName()
	}
	trustedRoot, hasTrustedRoot := api.Annotations[verify.TrustedRootAnnotation]
	if p.ResourceVersion == "" {
		data, _ := json.Marshal(api.Spec)
		if hasTrustedRoot {
			data = append(data, trustedRoot...) // trust material: a change is a new version
		}
		sum := sha256.Sum256(data)
		p.ResourceVersion = "sha256:" + hex.EncodeToString(sum[:8])
	}
	var problems field.ErrorList
	if hasTrustedRoot {
		if _, err := root.NewTrustedRootFromJSON([]byte(trustedRoot)); err != nil {
			problems = append(problems, field.Invalid(field.NewPath("metadata", "annotations").Key(verify.TrustedRootAnnotation), field.OmitValueType{},
				"not a Sigstore trusted_root.json: "+err.Error()))
		}
	}
	for i, o := range api.Spec.ValidationFailureActionOverrides {
		sel, err := compileSelector(o.NamespaceSelector)
		if err != nil {
			problems = append(problems, field.Invalid(field.NewPath("spec", "validationFailureActionOverrides").Index(i).Child("namespaceSelector"), field.OmitValueType{}, err.Error()))
			continue
		}
		p.Overrides = append(p.Overrides, Override{Action: o.Action, Namespaces: o.Namespaces, NamespaceSelector: sel})
	}
	paths := make([]string, len(api.Spec.Rules))
	for i := range paths {
		paths[i] = fmt.Sprintf("spec.rules[%d]", i)
	}
	for _, sr := range computeRules(api, paths) {
		if !sr.rule.HasVerifyImages() {
			continue // mutate, validate and generate rules are not vouch's to enforce
		}
		rule, errs := compileRule(p, sr)
		problems = append(problems, errs...)
		if rule != nil {
			p.Rules = append(p.Rules, rule)
		}
	}
	if len(problems) > 0 {
		return nil, warnings, joinFieldErrors(problems)
	}
	return p, warnings, nil
}

func compileRule(p *Policy, sr sourceRule) (*Rule, field.ErrorList) {
	r := sr.rule
	path := field.NewPath(sr.path)
	rule := &Rule{
		Policy:        p,
		Name:          r.Name,
		Path:          sr.path,
		Autogen:       sr.autogen,
		FailureAction: v1.RuleFailureAction(&p.API.Spec, r),
	}
	var errs field.ErrorList
	match, err := compileBlock(&r.MatchResources)
	if err != nil {
		errs = append(errs, field.Invalid(path.Child("match"), field.OmitValueType{}, err.Error()))
	}
	rule.match = match
	if r.ExcludeResources != nil {
		ex, err := compileBlock(r.ExcludeResources)
		if err != nil {
			errs = append(errs, field.Invalid(path.Child("exclude"), field.OmitValueType{}, err.Error()))
		}
		rule.exclude = &ex
	}
	rule.kinds = rule.match.indexKinds()
	if len(r.ImageExtractors) > 0 {
		rule.Extractors = map[string][]extract.Config{}
		for kind, configs := range r.ImageExtractors {
			for i, c := range configs {
				cfg := extract.Config{Path: c.Path, Value: c.Value, Name: c.Name, Key: c.Key, JMESPath: c.JMESPath}
				if err := cfg.Validate(); err != nil {
					errs = append(errs, field.Invalid(path.Child("imageExtractors").Key(kind).Index(i), field.OmitValueType{}, err.Error()))
				}
				rule.Extractors[kind] = append(rule.Extractors[kind], cfg)
			}
		}
	}
	for i := range r.Context {
		cp := path.Child("context").Index(i)
		c, err := compileContextEntry(&r.Context[i], cp.String(), p.Namespace)
		if err != nil {
			errs = append(errs, conditionsError(err, cp))
			continue
		}
		if c.Unsupported != "" && rule.Unsupported == "" {
			rule.Unsupported = "failed to load context: " + c.unsupportedError().Error()
		}
		rule.Context = append(rule.Context, c)
	}
	if r.Preconditions != nil {
		pc, err := conditions.CompilePreconditions(r.Preconditions, path.Child("preconditions").String())
		if err != nil {
			errs = append(errs, conditionsError(err, path.Child("preconditions")))
		}
		rule.Preconditions = pc
	}
	var trustedRoot []byte
	if tr, ok := p.Annotations[verify.TrustedRootAnnotation]; ok {
		trustedRoot = []byte(tr)
	}
	for i := range r.VerifyImages {
		vp := path.Child("verifyImages").Index(i)
		v, verrs := compileVerification(&r.VerifyImages[i], i, vp)
		errs = append(errs, verrs...)
		if v == nil {
			continue
		}
		v.Entry.TrustedRoot = trustedRoot
		errs = append(errs, foreignSecrets(p, v)...)
		if v1HasVariables(&r.VerifyImages[i]) {
			t, err := newEntryTemplate(&r.VerifyImages[i], i, vp)
			if err != nil {
				errs = append(errs, conditionsError(err, vp))
				continue
			}
			t.trustedRoot = trustedRoot
			v.template = t
		}
		rule.Verifications = append(rule.Verifications, v)
	}
	rule.decideDocument()
	return rule, errs
}

func compileVerification(iv *v1.ImageVerification, index int, path *field.Path) (*Verification, field.ErrorList) {
	cp := iv.Convert()
	v := &Verification{
		Index:               index,
		Path:                path.String(),
		Type:                cp.GetType(),
		ImageReferences:     cp.ImageReferences,
		SkipImageReferences: cp.SkipImageReferences,
		Entry: verify.Entry{
			Type:        string(cp.GetType()),
			Repository:  cp.Repository,
			Annotations: cp.Annotations,
			CosignOCI11: cp.CosignOCI11,
			Insecure:    cp.ImageRegistryCredentials != nil && cp.ImageRegistryCredentials.AllowInsecureRegistry,
		},
		MutateDigest:  cp.GetMutateDigest(),
		VerifyDigest:  cp.GetVerifyDigest(),
		Required:      cp.GetRequired(),
		UseCache:      cp.GetUseCache(),
		FailureAction: cp.FailureAction,
		Credentials:   cp.ImageRegistryCredentials,
		Validate:      cp.Validation,
	}
	var errs field.ErrorList
	for i := range cp.Attestors {
		set, serrs := compileAttestorSet(&cp.Attestors[i], fmt.Sprintf(".attestors[%d]", i), path.Child("attestors").Index(i), true)
		errs = append(errs, serrs...)
		v.Attestors = append(v.Attestors, set)
	}
	for i := range cp.Attestations {
		a := &cp.Attestations[i]
		ap := path.Child("attestations").Index(i)
		att := &Attestation{Path: fmt.Sprintf(".attestations[%d]", i), Name: a.Name, Type: a.GetType(), Conditions: a.Conditions}
		for j := range a.Attestors {
			set, serrs := compileAttestorSet(&a.Attestors[j], fmt.Sprintf("%s.attestors[%d]", att.Path, j), ap.Child("attestors").Index(j), false)
			errs = append(errs, serrs...)
			att.Attestors = append(att.Attestors, set)
		}
		if len(att.Attestors) == 0 {
			att.Attestors = defaultAttestors(cp.GetType(), att.Path)
		}
		check, err := conditions.Compile(a.Conditions, ap.Child("conditions").String())
		if err != nil {
			errs = append(errs, conditionsError(err, ap.Child("conditions")))
		}
		att.Check = check
		v.Attestations = append(v.Attestations, att)
	}
	errs = append(errs, compileValidate(cp.Validation, path.Child("validate"), v)...)
	if v.Type == v1.Notary {
		// Kyverno prints Notary entry paths without the kind (spec §5): ".attestors[0].entries[0]".
		for _, set := range v.Attestors {
			dropKind(set)
		}
		for _, att := range v.Attestations {
			for _, set := range att.Attestors {
				dropKind(set)
			}
		}
	}
	v.decideSecrets()
	return v, errs
}

// dropKind removes the kind suffix from the message paths of a set's entries.
func dropKind(set *verify.AttestorSet) {
	for _, a := range set.Entries {
		a.Path = strings.TrimSuffix(a.Path, kindSuffix(a.Kind))
		if a.Nested != nil {
			dropKind(a.Nested)
		}
	}
}

// compileAttestorSet compiles a set; expand splits multi-key PEM entries into one entry per
// key (spec §3.4; Kyverno does this for signature attestors only). msgPath is Kyverno's
// message path of the set, e.g. ".attestors[0]" or ".attestors[0].entries[1].attestor".
func compileAttestorSet(as *v1.AttestorSet, msgPath string, path *field.Path, expand bool) (*verify.AttestorSet, field.ErrorList) {
	set := &verify.AttestorSet{Path: msgPath}
	var errs field.ErrorList
	for i := range as.Entries {
		k := len(set.Entries)
		a, aerrs := compileAttestor(&as.Entries[i], fmt.Sprintf("%s.entries[%d]", msgPath, k), path.Child("entries").Index(i), expand)
		errs = append(errs, aerrs...)
		if a == nil {
			continue
		}
		variants := []*verify.Attestor{a}
		if expand && len(a.Keys) > 1 {
			variants = variants[:0]
			for _, key := range a.Keys {
				cp := *a
				cp.Keys = []verify.PublicKey{key}
				variants = append(variants, &cp)
			}
		}
		for _, va := range variants {
			va.Path = fmt.Sprintf("%s.entries[%d]%s", msgPath, len(set.Entries), kindSuffix(va.Kind))
			set.Entries = append(set.Entries, va)
		}
	}
	set.Required = len(set.Entries)
	if as.Count != nil && *as.Count != 0 {
		set.Required = *as.Count
	}
	return set, errs
}

func kindSuffix(kind string) string {
	if kind == "" {
		return ""
	}
	return "." + kind
}

// compileAttestor compiles one entry; msgPath is its Kyverno message path without the kind.
func compileAttestor(e *v1.Attestor, msgPath string, path *field.Path, expand bool) (*verify.Attestor, field.ErrorList) {
	a := &verify.Attestor{Annotations: e.Annotations, Repository: e.Repository, SignatureAlgorithm: e.GetSignatureAlgorithm()}
	var errs field.ErrorList
	bad := func(p *field.Path, err error) {
		errs = append(errs, field.Invalid(p, field.OmitValueType{}, err.Error()))
	}
	switch {
	case e.Keys != nil:
		a.Kind = "keys"
		kp := path.Child("keys")
		keys, ref, err := splitPublicKeys(e.Keys.PublicKeys)
		switch {
		case e.Keys.PublicKeys == "":
		case err != nil:
			bad(kp.Child("publicKeys"), err)
		}
		a.Keys, a.KeyRef = keys, ref
		// Kyverno's precedence (spec §3.1): publicKeys, else the Secret, else kms.
		refPath := kp.Child("publicKeys")
		switch sec := e.Keys.Secret; {
		case a.KeyRef != "" || len(a.Keys) > 0:
		case sec != nil && (v1.HasVariables(sec.Namespace) || v1.HasVariables(sec.Name)):
			// Named through variables: read once substituted (the entry is a template).
			a.KeyRef = "k8s://" + sec.Namespace + "/" + sec.Name
		case sec != nil:
			a.Secret = &verify.SecretRef{Namespace: sec.Namespace, Name: sec.Name}
			if err := checkSecretRef(*a.Secret); err != nil {
				bad(kp.Child("secret"), err)
			}
		case e.Keys.KMS != "":
			a.KeyRef, refPath = strings.TrimSpace(e.Keys.KMS), kp.Child("kms")
		}
		// cosign's k8s://<namespace>/<name>: the Secret's cosign.pub, read as keys.secret is.
		if rest, ok := strings.CutPrefix(a.KeyRef, "k8s://"); ok && !v1.HasVariables(a.KeyRef) {
			ns, name, _ := strings.Cut(rest, "/")
			a.KeyRef, a.Secret = "", &verify.SecretRef{Namespace: ns, Name: name}
			if err := checkSecretRef(*a.Secret); err != nil {
				bad(refPath, fmt.Errorf("%s: %w", "k8s://"+rest, err))
			}
		}
		a.Rekor, a.CTLog = compileRekor(e.Keys.Rekor, kp, bad), compileCTLog(e.Keys.CTLog, kp, bad)
	case e.Certificates != nil:
		a.Kind = "certificates"
		cp := path.Child("certificates")
		if certs, err := parseCertificates(e.Certificates.Certificate, 1); err != nil {
			bad(cp.Child("cert"), err)
		} else if len(certs) == 1 {
			a.Certificate = certs[0]
		}
		chain, err := parseCertificates(e.Certificates.CertificateChain, maxCertsPerChain)
		if err != nil {
			bad(cp.Child("certChain"), err)
		}
		a.CertificateChain = chain
		a.Rekor, a.CTLog = compileRekor(e.Certificates.Rekor, cp, bad), compileCTLog(e.Certificates.CTLog, cp, bad)
	case e.Keyless != nil:
		a.Kind = "keyless"
		kp := path.Child("keyless")
		k := &verify.Keyless{Issuer: e.Keyless.Issuer, Subject: e.Keyless.Subject, AdditionalExtensions: map[string]string{}}
		var err error
		if k.Roots, err = parseCertificates(e.Keyless.Roots, maxCertsPerChain); err != nil {
			bad(kp.Child("roots"), err)
		}
		k.IssuerRegExp = compileRegexp(e.Keyless.IssuerRegExp, kp.Child("issuerRegExp"), bad)
		k.SubjectRegExp = compileRegexp(e.Keyless.SubjectRegExp, kp.Child("subjectRegExp"), bad)
		for key, val := range e.Keyless.AdditionalExtensions {
			k.AdditionalExtensions[v1.CertificateExtensions[key]] = val
		}
		a.Keyless = k
		a.Rekor, a.CTLog = compileRekor(e.Keyless.Rekor, kp, bad), compileCTLog(e.Keyless.CTLog, kp, bad)
	case e.Attestor != nil:
		a.Kind = "attestor"
		nested, nerrs := compileAttestorSet(e.Attestor, msgPath+".attestor", path.Child("attestor"), expand)
		errs = append(errs, nerrs...)
		a.Nested = nested
	default:
		return nil, errs
	}
	return a, errs
}

func compileRegexp(expr string, path *field.Path, bad func(*field.Path, error)) *regexp.Regexp {
	if expr == "" || v1.HasVariables(expr) {
		return nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		bad(path, err)
	}
	return re
}

func compileRekor(r *v1.Rekor, parent *field.Path, bad func(*field.Path, error)) *verify.Rekor {
	if r == nil {
		return nil
	}
	out := &verify.Rekor{URL: r.URL, IgnoreTlog: r.IgnoreTlog}
	key, err := parseSingleKey(r.PubKey)
	if err != nil {
		bad(parent.Child("rekor", "pubkey"), err)
	}
	out.PubKey = key
	return out
}

func compileCTLog(c *v1.CTLog, parent *field.Path, bad func(*field.Path, error)) *verify.CTLog {
	if c == nil {
		return nil
	}
	out := &verify.CTLog{IgnoreSCT: c.IgnoreSCT}
	key, err := parseSingleKey(c.PubKey)
	if err != nil {
		bad(parent.Child("ctlog", "pubkey"), err)
	}
	out.PubKey = key
	chain, err := parseCertificates(c.TSACertChain, maxTSAChain)
	if err != nil {
		bad(parent.Child("ctlog", "tsaCertChain"), err)
	}
	out.TSACertChain = chain
	return out
}

// v1HasVariables reports whether an entry uses Kyverno variables outside the places that are
// evaluated per statement (attestation conditions and validate.deny).
func v1HasVariables(iv *v1.ImageVerification) bool {
	cp := *iv
	cp.Attestations = nil
	for _, a := range iv.Attestations {
		a.Conditions = nil
		cp.Attestations = append(cp.Attestations, a)
	}
	cp.Validation = nil
	return jsonHasVariables(cp)
}

func jsonHasVariables(v any) bool {
	b, err := json.Marshal(v)
	return err == nil && v1.HasVariables(string(b))
}

// joinFieldErrors joins the errors, dropping repeats (autogen rules repeat their source
// rule's problems at the same path).
func joinFieldErrors(list field.ErrorList) error {
	var errs []error
	seen := map[string]bool{}
	for _, e := range list {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}
