package engine

import (
	"fmt"
	"sort"

	"sigs.k8s.io/yaml"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// Decision is what an admission webhook answers for a response.
type Decision struct {
	Allowed  bool
	Message  string   // the denial message, in Kyverno's format (spec §8.1)
	Warnings []string // admission warnings
}

// Decide turns the results into an admission decision. A failure under Enforce denies; a
// could-not-verify error denies when its policy's failurePolicy is Fail and is a warning when
// it is Ignore — failed verification and could-not-verify are never confused; a failure
// under Audit (warn) admits with a warning.
func (r *Response) Decide() Decision {
	d := Decision{Allowed: true, Warnings: append([]string(nil), r.Warnings...)}
	blocked := map[string]map[string]string{}
	for _, res := range r.Results {
		msg := fmt.Sprintf("policy %s.%s: %s", res.Policy.Name, res.Rule.Name, res.Message)
		switch {
		case res.Status == Fail, res.Status == Error && res.Policy.FailurePolicy == v1.Fail:
			if blocked[res.Policy.ReportName()] == nil {
				blocked[res.Policy.ReportName()] = map[string]string{}
			}
			blocked[res.Policy.ReportName()][res.Rule.Name] = res.Message
		case res.Status == Warn, res.Status == Error:
			if !contains(d.Warnings, msg) {
				d.Warnings = append(d.Warnings, msg)
			}
		}
	}
	if len(blocked) == 0 {
		return d
	}
	d.Allowed = false
	body, err := yaml.Marshal(blocked)
	if err != nil {
		body = []byte(fmt.Sprint(blocked))
	}
	d.Message = fmt.Sprintf("\n\nresource %s was blocked due to the following policies \n\n%s", resourceName(r.Object), body)
	sort.Strings(d.Warnings)
	return d
}

// resourceName is Kind/Namespace/Name as Kyverno prints it in denials.
func resourceName(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		name, _ = meta["generateName"].(string)
	}
	ns, _ := meta["namespace"].(string)
	return fmt.Sprintf("%v/%s/%s", obj["kind"], ns, name)
}
