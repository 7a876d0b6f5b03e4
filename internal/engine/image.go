package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/extract"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
)

// evaluation is the state of one Evaluate call. Each distinct image is resolved to a digest
// once; that digest is what is verified, pinned and recorded.
type evaluation struct {
	mu       sync.Mutex // guards subjects
	engine   *Engine
	subjects map[string]*subjectState
	meta     patch.Metadata
	pins     []patch.Operation
	pinned   map[string]string // JSON pointer -> digest pinned there
	request  map[string]any    // the admission context of conditions (requestContext), read-only
	user     *policy.UserInfo
	// docs holds the context document of each rule that built one (prepareRule), written
	// before the rule's verifications start and read-only after.
	docs map[*policy.Rule]map[string]any

	// Registry credentials (spec §7), guarded by mu.
	namespace   string                                // the object's namespace
	pullSecrets map[*policy.Rule][]string             // the rule's first image's imagePullSecrets
	access      map[*policy.Verification]*accessState // each entry's credential scope
}

// subjectState is one image's resolution. The digest, once resolved with any entry's
// credentials, is THE digest of the evaluation (verified, pinned, recorded); a failure is kept
// per credential scope, so that one entry's missing credentials do not fail another's. The
// memo of signature fetches is per scope too: what one entry's credentials read, or failed to
// read, is not reused under another's.
type subjectState struct {
	mu       sync.Mutex
	subject  verify.Subject
	resolved bool
	failures map[string]error        // by registry.Scope.Key
	memos    map[string]*verify.Memo // by registry.Scope.Key
}

// accessState is one entry's credential scope in an evaluation, asked for once.
type accessState struct {
	once  sync.Once
	scope registry.Scope
	err   error
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

// needsCheck reports whether the entry verifies the image (spec §2.6 verifyImage steps 1-4).
func needsCheck(v *policy.Verification, im *imageState) bool {
	s := im.ref.String()
	return v.NeedsVerification() && imageref.MatchAny(v.ImageReferences, s) && !imageref.MatchAny(v.SkipImageReferences, s)
}

// applyEntry records the outcome of one entry for one image (its verification outcome, when
// it was checked) and pins the digest (spec §2.6).
func (ev *evaluation) applyEntry(ctx context.Context, rule *policy.Rule, v *policy.Verification, im *imageState, o outcome, out *ruleEval) {
	s := im.ref.String()
	if v.NeedsVerification() {
		switch {
		case !imageref.MatchAny(v.ImageReferences, s):
			// Not this entry's image. Kyverno records "skip" here, which then satisfies
			// another entry's required; vouch records nothing (docs/COMPATIBILITY.md).
		case imageref.MatchAny(v.SkipImageReferences, s):
			skipMsg := fmt.Sprintf("skipping image reference image %s, policy %s ruleName %s", s, rule.Policy.Name, rule.Name)
			ev.meta.RecordFlat(s, patch.Skip) // Kyverno records the skip before pinning too
			im.respond(Skip, skipMsg)
			im.mark(Skip)
			out.warnings = append(out.warnings, warning(rule, skipMsg))
		default:
			im.respond(o.status, o.message)
			im.mark(o.status)
			if o.digest != "" {
				im.digest = o.digest
			}
		}
	}
	if v.MutateDigest && !im.ref.HasDigest() && !im.pinned {
		ev.pin(ctx, rule, v, im)
	}
}

// outcome is the result of verifying one image for one entry.
type outcome struct {
	status  Status
	message string
	digest  string
}

// verifyImage checks the entry's attestor sets for the image (spec §2.6 verifyImage, §5),
// through the cache when the entry allows it. It is safe to call concurrently.
func (ev *evaluation) verifyImage(ctx context.Context, rule *policy.Rule, v *policy.Verification, ref imageref.Ref) outcome {
	s := ref.String()
	failed := func(err error) outcome {
		return outcome{status: Fail, message: fmt.Sprintf("failed to verify image %s: %v", s, err)}
	}
	undecided := func(err error) outcome {
		if errors.Is(err, verify.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			err = outOfTime(ctx)
		}
		return outcome{status: Error, message: fmt.Sprintf("could not verify image %s: %v", s, err)}
	}
	if len(ev.engine.verifiers) == 0 {
		return outcome{status: Error, message: ErrNoVerifier.Error()}
	}
	verifier := ev.engine.verifiers[v.Entry.Type]
	if verifier == nil {
		return undecided(fmt.Errorf("verification type %s is not supported yet", v.Entry.Type))
	}
	var av verify.AttestationVerifier
	if len(v.Attestations) > 0 {
		var ok bool
		if av, ok = verifier.(verify.AttestationVerifier); !ok {
			return undecided(errors.New("attestations are not supported yet"))
		}
	}
	ctx, err := ev.withCredentials(ctx, rule, v)
	if err != nil {
		return undecided(err)
	}
	subject, err := ev.subject(ctx, ref, v.Entry.Insecure)
	if err != nil {
		if verify.Undecided(err) {
			return undecided(err)
		}
		return failed(err)
	}
	if v.ReadsSecrets() {
		// Public keys held in Secrets (keys.secret, k8s://) are read now, for an image that
		// needs them; the entry holding them is cached apart from one with other keys.
		r, err := v.ResolveSecretKeys(ctx, ev.engine.loaders.SecretKey, rule.Policy.Namespace)
		switch {
		case errors.Is(err, policy.ErrSecretKey):
			// A cosign.pub that is not a public key fails: never left to failurePolicy.
			o := failed(err)
			o.digest = subject.Digest
			return o
		case err != nil:
			return undecided(err)
		}
		v = r
	}
	run := func(ctx context.Context) (verify.Result, error) {
		// The worker is taken here, by the one call that verifies, and not around the cache
		// lookup: callers waiting for the same verification, or answered from the cache, hold
		// none, so a slow verification cannot stall admissions of images already verified.
		if ctx.Err() != nil { // select would pick a free worker half the time
			return verify.Result{}, verify.Errorf(verify.CodeTimeout, "waiting for a verification worker", context.Cause(ctx))
		}
		select {
		case ev.engine.workers <- struct{}{}:
			defer func() { <-ev.engine.workers }()
		case <-ctx.Done():
			return verify.Result{}, verify.Errorf(verify.CodeTimeout, "waiting for a verification worker", context.Cause(ctx))
		}
		res, err := verify.VerifyAttestorSets(ctx, verifier, subject, &v.Entry, v.Attestors)
		if err == nil && res.Passed && av != nil {
			// Only what the attestors establish is verified (and cached) here; conditions
			// and validate.deny are decided on every evaluation below (attest.go).
			res = fetchAttestations(ctx, av, subject, v, res)
		}
		ev.engine.observe(v, res, err)
		return res, err
	}
	var res verify.Result
	if c := ev.engine.cache; c != nil && v.UseCache {
		key := cache.Key{PolicyUID: rule.Policy.UID, PolicyVersion: rule.Policy.ResourceVersion, Rule: rule.Path, Entry: v.Index, Variant: v.Variant,
			Repository: ref.Registry + "/" + ref.Path, Digest: subject.Digest}
		res, _, err = c.Do(ctx, key, run)
		if ev.engine.credentials != nil && (errors.Is(err, verify.ErrAuth) || res.Attestations != nil && errors.Is(res.Failure, verify.ErrAuth)) {
			// The callers of one verification in flight share its outcome whatever their
			// credentials, and a refusal may have been another object's: decide with ours.
			res, err = run(ctx)
		}
	} else {
		res, err = run(ctx)
	}
	switch {
	case err != nil:
		return undecided(err)
	case !res.Passed && res.Attestations == nil:
		o := failed(res.Failure)
		o.digest = subject.Digest
		return o
	case res.Digest != "" && res.Digest != subject.Digest:
		// The claim verifier already binds signatures to the digest; never pin another one.
		return failed(fmt.Errorf("signature names digest %s, the image resolved to %s", res.Digest, subject.Digest))
	case res.Attestations != nil:
		return ev.decideAttestations(rule, v, ref, subject, res.Attestations, undecided)
	}
	pass := outcome{status: Pass, message: "verified image signatures for " + s, digest: subject.Digest}
	if v.Deny == nil {
		return pass
	}
	return ev.decideDeny(rule, v, ev.imageContext(rule, ref, subject.Digest), nil, pass)
}

// outOfTime is the cause reported for work that did not finish in time: the cause the
// evaluation's context was ended with, when its caller gave one (context.WithDeadlineCause:
// the webhook names an overload so), else the admission time budget.
func outOfTime(ctx context.Context) error {
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, context.Canceled) {
			return cause
		}
	}
	return errors.New("the verification did not finish within the admission time budget")
}

// observe reports a verification that ran to the engine's Observer.
func (e *Engine) observe(v *policy.Verification, res verify.Result, err error) {
	if e.observer == nil {
		return
	}
	result := Pass
	switch {
	case err != nil, !res.Passed && verify.Undecided(res.Failure):
		result = Error
	case !res.Passed:
		result = Fail
	}
	route := res.Route // where the verified signature was found
	if route == "" {
		route = Route(v)
	}
	e.observer.Verified(string(v.Type), route, result)
}

// pin replaces the tag with <registry>/<path>:<tag>@<digest> at every pointer of the image,
// using the digest the image resolved to (spec §2.7).
func (ev *evaluation) pin(ctx context.Context, rule *policy.Rule, v *policy.Verification, im *imageState) {
	ctx, err := ev.withCredentials(ctx, rule, v)
	var subject verify.Subject
	if err == nil {
		subject, err = ev.subject(ctx, im.ref, v.Entry.Insecure)
	}
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
// (and insecure setting) once per evaluation, even when asked concurrently, with the
// credentials of the scope ctx carries (see subjectState). An image given by digest is not
// resolved.
func (ev *evaluation) subject(ctx context.Context, ref imageref.Ref, insecure bool) (verify.Subject, error) {
	key := ref.String()
	if insecure {
		key += " (insecure)"
	}
	ev.mu.Lock()
	st, ok := ev.subjects[key]
	if !ok {
		st = &subjectState{subject: verify.Subject{Ref: ref, Digest: ref.Digest}, resolved: ref.Digest != "",
			failures: map[string]error{}, memos: map[string]*verify.Memo{}}
		ev.subjects[key] = st
	}
	ev.mu.Unlock()
	scope, _ := registry.ScopeOf(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	subject := st.subject
	if subject.Memo = st.memos[scope.Key]; subject.Memo == nil {
		subject.Memo = &verify.Memo{}
		st.memos[scope.Key] = subject.Memo
	}
	if st.resolved {
		return subject, nil
	}
	if err, ok := st.failures[scope.Key]; ok {
		return subject, err
	}
	if ev.engine.registry == nil {
		st.failures[scope.Key] = verify.Errorf(verify.CodeUnsupported, ErrNoVerifier.Error(), nil)
		return subject, st.failures[scope.Key]
	}
	if ctx.Err() != nil {
		// Out of time before asking (an evaluation with its budget already spent, as the
		// webhook runs one when overloaded): no registry call; the context's cause is reported.
		st.failures[scope.Key] = verify.Errorf(verify.CodeTimeout, "resolving the image", outOfTime(ctx))
		return subject, st.failures[scope.Key]
	}
	digest, err := ev.engine.registry.Resolve(ctx, ref, insecure)
	if err != nil {
		st.failures[scope.Key] = resolveError(err)
		return subject, st.failures[scope.Key]
	}
	st.subject.Digest, st.resolved = digest, true
	subject.Digest = digest
	return subject, nil
}

// withCredentials returns ctx carrying the credential scope of the entry for this
// evaluation's object (spec §7), asked of the engine's Credentials once per entry. Without
// Credentials it returns ctx as it is. An error is undecided: the credentials the
// configuration names could not be read.
func (ev *evaluation) withCredentials(ctx context.Context, rule *policy.Rule, v *policy.Verification) (context.Context, error) {
	creds := ev.engine.credentials
	if creds == nil {
		return ctx, nil
	}
	ev.mu.Lock()
	if ev.access == nil {
		ev.access = map[*policy.Verification]*accessState{}
	}
	st, ok := ev.access[v]
	if !ok {
		st = &accessState{}
		ev.access[v] = st
	}
	secrets := ev.pullSecrets[rule]
	ev.mu.Unlock()
	st.once.Do(func() {
		st.scope, st.err = creds.Scope(ctx, v.Credentials, ev.namespace, secrets)
		switch {
		case st.err == nil:
		case errors.Is(st.err, context.DeadlineExceeded) || errors.Is(st.err, context.Canceled):
			st.err = verify.Errorf(verify.CodeTimeout, "registry credentials", st.err)
		default:
			st.err = verify.Errorf(verify.CodeAuth, "registry auth", st.err)
		}
	})
	if st.err != nil {
		return ctx, st.err
	}
	return registry.WithScope(ctx, st.scope), nil
}

// usePullSecrets records the imagePullSecrets of the rule's object: those found on the way to
// the first image extracted for the rule, as Kyverno takes them (spec §2.3).
func (ev *evaluation) usePullSecrets(rule *policy.Rule, found []extract.Image, first imageref.Ref) {
	for _, img := range found {
		if img.Ref.String() == first.String() {
			ev.mu.Lock()
			if ev.pullSecrets == nil {
				ev.pullSecrets = map[*policy.Rule][]string{}
			}
			ev.pullSecrets[rule] = img.PullSecrets
			ev.mu.Unlock()
			return
		}
	}
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
