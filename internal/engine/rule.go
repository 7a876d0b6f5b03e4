package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/vouchproject/vouch/internal/extract"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/policy"
)

type ruleEval struct {
	RuleResult
	warnings []string
}

// ruleState is one applicable rule between its two phases.
type ruleState struct {
	rule   *policy.Rule
	out    ruleEval
	images []*imageState
	done   bool // decided in the mutation phase (extraction error, unsupported rule)
}

// applied reports whether the mutation phase produced a pass or fail response, which ends
// a policy with applyRules: One (spec §2.3).
func (st *ruleState) applied() bool {
	if st.done {
		return false
	}
	for _, im := range st.images {
		if im.response == Pass || im.response == Fail {
			return true
		}
	}
	return false
}

// mutateRule runs the mutation phase of one rule. It returns nil when the rule does not apply:
// none of the object's images is referenced by its entries.
func (ev *evaluation) mutateRule(ctx context.Context, rule *policy.Rule, req *policy.Request, obj map[string]any) *ruleState {
	st := &ruleState{rule: rule, out: ruleEval{RuleResult: RuleResult{Policy: rule.Policy, Rule: rule}}}
	found, err := extract.Images(obj, req.Kind, rule.Extractors)
	if err != nil {
		st.out.Status, st.out.Message, st.done = Error, "failed to extract images: "+err.Error(), true
		return st
	}
	st.images = relevantImages(rule, found)
	if len(st.images) == 0 {
		return nil // no image this rule cares about: not applicable (spec §2.3)
	}
	ev.usePullSecrets(rule, found, st.images[0].ref)
	if rule.Unsupported != "" {
		for _, im := range st.images {
			im.verdict, im.vmessage = Error, rule.Unsupported
		}
		st.out, st.done = finish(st.out, rule, req, st.images), true
		return st
	}
	verifications := rule.Verifications
	if rule.BuildsDocument() {
		rc := ev.prepareRule(ctx, rule, found)
		if ev.docs == nil {
			ev.docs = map[*policy.Rule]map[string]any{}
		}
		ev.docs[rule] = rc.doc
		switch rc.status {
		case Skip:
			for _, im := range st.images {
				im.verdict, im.vmessage = Skip, rc.message
			}
			st.out, st.done = finish(st.out, rule, req, st.images), true
			st.out.Message = rc.message
			return st
		case Error:
			for _, im := range st.images {
				im.verdict, im.vmessage = Error, rc.message
			}
			st.out, st.done = finish(st.out, rule, req, st.images), true
			return st
		case Fail:
			failImages(st.images, rc.perImage)
			st.out, st.done = finish(st.out, rule, req, st.images), true
			return st
		}
		verifications = rc.verifications
	}
	for _, v := range verifications {
		outcomes := ev.verifyAll(ctx, rule, v, st.images)
		for i, im := range st.images {
			ev.applyEntry(ctx, rule, v, im, outcomes[i], &st.out)
		}
	}
	for _, im := range st.images {
		if im.record != "" {
			ev.meta.Record(rule.Policy.ScopeKey(), rule.Name, im.key(), im.record)
		}
	}
	return st
}

// validateRule runs the validation phase of a rule and aggregates its result. It reports
// false when entries that pin nothing and check nothing yield no response.
func (ev *evaluation) validateRule(st *ruleState, req *policy.Request) (ruleEval, bool) {
	if st.done {
		return st.out, true
	}
	checked := validatePhase(st.rule, st.images, ev.mutatedName)
	if !checked && !anyResponse(st.images) {
		return st.out, false
	}
	return finish(st.out, st.rule, req, st.images), true
}

// verifyAll verifies the entry's images in parallel. Only the verifications themselves run on
// the engine's bounded worker pool (see verifyImage): resolving a tag, a cache hit and waiting
// for another request's verification of the same digest take no worker.
func (ev *evaluation) verifyAll(ctx context.Context, rule *policy.Rule, v *policy.Verification, images []*imageState) []outcome {
	outcomes := make([]outcome, len(images))
	var wg sync.WaitGroup
	for i, im := range images {
		if !needsCheck(v, im) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				// A verifier (or a library under it, reading registry data) that panics makes
				// this image "could not verify", never a crash of the process: the admission
				// handler's recover does not reach this goroutine.
				if p := recover(); p != nil {
					outcomes[i] = outcome{status: Error, message: fmt.Sprintf("could not verify image %s: internal error: %v", im.ref.String(), p)}
				}
			}()
			outcomes[i] = ev.verifyImage(ctx, rule, v, im.ref)
		}()
	}
	wg.Wait()
	return outcomes
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
		st.pointers = append(st.pointers, img.Pointer)
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

func anyResponse(images []*imageState) bool {
	for _, im := range images {
		if im.response != "" {
			return true
		}
	}
	return false
}

// validatePhase applies required and verifyDigest (spec §2.9) from this evaluation's own
// records, never from annotations the object arrived with. Images whose mutation phase
// already failed or errored keep that cause. It reports whether any check ran.
func validatePhase(rule *policy.Rule, images []*imageState, mutatedName func(*imageState) string) bool {
	checked := false
	for _, im := range images {
		im.verdict, im.vmessage = im.response, im.message
		im.vname = mutatedName(im)
		if im.response == Error || im.response == Fail {
			continue
		}
		s := im.vname
		for _, v := range rule.Verifications {
			if !imageref.MatchAny(v.ImageReferences, im.ref.String()) {
				continue
			}
			checked = checked || v.VerifyDigest || v.Required
			if v.VerifyDigest && !strings.Contains(s, "@") {
				im.verdict, im.vmessage = Fail, "missing digest for "+s
				break
			}
			if v.Required && im.record != patch.Pass && im.record != patch.Skip {
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

// finish aggregates per-image outcomes into the rule result. A failure under an Audit action
// becomes warn image by image, before aggregation, so that it never hides an error.
func finish(out ruleEval, rule *policy.Rule, req *policy.Request, images []*imageState) ruleEval {
	audit := !EffectiveAction(rule, req.Namespace, req.NamespaceLabels).Enforce()
	worst := Skip
	var msgs []string
	for _, im := range images {
		out.Images = append(out.Images, ImageResult{Ref: im.ref, Written: im.written, Digest: im.digest, Status: im.verdict, Message: im.vmessage})
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
	var skipped []string
	for _, im := range images {
		if im.verdict == Skip {
			skipped = append(skipped, im.name())
		}
	}
	switch {
	case worst == Pass && len(skipped) > 0:
		msgs = []string{"image verified, skipped images: " + strings.Join(skipped, " ")}
	case worst == Skip:
		msgs = []string{"image skipped, skipped images: " + strings.Join(skipped, " ")}
	}
	sort.Strings(msgs)
	out.Status, out.Message = worst, strings.Join(msgs, "; ")
	return out
}
