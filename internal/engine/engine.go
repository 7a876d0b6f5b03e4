package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/extract"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/policy"
)

// Status is the outcome of a rule or of one image.
type Status string

// Outcomes, as Kyverno names them.
const (
	Pass  Status = "pass"
	Fail  Status = "fail"
	Warn  Status = "warn"
	Error Status = "error"
	Skip  Status = "skip"
)

// severity orders statuses for aggregation: the worst one decides a rule.
var severity = map[Status]int{Skip: 0, Pass: 1, Warn: 2, Error: 3, Fail: 4}

// ErrNoVerifier is the cause reported for images that need a registry or a signature check
// while the engine has no verifier configured.
var ErrNoVerifier = errors.New("no verifier configured")

// Options configures an Engine.
type Options struct {
	Policies *policy.Set
}

// Engine evaluates compiled policies. It holds no per-request state and is safe for
// concurrent use.
type Engine struct {
	policies *policy.Set
}

// New returns an engine for the given options.
func New(opts Options) (*Engine, error) {
	if opts.Policies == nil {
		return nil, errors.New("engine: no policies")
	}
	return &Engine{policies: opts.Policies}, nil
}

// Request is one object to evaluate.
type Request struct {
	Object          map[string]any
	OldObject       map[string]any
	Operation       v1.AdmissionOperation // CREATE when empty
	NamespaceLabels map[string]string
	User            *policy.UserInfo
}

// Response is the outcome of one evaluation.
type Response struct {
	Object   map[string]any // the object after mutation
	Results  []RuleResult   // one per applicable (policy, rule)
	Warnings []string       // admission warnings, "policy <p>.<rule>: <message>"
}

// RuleResult is the outcome of one rule for one object.
type RuleResult struct {
	Policy  *policy.Policy
	Rule    *policy.Rule
	Status  Status
	Message string
	Images  []ImageResult // in order of first appearance in the object
}

// ImageResult is the outcome for one distinct image (by canonical reference) in a rule.
type ImageResult struct {
	Ref     imageref.Ref
	Written []string // the strings as written in the object (one per distinct spelling)
	Status  Status   // pass, fail, error or skip
	Message string
}

// Evaluate runs the mutation phase and then the validation phase of every applicable rule, as
// `kyverno apply` does. The object in the request is not modified.
func (e *Engine) Evaluate(ctx context.Context, req Request) (*Response, error) {
	if req.Object == nil {
		return nil, errors.New("engine: no object")
	}
	op := req.Operation
	if op == "" {
		op = v1.Create
	}
	resp := &Response{Object: req.Object}
	if op == v1.Delete {
		// Nothing is admitted on DELETE: Kyverno verifies no image and checks no digest then.
		return resp, nil
	}
	mreq := policy.RequestFor(req.Object, op)
	mreq.NamespaceLabels, mreq.User = req.NamespaceLabels, req.User
	stopped := map[*policy.Policy]bool{}
	for _, rule := range e.policies.Match(&mreq) {
		if stopped[rule.Policy] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, applied := e.evaluateRule(ctx, rule, &mreq, req.Object)
		if !applied {
			continue
		}
		resp.Results = append(resp.Results, res.RuleResult)
		resp.Warnings = append(resp.Warnings, res.warnings...)
		if rule.Policy.EmitWarning && res.Status != Skip {
			resp.Warnings = append(resp.Warnings, warning(rule, res.Message))
		}
		if rule.Policy.ApplyOne && (res.Status == Pass || res.Status == Fail || res.Status == Warn) {
			stopped[rule.Policy] = true
		}
	}
	return resp, nil
}

type ruleEval struct {
	RuleResult
	warnings []string
}

// imageState tracks one distinct image through both phases of a rule.
type imageState struct {
	ref      imageref.Ref
	written  []string
	status   Status // mutation-phase record: "" (none), pass, skip, fail, error
	message  string
	verdict  Status // final per-image status
	vmessage string
}

func (e *Engine) evaluateRule(ctx context.Context, rule *policy.Rule, req *policy.Request, obj map[string]any) (ruleEval, bool) {
	out := ruleEval{RuleResult: RuleResult{Policy: rule.Policy, Rule: rule}}
	found, err := extract.Images(obj, req.Kind, rule.Extractors)
	if err != nil {
		out.Status, out.Message = Error, "failed to extract images: "+err.Error()
		return out, true
	}
	images := relevantImages(rule, found)
	if len(images) == 0 {
		return out, false // no image this rule cares about: not applicable (spec §2.3)
	}
	if rule.Unsupported != "" {
		for _, im := range images {
			im.verdict, im.vmessage = Error, rule.Unsupported
		}
		return e.finish(out, rule, req, images), true
	}
	for _, v := range rule.Verifications {
		for _, im := range images {
			e.mutateImage(ctx, rule, v, im, &out)
		}
	}
	checked := e.validatePhase(rule, images)
	if !checked && !anyRecord(images) {
		return out, false // entries that only pin nothing and check nothing yield no response
	}
	return e.finish(out, rule, req, images), true
}

// relevantImages groups the extracted images that match some entry's imageReferences by
// canonical reference, keeping first-appearance order.
func relevantImages(rule *policy.Rule, found []extract.Image) []*imageState {
	var out []*imageState
	byRef := map[string]*imageState{}
	for _, img := range found {
		s := img.Ref.String()
		matched := false
		for _, v := range rule.Verifications {
			if imageref.MatchAny(v.ImageReferences, s) {
				matched = true
				break
			}
		}
		if !matched {
			continue
		}
		st, ok := byRef[s]
		if !ok {
			st = &imageState{ref: img.Ref}
			byRef[s] = st
			out = append(out, st)
		}
		if !contains(st.written, img.Written) {
			st.written = append(st.written, img.Written)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mutateImage is the mutation phase of one entry for one image (spec §2.6).
func (e *Engine) mutateImage(ctx context.Context, rule *policy.Rule, v *policy.Verification, im *imageState, out *ruleEval) {
	s := im.ref.String()
	if v.NeedsVerification() {
		skipMsg := fmt.Sprintf("skipping image reference image %s, policy %s ruleName %s", s, rule.Policy.Name, rule.Name)
		switch {
		case !imageref.MatchAny(v.ImageReferences, s):
			// Not this entry's image. Kyverno records "skip" here, which then satisfies
			// another entry's required; vouch records nothing (docs/COMPATIBILITY.md).
		case imageref.MatchAny(v.SkipImageReferences, s):
			im.record(Skip, skipMsg)
			out.warnings = append(out.warnings, warning(rule, skipMsg))
		default:
			im.record(Error, ErrNoVerifier.Error())
		}
	}
	if v.MutateDigest && !im.ref.HasDigest() && im.status != Error && im.status != Fail {
		// Pinning needs the digest from the registry.
		im.record(Error, ErrNoVerifier.Error())
	}
}

// record keeps the worst mutation-phase outcome of an image across entries.
func (im *imageState) record(s Status, msg string) {
	if im.status == "" || severity[s] > severity[im.status] {
		im.status, im.message = s, msg
	}
}

func anyRecord(images []*imageState) bool {
	for _, im := range images {
		if im.status != "" {
			return true
		}
	}
	return false
}

// validatePhase applies required and verifyDigest (spec §2.9) from this evaluation's own
// records. Images whose mutation phase already failed or errored keep that cause. It reports
// whether any check ran.
func (e *Engine) validatePhase(rule *policy.Rule, images []*imageState) bool {
	checked := false
	for _, im := range images {
		im.verdict, im.vmessage = im.status, im.message
		if im.status == Error || im.status == Fail {
			continue
		}
		s := im.ref.String()
		for _, v := range rule.Verifications {
			if !imageref.MatchAny(v.ImageReferences, s) {
				continue
			}
			checked = checked || v.VerifyDigest || v.Required
			if v.VerifyDigest && !im.ref.HasDigest() {
				im.verdict, im.vmessage = Fail, "missing digest for "+s
				break
			}
			if v.Required && im.status != Pass && im.status != Skip {
				im.verdict, im.vmessage = Fail, "unverified image "+s
				break
			}
			if im.verdict == "" {
				im.verdict = Pass
				if v.Required || v.VerifyDigest {
					im.vmessage = "image verified"
				}
			}
		}
		if im.verdict == "" {
			im.verdict, im.vmessage = Pass, "image verified"
		}
	}
	return checked
}

// warning formats an admission warning as Kyverno does (spec §8.3), with the bare policy name.
func warning(rule *policy.Rule, msg string) string {
	return fmt.Sprintf("policy %s.%s: %s", rule.Policy.Name, rule.Name, msg)
}

// finish aggregates per-image outcomes into the rule result. A failure under an Audit action
// becomes warn image by image, before aggregation, so that it never hides an error.
func (e *Engine) finish(out ruleEval, rule *policy.Rule, req *policy.Request, images []*imageState) ruleEval {
	audit := !EffectiveAction(rule, req.Namespace, req.NamespaceLabels).Enforce()
	worst := Skip
	var msgs []string
	for _, im := range images {
		out.Images = append(out.Images, ImageResult{Ref: im.ref, Written: im.written, Status: im.verdict, Message: im.vmessage})
		verdict := im.verdict
		if verdict == Fail && audit {
			verdict = Warn
		}
		switch {
		case severity[verdict] > severity[worst]:
			worst, msgs = verdict, nil
			fallthrough
		case verdict == worst:
			if m := im.vmessage; m != "" && !contains(msgs, m) {
				msgs = append(msgs, m)
			}
		}
	}
	if worst == Pass {
		var skipped []string
		for _, im := range images {
			if im.verdict == Skip {
				skipped = append(skipped, im.ref.String())
			}
		}
		if len(skipped) > 0 {
			msgs = []string{"image verified, skipped images: " + strings.Join(skipped, " ")}
		}
	} else if worst == Skip {
		var skipped []string
		for _, im := range images {
			skipped = append(skipped, im.ref.String())
		}
		msgs = []string{"image skipped, skipped images: " + strings.Join(skipped, " ")}
	}
	sort.Strings(msgs)
	out.Status, out.Message = worst, strings.Join(msgs, "; ")
	return out
}

// EffectiveAction is the failure action of a rule for a namespace (spec §2.12): an entry-level
// failureAction wins; otherwise validationFailureActionOverrides, then the policy's action.
func EffectiveAction(rule *policy.Rule, namespace string, nsLabels map[string]string) v1.ValidationFailureAction {
	for _, v := range rule.Verifications {
		if v.FailureAction != nil {
			return rule.FailureAction
		}
	}
	for _, o := range rule.Policy.Overrides {
		if o.Matches(namespace, nsLabels) {
			return o.Action
		}
	}
	return rule.Policy.FailureAction
}
