package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/extract"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
)

// ruleContext is the outcome of a rule's context, preconditions and substitution (spec §2.3)
// for one evaluation: the document its conditions see and its entries as substituted, or the
// status and message that decide the rule instead.
type ruleContext struct {
	doc           map[string]any
	verifications []*policy.Verification
	status        Status // "" when the rule goes on to verify
	message       string
	perImage      string // with status Fail: "failed to verify image <s>: " + perImage for each image
}

// prepareRule builds the rule's context document — the admission request, `images` (the
// rule's extraction, Kyverno's ImageInfo per group and key), serviceAccountName and
// serviceAccountNamespace, then each context entry in order — evaluates the preconditions and
// substitutes the variables of the entries that have them.
//
//   - a context entry that does not load: error "failed to load context: …";
//   - preconditions that cannot be evaluated: error "failed to evaluate preconditions: …";
//     not met: skip "preconditions not met[; <message>]";
//   - a variable that does not resolve: error "failed to substitute variables: …";
//   - an entry that is not valid once substituted (a key that is not PEM, …): fail for each
//     image, so that a bad value from the context can never be left to failurePolicy.
func (ev *evaluation) prepareRule(ctx context.Context, rule *policy.Rule, found []extract.Image) ruleContext {
	doc := make(map[string]any, len(ev.request)+4+len(rule.Context))
	for k, v := range ev.request {
		doc[k] = v
	}
	doc["images"] = imagesContext(found)
	if ev.user != nil {
		if ns, name, ok := serviceAccount(ev.user.Username); ok {
			doc["serviceAccountName"], doc["serviceAccountNamespace"] = name, ns
		}
		// Kyverno adds the user's roles to the request; looked up (once per request) only
		// for rules that build a context.
		roles, clusterRoles := ev.user.BoundRoles()
		req := make(map[string]any, 16)
		if r, ok := doc["request"].(map[string]any); ok {
			for k, v := range r {
				req[k] = v
			}
		}
		req["roles"], req["clusterRoles"] = stringsToJSON(roles), stringsToJSON(clusterRoles)
		doc["request"] = req
	}
	rc := ruleContext{doc: doc, verifications: rule.Verifications}
	loaders := ev.engine.loaders
	loaders.ImageData = func(ctx context.Context, reference string, creds *v1.ImageRegistryCredentials) (any, error) {
		return ev.imageData(ctx, rule, reference, creds)
	}
	for _, c := range rule.Context {
		if err := c.Load(ctx, doc, loaders); err != nil {
			rc.status, rc.message = Error, "failed to load context: "+err.Error()
			return rc
		}
	}
	if rule.Preconditions != nil {
		res, err := rule.Preconditions.Evaluate(doc)
		switch {
		case err != nil:
			rc.status, rc.message = Error, "failed to evaluate preconditions: "+err.Error()
			return rc
		case !res.Pass:
			rc.status, rc.message = Skip, "preconditions not met"
			if res.Message != "" {
				rc.message += "; " + res.Message
			}
			return rc
		}
	}
	var substituted []*policy.Verification
	for i, v := range rule.Verifications {
		if !v.Templated() {
			continue
		}
		s, err := v.Substitute(doc)
		switch {
		case errors.Is(err, policy.ErrSubstitution):
			rc.status, rc.message = Error, "failed to substitute variables: "+err.Error()
			return rc
		case err != nil:
			rc.status, rc.perImage = Fail, err.Error()
			return rc
		}
		if substituted == nil {
			substituted = append([]*policy.Verification(nil), rule.Verifications...)
		}
		substituted[i] = s
	}
	if substituted != nil {
		rc.verifications = substituted
	}
	return rc
}

// imagesContext is Kyverno's `images` context variable: per extractor group and key, the
// image's registry, path, name, tag, digest, reference, referenceWithTag and jsonPointer.
func imagesContext(found []extract.Image) map[string]any {
	out := map[string]any{}
	for _, img := range found {
		group, _ := out[img.Group].(map[string]any)
		if group == nil {
			group = map[string]any{}
			out[img.Group] = group
		}
		r := img.Ref
		info := map[string]any{
			"path":             r.Path,
			"name":             r.Name,
			"reference":        r.String(),
			"referenceWithTag": r.WithTag(),
			"jsonPointer":      img.Pointer,
		}
		// Kyverno's ImageInfo omits these when empty.
		for k, v := range map[string]string{"registry": r.Registry, "tag": r.Tag, "digest": r.Digest} {
			if v != "" {
				info[k] = v
			}
		}
		group[img.Key] = info
	}
	return out
}

// serviceAccount splits a service account's user name, system:serviceaccount:<ns>:<name>.
func serviceAccount(username string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != ""
}

// ruleDocument is the context of the rule's conditions for this evaluation: the rule's own
// document when it was built, else the request alone.
func (ev *evaluation) ruleDocument(rule *policy.Rule) map[string]any {
	if doc := ev.docs[rule]; doc != nil {
		return doc
	}
	return ev.request
}

// failImages is the per-image message of an entry that is not valid once substituted.
func failImages(images []*imageState, detail string) {
	for _, im := range images {
		im.verdict, im.vmessage = Fail, fmt.Sprintf("failed to verify image %s: %s", im.ref.String(), detail)
	}
}

func stringsToJSON(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

// imageData reads an imageRegistry context entry's image with the entry's registry
// credentials (resolved as a verifyImages entry's are, spec §7) within the evaluation's budget.
func (ev *evaluation) imageData(ctx context.Context, rule *policy.Rule, reference string, creds *v1.ImageRegistryCredentials) (any, error) {
	if ev.engine.imageData == nil {
		return nil, errors.New("imageRegistry entries need a registry client")
	}
	ref, err := imageref.Parse(reference)
	if err != nil {
		return nil, err
	}
	if c := ev.engine.credentials; c != nil {
		ev.mu.Lock()
		secrets := ev.pullSecrets[rule]
		ev.mu.Unlock()
		scope, err := c.Scope(ctx, creds, ev.namespace, secrets)
		if err != nil {
			return nil, fmt.Errorf("registry credentials: %w", err)
		}
		ctx = registry.WithScope(ctx, scope)
	}
	return ev.engine.imageData.ImageData(ctx, ref, creds != nil && creds.AllowInsecureRegistry)
}
