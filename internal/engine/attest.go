package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vouchproject/vouch/internal/conditions"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/verify"
)

// Attestations and validate.deny (spec §3.12, §3.13).
//
// What is verified — and cached, by digest — is only what the attestors establish: for every
// attestation, attestor set and entry, the in-toto statements whose signature verified, or
// why there are none (verify.AttestationEvidence). Conditions, the names of the attestations
// and validate.deny are evaluated against that evidence on every evaluation, cache hit or
// not (landscape §4.4 group 8): a cached verification never stands in for a policy decision,
// and conditions read the request being admitted.

// attestationsOf returns the entry's attestations as the verification flow takes them.
func attestationsOf(v *policy.Verification) []*verify.Attestation {
	out := make([]*verify.Attestation, len(v.Attestations))
	for i, a := range v.Attestations {
		out[i] = &verify.Attestation{Path: a.Path, Type: a.Type, Attestors: a.Attestors}
	}
	return out
}

// fetchAttestations adds what the entry's attestors establish about the subject's
// attestations to a result whose signatures passed (spec §3.12.1). How long the result may be
// cached follows its worst attestor: when every attestor verified statements it is a pass
// (the cache's TTL); when one found none it is kept as a failure (the cache's shorter failure
// TTL), so that an attestation pushed after a denial is seen soon; when one could not decide,
// or the verification ran out of time, it is not kept at all. Either way the evidence is what
// the evaluation decides on (decideAttestations), never Passed.
func fetchAttestations(ctx context.Context, av verify.AttestationVerifier, subject verify.Subject, v *policy.Verification, res verify.Result) verify.Result {
	rec := &recordingVerifier{v: av}
	res.Attestations = verify.FetchAttestations(ctx, rec, subject, &v.Entry, attestationsOf(v))
	// The statements hold no longer than the certificates of their signatures checked at the
	// time of verification, and the result no longer than its statements.
	res.ValidUntil = verify.Earliest(res.ValidUntil, res.Attestations.ValidUntil())
	problems := rec.errs
	if ctx.Err() != nil {
		problems = append(problems, verify.Errorf(verify.CodeTimeout, "fetching attestations", context.Cause(ctx)))
	}
	if len(problems) > 0 {
		res.Passed, res.Failure = false, errors.Join(problems...)
	}
	return res
}

// recordingVerifier remembers the errors of the attestors it asked.
type recordingVerifier struct {
	v    verify.AttestationVerifier
	mu   sync.Mutex
	errs []error
}

func (r *recordingVerifier) Attestations(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, typ string) ([]verify.Statement, time.Time, error) {
	sts, until, err := r.v.Attestations(ctx, s, e, a, typ)
	if err != nil {
		r.mu.Lock()
		r.errs = append(r.errs, fmt.Errorf("%s: %w", a.Path, err))
		r.mu.Unlock()
	}
	return sts, until, err
}

// decideAttestations decides the entry's attestations for this evaluation (spec §3.12): for
// each attestation, every attestor set needs its count of entries whose statements of the
// type exist and all satisfy the conditions; then validate.deny. The image is named by its
// digest in these messages, as Kyverno names it once the attestations are fetched.
func (ev *evaluation) decideAttestations(rule *policy.Rule, v *policy.Verification, ref imageref.Ref, subject verify.Subject, evidence *verify.AttestationEvidence, undecided func(error) outcome) outcome {
	s := subject.DigestRef()
	base := ev.imageContext(rule, ref, subject.Digest)
	names := map[string]any{}
	res, err := evidence.Evaluate(s, func(i int, st verify.Statement) (bool, string, error) {
		a := v.Attestations[i]
		if len(a.Conditions) > 0 {
			doc, err := conditions.AttestationDocument(base, st)
			if err != nil {
				return false, "", err
			}
			r, err := a.Check.Evaluate(doc)
			if err != nil {
				return false, "", err
			}
			if !r.Pass {
				return false, r.Reason(), nil
			}
		}
		// The name holds the predicate of the first statement of the type that satisfied
		// the attestation's conditions: verified data only, never another type's.
		if _, done := names[a.Name]; a.Name != "" && !done {
			names[a.Name] = st["predicate"]
		}
		return true, "", nil
	})
	switch {
	case err != nil:
		return undecided(err)
	case !res.Passed:
		var ae *verify.AttestationError
		if errors.As(res.Failure, &ae) {
			// Kyverno's attestation failures are not prefixed with "failed to verify image".
			return outcome{status: Fail, message: ae.Error(), digest: subject.Digest}
		}
		return outcome{status: Fail, message: fmt.Sprintf("failed to verify image %s: %v", s, res.Failure), digest: subject.Digest}
	}
	pass := outcome{status: Pass, message: "verified image attestations for " + s, digest: subject.Digest}
	return ev.decideDeny(rule, v, base, names, pass)
}

// decideDeny evaluates the entry's validate.deny (spec §3.13) once its verification passed:
// the document is the admission context with each attestation's verified predicate under its
// name. Deny true fails with validate.message and the messages of the conditions; a deny that
// cannot be evaluated fails too (Kyverno), never passes.
func (ev *evaluation) decideDeny(rule *policy.Rule, v *policy.Verification, base, names map[string]any, pass outcome) outcome {
	if v.Deny == nil {
		return pass
	}
	doc := make(map[string]any, len(base)+len(names))
	for k, val := range base {
		doc[k] = val
	}
	for k, val := range names {
		doc[k] = val // the policy's names win over context entries of the same name, as in Kyverno
	}
	r, err := v.Deny.Evaluate(doc)
	switch {
	case err != nil:
		return outcome{status: Fail, message: "validation in verifyImages failed: failed to check deny conditions: " + err.Error(), digest: pass.digest}
	case r.Pass:
		return outcome{status: Fail, message: "validation in verifyImages failed: " + denyMessage(v, doc, r.Message), digest: pass.digest}
	}
	return outcome{status: Pass, message: fmt.Sprintf("verifyImages validation is passed in %s rule", rule.Name), digest: pass.digest}
}

// denyMessage is Kyverno's getDenyMessage: validate.message and the conditions' messages
// joined by "; ", variables substituted; when substitution fails, the conditions' messages.
func denyMessage(v *policy.Verification, doc map[string]any, condMsg string) string {
	var written string
	if v.Validate != nil {
		written = v.Validate.Message
	}
	if written == "" && condMsg == "" {
		return "validation error: imageVerify  failed" // sic: Kyverno formats the empty message in
	}
	var parts []string
	if written != "" {
		out, err := v.DenyMessage.Render(doc)
		if err != nil {
			return condMsg
		}
		s, ok := out.(string)
		if !ok {
			return "the produced message didn't resolve to a string, check your policy definition."
		}
		parts = append(parts, s)
	}
	if condMsg != "" {
		// Conditions' messages are policy text too: Kyverno substitutes them with the message.
		if t, err := conditions.CompileTemplate(condMsg, "message"); err == nil {
			if s, err := t.RenderString(doc); err == nil {
				condMsg = s
			}
		}
		parts = append(parts, condMsg)
	}
	return strings.Join(parts, "; ")
}

// requestContext is the admission context of conditions and messages (Kyverno's `request`):
// the object, the old object, the operation, the object's namespace, name and kind, and the
// user when there is one.
func requestContext(req Request, m *policy.Request) map[string]any {
	r := map[string]any{
		"operation": string(m.Operation),
		"object":    req.Object,
		"oldObject": nil,
		"namespace": m.Namespace,
		"name":      m.Name,
		"kind":      map[string]any{"group": m.Group, "version": m.Version, "kind": m.Kind},
	}
	if req.OldObject != nil {
		r["oldObject"] = req.OldObject
	}
	if req.User != nil {
		groups := make([]any, len(req.User.Groups))
		for i, g := range req.User.Groups {
			groups[i] = g
		}
		r["userInfo"] = map[string]any{"username": req.User.Username, "groups": groups}
	}
	for k, v := range req.Admission {
		if _, set := r[k]; !set {
			r[k] = v
		}
	}
	return map[string]any{"request": r}
}

// imageContext is the context of one image's conditions: the rule's document and `image` (Kyverno's
// ImageInfo: reference, referenceWithTag, registry, path, name, tag, digest — the digest being
// the one verified).
func (ev *evaluation) imageContext(rule *policy.Rule, ref imageref.Ref, digest string) map[string]any {
	doc := ev.ruleDocument(rule)
	out := make(map[string]any, len(doc)+1)
	for k, val := range doc {
		out[k] = val
	}
	withDigest := ref
	withDigest.Digest = digest
	out["image"] = map[string]any{
		"reference":        withDigest.String(),
		"referenceWithTag": ref.WithTag(),
		"registry":         ref.Registry,
		"path":             ref.Path,
		"name":             ref.Name,
		"tag":              ref.Tag,
		"digest":           digest,
	}
	return out
}
