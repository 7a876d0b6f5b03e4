package engine

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
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
// while the engine has none configured.
var ErrNoVerifier = errors.New("no verifier configured")

// Registry resolves an image reference to the digest of its manifest. insecure is the
// entry's imageRegistryCredentials.allowInsecureRegistry.
type Registry interface {
	Resolve(ctx context.Context, ref imageref.Ref, insecure bool) (string, error)
}

// Credentials chooses the registry credentials of a verifyImages entry for one object
// (spec §7). The engine asks once per entry and evaluation, and runs the entry's registry
// calls — tag resolution and signature fetches alike — in the returned scope.
type Credentials interface {
	// Scope returns the credentials for the entry's registry calls: entry is the entry's
	// imageRegistryCredentials (nil when it has none), namespace the object's, pullSecrets
	// the names in its pod spec's imagePullSecrets (Kyverno takes them from the first image
	// extracted for the rule). An error means credentials the configuration names could not
	// be read; the entry's images cannot be verified. Errors name Secrets, never their data.
	Scope(ctx context.Context, entry *v1.ImageRegistryCredentials, namespace string, pullSecrets []string) (registry.Scope, error)
}

// Options configures an Engine.
type Options struct {
	Policies *policy.Set
	// Registry resolves tags to digests; nil means images that need one are errors.
	Registry Registry
	// Credentials chooses each entry's registry credentials for each object (spec §7); nil
	// means every registry call uses the registry clients' own keychain.
	Credentials Credentials
	// Verifiers by verification type (Cosign, SigstoreBundle, Notary); a type without a
	// verifier makes its images errors, never passes.
	Verifiers map[string]verify.Verifier
	// Cache holds verification results by digest across evaluations; nil means no cache.
	Cache *cache.Cache
	// Workers bounds the image verifications (signature fetches and checks) running at once
	// across all evaluations; 0 means DefaultWorkers. Resolving tags, cache hits and waiting
	// for a verification another evaluation started take no worker.
	Workers int
	// Observer, when set, is told of every verification the engine runs (for metrics).
	Observer Observer
	// Loaders read what rule context entries take from outside the request (ConfigMaps, API
	// calls); the zero value makes such entries fail to load (an error for the rule).
	// Loaders.ImageData is the engine's own (ImageData, with each entry's credentials).
	Loaders policy.Loaders
	// ImageData reads image data for imageRegistry context entries; nil means the Registry's
	// when it is one (registry.Pair is), else such entries fail to load.
	ImageData ImageDataSource
}

// ImageDataSource reads what Kyverno's imageRegistry context entry holds for an image
// (registry.Pair.ImageData), with the credentials of the scope ctx carries.
type ImageDataSource interface {
	ImageData(ctx context.Context, ref imageref.Ref, insecure bool) (map[string]any, error)
}

// Observer receives what the engine does, for metrics. Its methods are called on the
// admission path, concurrently, and must be cheap and must not block.
type Observer interface {
	// Verified is called once for each verification that ran — not for cache hits, and once
	// for callers that shared a verification in flight — with the entry's verification type
	// (Cosign, SigstoreBundle, Notary), the signature discovery route (see Route) and the
	// result: Pass, Fail, or Error when vouch could not decide.
	Verified(verificationType, route string, result Status)
}

// Signature discovery routes reported to the Observer: where the verified signature was
// found (verify.Result.Route) when the verification passed, else the route the entry's
// configuration selects first (Route).
const (
	RouteLegacyTag          = verify.RouteLegacyTag          // cosign's sha256-<hex>.sig tag
	RouteOCI11Referrer      = verify.RouteOCI11Referrer      // OCI 1.1 referrers API
	RouteReferrersTagSchema = verify.RouteReferrersTagSchema // the sha256-<hex> referrers tag index
	RouteSigstoreBundle     = verify.RouteSigstoreBundle     // a Sigstore bundle referrer (cosign v3)
)

// Route returns the signature discovery route an entry's configuration selects first: OCI
// 1.1 referrers for cosignOCI11 and Notary, Sigstore bundles for SigstoreBundle, cosign's
// legacy tag otherwise.
func Route(v *policy.Verification) string {
	if v.Type == v1.SigstoreBundle {
		return RouteSigstoreBundle
	}
	if v.Entry.CosignOCI11 || v.Type == v1.Notary {
		return RouteOCI11Referrer
	}
	return RouteLegacyTag
}

// DefaultWorkers is the default size of the verification worker pool.
const DefaultWorkers = 32

// Engine evaluates compiled policies. It holds no per-request state and is safe for
// concurrent use.
type Engine struct {
	credentials Credentials // nil: the registry clients' own keychain

	policies  *policy.Set
	registry  Registry
	verifiers map[string]verify.Verifier
	cache     *cache.Cache
	workers   chan struct{}
	observer  Observer
	loaders   policy.Loaders
	imageData ImageDataSource
}

// New returns an engine for the given options.
func New(opts Options) (*Engine, error) {
	if opts.Policies == nil {
		return nil, errors.New("engine: no policies")
	}
	if opts.Workers < 0 {
		return nil, errors.New("engine: Workers must not be negative")
	}
	if opts.Workers == 0 {
		opts.Workers = DefaultWorkers
	}
	if ds, ok := opts.Registry.(ImageDataSource); ok && opts.ImageData == nil {
		opts.ImageData = ds
	}
	return &Engine{credentials: opts.Credentials, policies: opts.Policies, registry: opts.Registry, verifiers: opts.Verifiers,
		cache: opts.Cache, workers: make(chan struct{}, opts.Workers), observer: opts.Observer, loaders: opts.Loaders, imageData: opts.ImageData}, nil
}

// Policies returns the compiled policy set the engine enforces.
func (e *Engine) Policies() *policy.Set { return e.policies }

// With returns an engine for another policy set sharing this engine's registry, verifiers,
// cache and worker pool (for swapping policies without losing warm state).
func (e *Engine) With(policies *policy.Set) *Engine {
	cp := *e
	cp.policies = policies
	return &cp
}

// WithCache returns an engine like e with another verification cache (nil: none): a
// background scan verifies afresh, sharing verifications within the scan only.
func (e *Engine) WithCache(c *cache.Cache) *Engine {
	cp := *e
	cp.cache = c
	return &cp
}

// WithWorkers returns an engine like e with a pool of n verification workers of its own
// (n < 1 means 1): a background scan verifies with its own workers, so that it never takes
// one an admission is waiting for.
func (e *Engine) WithWorkers(n int) *Engine {
	cp := *e
	cp.workers = make(chan struct{}, max(n, 1))
	return &cp
}

// User is the admission user (nil in the CLI).
type User = policy.UserInfo

// Request is one object to evaluate.
type Request struct {
	Object          map[string]any
	OldObject       map[string]any
	Operation       v1.AdmissionOperation // CREATE when empty
	Subresource     string                // e.g. ephemeralcontainers
	NamespaceLabels map[string]string
	User            *User
	// Admission holds the other fields of the AdmissionRequest (uid, dryRun, resource,
	// requestKind, options, ...) as JSON values, for the `request` variable of conditions and
	// rule contexts; nil in the CLI.
	Admission map[string]any
	// Background marks an evaluation of a stored resource by a background scan, not an
	// admission: policies with `background: false` do not apply (Kyverno's spec.background).
	Background bool
}

// Response is the outcome of one evaluation.
type Response struct {
	Object   map[string]any    // the object after mutation (digest pins, annotations)
	Patches  []patch.Operation // RFC 6902 operations turning the request's object into Object
	Results  []RuleResult      // one per applicable (policy, rule)
	Warnings []string          // admission warnings, "policy <p>.<rule>: <message>"
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
	Digest  string   // the digest it resolved to and was verified and pinned at, if known
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
	mreq.NamespaceLabels, mreq.User, mreq.Subresource = req.NamespaceLabels, req.User, req.Subresource
	ev := &evaluation{engine: e, subjects: map[string]*subjectState{}, pinned: map[string]string{}, namespace: mreq.Namespace,
		request: requestContext(req, &mreq), user: req.User}
	// Mutation phase of every applicable rule first, then the validation phase, so that
	// required and verifyDigest see every pin of the evaluation, as Kyverno's validating
	// webhook sees the mutated object.
	var states []*ruleState
	stopped := map[*policy.Policy]bool{}
	for _, rule := range e.policies.Match(&mreq) {
		if stopped[rule.Policy] || req.Background && !rule.Policy.Background {
			continue
		}
		st := ev.mutateRule(ctx, rule, &mreq, req.Object)
		if st == nil {
			continue
		}
		states = append(states, st)
		if rule.Policy.ApplyOne && st.applied() {
			stopped[rule.Policy] = true
		}
	}
	stopped = map[*policy.Policy]bool{}
	for _, st := range states {
		if stopped[st.rule.Policy] {
			continue
		}
		res, applied := ev.validateRule(st, &mreq)
		if !applied {
			continue
		}
		if st.rule.Policy.ApplyOne && (res.Status == Pass || res.Status == Fail || res.Status == Warn) {
			stopped[st.rule.Policy] = true // applyRules: One holds in the validation phase too
		}
		resp.Results = append(resp.Results, res.RuleResult)
		resp.Warnings = append(resp.Warnings, res.warnings...)
		if st.rule.Policy.EmitWarning && res.Status != Skip {
			resp.Warnings = append(resp.Warnings, warning(st.rule, res.Message))
		}
	}
	annotations, err := ev.meta.Operations(req.Object)
	if err != nil {
		return nil, fmt.Errorf("engine: building annotations: %w", err)
	}
	resp.Patches = append(annotations, ev.pins...)
	if len(resp.Patches) > 0 {
		if resp.Object, err = patch.Apply(req.Object, resp.Patches); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
	}
	return resp, nil
}

// warning formats an admission warning as Kyverno does (spec §8.3), with the bare policy name.
func warning(rule *policy.Rule, msg string) string {
	return fmt.Sprintf("policy %s.%s: %s", rule.Policy.Name, rule.Name, msg)
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
