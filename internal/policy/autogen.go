package policy

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// podControllers are the kinds autogen covers (spec §2.10).
var podControllers = []string{"DaemonSet", "Deployment", "Job", "StatefulSet", "ReplicaSet", "ReplicationController", "CronJob"}

var controllerGVK = map[string]string{
	"DaemonSet": "apps/v1/DaemonSet", "Deployment": "apps/v1/Deployment", "Job": "batch/v1/Job",
	"StatefulSet": "apps/v1/StatefulSet", "ReplicaSet": "apps/v1/ReplicaSet",
	"ReplicationController": "v1/ReplicationController", "CronJob": "batch/v1/CronJob", "Pod": "v1/Pod",
}

// sourceRule is one rule of Kyverno's ComputeRules output: an original rule or a generated one.
type sourceRule struct {
	rule    *v1.Rule
	path    string // path of the original rule
	autogen bool
}

// computeRules returns the original rules followed by the autogen rules, as Kyverno's
// autogen.ComputeRules(policy, "") does (pkg/autogen/v1).
func computeRules(p *v1.Policy, paths []string) []sourceRule {
	var out []sourceRule
	for i := range p.Spec.Rules {
		out = append(out, sourceRule{rule: &p.Spec.Rules[i], path: paths[i]})
	}
	controllers := autogenControllers(p)
	if len(controllers) == 0 {
		return out
	}
	joined := strings.Join(controllers, ",")
	var generated []sourceRule
	for i := range p.Spec.Rules {
		r := &p.Spec.Rules[i]
		if gen := generateForControllers(r, stripCronJob(joined)); gen != nil {
			generated = append(generated, sourceRule{rule: shiftReferences(gen, "Pod"), path: paths[i], autogen: true})
		}
		if strings.Contains(joined, "CronJob") || strings.Contains(joined, "all") {
			if inner := generateForControllers(r, joined); inner != nil {
				cron := generateRule("autogen-cronjob-"+r.Name, inner, []string{"CronJob"}, true)
				generated = append(generated, sourceRule{rule: shiftReferences(cron, "Cronjob"), path: paths[i], autogen: true})
			}
		}
	}
	if len(generated) == 0 {
		return out
	}
	kept := out[:0]
	for _, sr := range out {
		if !strings.HasPrefix(sr.rule.Name, "autogen-") {
			kept = append(kept, sr)
		}
	}
	return append(kept, generated...)
}

// autogenControllers returns the controllers to generate rules for, or nil.
func autogenControllers(p *v1.Policy) []string {
	if !canAutogen(&p.Spec) {
		return nil
	}
	requested, ok := p.Annotations[v1.AnnotationAutogen]
	if !ok {
		return podControllers
	}
	if requested == "none" {
		return nil
	}
	return strings.Split(requested, ",")
}

// canAutogen is Kyverno's CanAutoGen: no generate rule, no name/names/selector/annotations,
// no Pod mixed with other kinds in one filter, and some rule matching Pod or a controller.
func canAutogen(spec *v1.Spec) bool {
	needed := false
	check := func(rd *v1.ResourceDescription) bool {
		if rd.Name != "" || len(rd.Names) > 0 || rd.Selector != nil || rd.Annotations != nil {
			return false
		}
		if len(rd.Kinds) > 1 && containsKind(rd.Kinds, "Pod") {
			return false
		}
		for _, k := range rd.Kinds {
			if k == "Pod" || isController(k) {
				needed = true
			}
		}
		return true
	}
	for i := range spec.Rules {
		r := &spec.Rules[i]
		if r.HasGenerate() {
			return false
		}
		if p, ok := r.Mutation["patchesJson6902"].(string); ok && p != "" {
			return false
		}
		for _, m := range []*v1.MatchResources{&r.MatchResources, r.ExcludeResources} {
			if m == nil {
				continue
			}
			if !check(&m.ResourceDescription) {
				return false
			}
			for j := range m.Any {
				if !check(&m.Any[j].ResourceDescription) {
					return false
				}
			}
			for j := range m.All {
				if !check(&m.All[j].ResourceDescription) {
					return false
				}
			}
		}
	}
	return needed
}

func isController(k string) bool {
	for _, c := range podControllers {
		if k == c {
			return true
		}
	}
	return false
}

// containsKind is Kyverno's kube.ContainsKind: compares the kind part of each selector.
func containsKind(list []string, kind string) bool {
	for _, e := range list {
		k := kindOf(e)
		if i := strings.Index(k, "/"); i >= 0 {
			k = k[:i]
		}
		if k == kind {
			return true
		}
	}
	return false
}

// kindOf is the kind half of Kyverno's GetKindFromGVK.
func kindOf(s string) string {
	parts := strings.Split(s, "/")
	sub := func(x string) string { return strings.Replace(x, ".", "/", 1) }
	switch len(parts) {
	case 1:
		return sub(s)
	case 2:
		if parts[0] == "*" && parts[1] == "*" {
			return "*/*"
		}
		if versionRegex.MatchString(parts[0]) {
			return sub(parts[1])
		}
		return parts[0] + "/" + parts[1]
	case 3:
		if versionRegex.MatchString(parts[0]) {
			return parts[1] + "/" + parts[2]
		}
		return sub(parts[2])
	case 4:
		return parts[2] + "/" + parts[3]
	}
	return ""
}

func stripCronJob(controllers string) string {
	var out []string
	for _, c := range splitKinds(controllers) {
		if c != "CronJob" {
			out = append(out, c)
		}
	}
	return strings.Join(out, ",")
}

func splitKinds(s string) []string {
	kinds := strings.Split(s, ",")
	sort.Strings(kinds)
	return kinds
}

// generateForControllers is Kyverno's generateRuleForControllers.
func generateForControllers(r *v1.Rule, controllers string) *v1.Rule {
	if strings.HasPrefix(r.Name, "autogen-") || controllers == "" {
		return nil
	}
	var excludeKinds []string
	if r.ExcludeResources != nil {
		excludeKinds = r.ExcludeResources.GetKinds()
	}
	if !containsKind(r.MatchResources.GetKinds(), "Pod") || (len(excludeKinds) != 0 && !containsKind(excludeKinds, "Pod")) {
		return nil
	}
	if controllers == "all" {
		controllers = "DaemonSet,Deployment,Job,StatefulSet,ReplicaSet,ReplicationController"
	} else {
		var valid []string
		for _, c := range splitKinds(controllers) {
			if c != "CronJob" && isController(c) {
				valid = append(valid, c)
			}
		}
		if len(valid) > 0 {
			controllers = strings.Join(valid, ",")
		}
	}
	return generateRule("autogen-"+r.Name, r, splitKinds(controllers), false)
}

// generateRule copies the rule under a new name with the controller kinds in place of Pod.
// cron selects the CronJob variant, which replaces the kinds of every filter.
func generateRule(name string, r *v1.Rule, kinds []string, cron bool) *v1.Rule {
	if len(name) > 63 {
		name = name[:63]
	}
	gvks := make([]string, len(kinds))
	for i, k := range kinds {
		if g, ok := controllerGVK[k]; ok {
			gvks[i] = g
		} else {
			gvks[i] = k
		}
	}
	replace := func(filters v1.ResourceFilters) v1.ResourceFilters {
		out := make(v1.ResourceFilters, len(filters))
		copy(out, filters)
		for i := range out {
			if cron || containsKind(out[i].Kinds, "Pod") {
				out[i].Kinds = gvks
			}
		}
		return out
	}
	gen := &v1.Rule{
		Name:                   name,
		Context:                r.Context,
		MatchResources:         r.MatchResources,
		Preconditions:          r.Preconditions,
		CELPreconditions:       r.CELPreconditions,
		VerifyImages:           r.VerifyImages,
		SkipBackgroundRequests: r.SkipBackgroundRequests,
		// Kyverno's generated rules carry no imageExtractors: controllers use the built-ins.
	}
	switch m := &gen.MatchResources; {
	case len(m.Any) > 0:
		m.Any = replace(m.Any)
	case len(m.All) > 0:
		m.All = replace(m.All)
	default:
		m.ResourceDescription.Kinds = gvks
	}
	if r.ExcludeResources != nil {
		ex := *r.ExcludeResources
		switch {
		case len(ex.Any) > 0:
			ex.Any = replace(ex.Any)
		case len(ex.All) > 0:
			ex.All = replace(ex.All)
		case len(ex.ResourceDescription.Kinds) != 0:
			ex.ResourceDescription.Kinds = gvks
		}
		gen.ExcludeResources = &ex
	}
	return gen
}

var replacements = map[string][][2]string{
	"Pod": {
		{"request.object.spec", "request.object.spec.template.spec"},
		{"request.oldObject.spec", "request.oldObject.spec.template.spec"},
		{"request.object.metadata", "request.object.spec.template.metadata"},
		{"request.oldObject.metadata", "request.oldObject.spec.template.metadata"},
	},
	"Cronjob": {
		{"request.object.spec", "request.object.spec.jobTemplate.spec.template.spec"},
		{"request.oldObject.spec", "request.oldObject.spec.jobTemplate.spec.template.spec"},
		{"request.object.metadata", "request.object.spec.jobTemplate.spec.template.metadata"},
		{"request.oldObject.metadata", "request.oldObject.spec.jobTemplate.spec.template.metadata"},
	},
}

// shiftReferences applies Kyverno's textual rewrite of request.object references in the whole
// generated rule (spec §2.10). It also deep-copies the rule.
func shiftReferences(r *v1.Rule, kind string) *v1.Rule {
	data, err := json.Marshal(r)
	if err != nil {
		return r
	}
	for _, rep := range replacements[kind] {
		data = bytes.ReplaceAll(data, []byte(rep[0]), []byte(rep[1]))
	}
	out := &v1.Rule{}
	if err := json.Unmarshal(data, out); err != nil {
		return r
	}
	return out
}
