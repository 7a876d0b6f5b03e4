package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
)

// evaluation is the state of one Evaluate call. Each distinct image is resolved to a digest
// once; that digest is what is verified, pinned and recorded.
type evaluation struct {
	engine   *Engine
	subjects map[string]*subjectState
	meta     patch.Metadata
	pins     []patch.Operation
	pinned   map[string]string // JSON pointer -> digest pinned there
}

type subjectState struct {
	subject verify.Subject
	err     error
}

// imageState tracks one distinct image of a rule through both phases.
type imageState struct {
	ref      imageref.Ref
	written  []string
	pointers []string
	digest   string // resolved digest, once known
	pinned   bool   // the tag was pinned to digest in this evaluation
	response Status // worst mutation-phase response: "", pass, skip, fail, error
	message  string
	record   string // verification record for the annotations and required: "", pass, skip, fail
	verdict  Status // final status
	vmessage string
	vname    string // name in the validation phase (after every pin of the evaluation)
}

// name is the image's name in the rule's final messages.
func (im *imageState) name() string {
	if im.vname != "" {
		return im.vname
	}
	return im.ref.String()
}

// mutatedName is the image's canonical name in the object after mutation: the digest form
// when some rule of the evaluation pinned it (spec §2.9 runs on the mutated object).
func (ev *evaluation) mutatedName(im *imageState) string {
	for _, p := range im.pointers {
		if d := ev.pinned[p]; d != "" {
			return im.ref.Repository() + "@" + d
		}
	}
	return im.ref.String()
}

// key is the image's name in the annotations: the digest form once pinned (spec §2.6 step 4).
func (im *imageState) key() string {
	if im.pinned {
		return im.ref.Repository() + "@" + im.digest
	}
	return im.ref.String()
}

// respond keeps the worst mutation-phase response of an image across entries.
func (im *imageState) respond(s Status, msg string) {
	if im.response == "" || severity[s] > severity[im.response] {
		im.response, im.message = s, msg
	}
}

// mark keeps the worst verification record of an image across entries.
func (im *imageState) mark(s Status) {
	rec := map[Status]string{Pass: patch.Pass, Skip: patch.Skip, Fail: patch.Fail, Error: patch.Fail}[s]
	rank := map[string]int{"": 0, patch.Pass: 1, patch.Skip: 2, patch.Fail: 3}
	if rank[rec] > rank[im.record] {
		im.record = rec
	}
}

// mutateImage is the mutation phase of one entry for one image (spec §2.6).
func (ev *evaluation) mutateImage(ctx context.Context, rule *policy.Rule, v *policy.Verification, im *imageState, out *ruleEval) {
	s := im.ref.String()
	if v.NeedsVerification() {
		skipMsg := fmt.Sprintf("skipping image reference image %s, policy %s ruleName %s", s, rule.Policy.Name, rule.Name)
		switch {
		case !imageref.MatchAny(v.ImageReferences, s):
			// Not this entry's image. Kyverno records "skip" here, which then satisfies
			// another entry's required; vouch records nothing (docs/COMPATIBILITY.md).
		case imageref.MatchAny(v.SkipImageReferences, s):
			ev.meta.RecordFlat(s, patch.Skip) // Kyverno records the skip before pinning too
			im.respond(Skip, skipMsg)
			im.mark(Skip)
			out.warnings = append(out.warnings, warning(rule, skipMsg))
		default:
			status, msg := ev.verifyImage(ctx, v, im)
			im.respond(status, msg)
			im.mark(status)
		}
	}
	if v.MutateDigest && !im.ref.HasDigest() && !im.pinned {
		ev.pin(ctx, v, im)
	}
}

// verifyImage checks the entry's attestor sets for the image (spec §2.6 verifyImage, §5).
func (ev *evaluation) verifyImage(ctx context.Context, v *policy.Verification, im *imageState) (Status, string) {
	s := im.ref.String()
	failed := func(err error) string { return fmt.Sprintf("failed to verify image %s: %v", s, err) }
	if len(ev.engine.verifiers) == 0 {
		return Error, ErrNoVerifier.Error()
	}
	verifier := ev.engine.verifiers[v.Entry.Type]
	if verifier == nil {
		return Error, failed(fmt.Errorf("verification type %s is not supported yet", v.Entry.Type))
	}
	if len(v.Attestations) > 0 {
		return Error, failed(errors.New("attestations are not supported yet"))
	}
	subject, err := ev.subject(ctx, im.ref, v.Entry.Insecure)
	if err != nil {
		if verify.Undecided(err) {
			return Error, failed(err)
		}
		return Fail, failed(err)
	}
	im.digest = subject.Digest
	res, err := verify.VerifyAttestorSets(ctx, verifier, subject, &v.Entry, v.Attestors)
	switch {
	case err != nil:
		return Error, failed(err)
	case !res.Passed:
		return Fail, failed(res.Failure)
	case res.Digest != "" && res.Digest != subject.Digest:
		// The claim verifier already binds signatures to the digest; never pin another one.
		return Fail, failed(fmt.Errorf("signature names digest %s, the image resolved to %s", res.Digest, subject.Digest))
	}
	return Pass, "verified image signatures for " + s
}

// pin replaces the tag with <registry>/<path>:<tag>@<digest> at every pointer of the image,
// using the digest the image resolved to (spec §2.7).
func (ev *evaluation) pin(ctx context.Context, v *policy.Verification, im *imageState) {
	subject, err := ev.subject(ctx, im.ref, v.Entry.Insecure)
	if err != nil {
		if im.response != Error && im.response != Fail {
			im.respond(Error, fmt.Sprintf("failed to update digest: failed to fetch image reference: %s, error: %v", im.ref.String(), err))
		}
		return
	}
	im.digest, im.pinned = subject.Digest, true
	pinned := im.ref.WithTag() + "@" + subject.Digest
	for _, p := range im.pointers {
		if ev.pinned[p] == "" {
			ev.pinned[p] = subject.Digest
			ev.pins = append(ev.pins, patch.PinDigest(p, pinned))
		}
	}
	if im.response == "" {
		im.respond(Pass, "mutated image digest")
	}
}

// subject returns the image with the digest it resolves to, resolving each distinct image
// (and insecure setting) once per evaluation. An image given by digest is not resolved.
func (ev *evaluation) subject(ctx context.Context, ref imageref.Ref, insecure bool) (verify.Subject, error) {
	key := ref.String()
	if insecure {
		key += " (insecure)"
	}
	if st, ok := ev.subjects[key]; ok {
		return st.subject, st.err
	}
	st := &subjectState{subject: verify.Subject{Ref: ref, Digest: ref.Digest, Memo: &verify.Memo{}}}
	if ref.Digest == "" {
		switch {
		case ev.engine.registry == nil:
			st.err = verify.Errorf(verify.CodeUnsupported, ErrNoVerifier.Error(), nil)
		default:
			digest, err := ev.engine.registry.Resolve(ctx, ref, insecure)
			if err != nil {
				st.err = resolveError(err)
			}
			st.subject.Digest = digest
		}
	}
	ev.subjects[key] = st
	return st.subject, st.err
}

func resolveError(err error) error {
	var verr *verify.Error
	if errors.As(err, &verr) {
		return err
	}
	code := string(registry.Classify(err))
	if code == string(registry.CodeNotFound) {
		return verify.FromRegistry(code, "image tag not found", err)
	}
	return verify.FromRegistry(code, "", err) // the registry's error already names the reference
}
