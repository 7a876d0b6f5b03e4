package policy

import (
	"fmt"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// brokenKinds are what a policy that cannot be decoded is assumed to cover: Pods and every pod
// controller.
var brokenKinds = []string{"Pod", "DaemonSet", "Deployment", "Job", "StatefulSet", "ReplicaSet", "ReplicationController", "CronJob"}

// Broken returns a stand-in for a policy that failed to decode or compile. It cannot be
// enforced, so it fails closed: each of its rules (or, when even its rules cannot be read, one
// rule covering Pods and pod controllers) reports an error for every image of the resources it
// matches, which denies them unless the policy's failurePolicy is Ignore. api may be nil.
func Broken(kind, namespace, name string, api *v1.Policy, failurePolicy v1.FailurePolicyType, cause error) *Policy {
	if failurePolicy == "" {
		failurePolicy = v1.Fail
	}
	p := &Policy{Name: name, Namespace: namespace, Kind: kind, FailurePolicy: failurePolicy,
		FailureAction: v1.Enforce, UID: "broken:" + kind + "/" + namespace + "/" + name, API: api, Err: cause}
	if api != nil {
		p.UID, p.ResourceVersion = string(api.UID), api.ResourceVersion
	}
	msg := fmt.Sprintf("policy %s could not be loaded, so it is enforced as an error: %v", p.ReportName(), cause)
	everything := []*Verification{{ImageReferences: []string{"*"}, Path: "spec"}}
	if api != nil {
		for i := range api.Spec.Rules {
			r := &api.Spec.Rules[i]
			if !r.HasVerifyImages() {
				continue
			}
			match, err := compileBlock(&r.MatchResources)
			if err != nil {
				continue
			}
			rule := &Rule{Policy: p, Name: r.Name, Path: fmt.Sprintf("spec.rules[%d]", i), match: match,
				Unsupported: msg, Verifications: everything, FailureAction: v1.Enforce}
			rule.kinds = match.indexKinds()
			p.Rules = append(p.Rules, rule)
		}
	}
	if len(p.Rules) == 0 {
		match, _ := compileBlock(&v1.MatchResources{ResourceDescription: v1.ResourceDescription{Kinds: brokenKinds}})
		rule := &Rule{Policy: p, Name: "policy-load-error", Path: "spec", match: match, Unsupported: msg,
			Verifications: everything, FailureAction: v1.Enforce}
		rule.kinds = match.indexKinds()
		p.Rules = []*Rule{rule}
	}
	return p
}
