package report

import (
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vouchproject/vouch/internal/engine"
)

// The wgpolicyk8s.io PolicyReport resources (namespaced and cluster-wide) vouch writes. The
// CRDs ship in charts/vouch/crds/.
var (
	PolicyReports        = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "policyreports"}
	ClusterPolicyReports = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "clusterpolicyreports"}
)

// Source is the source of every result vouch reports. It is not Kyverno's "kyverno": these
// results were produced by vouch, and report consumers (policy-reporter…) tell them apart.
const Source = "vouch"

// Labels and annotations of the reports vouch writes.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	ManagedByVouch   = "vouch"
	LabelResourceUID = "vouch.dev/resource.uid"
	// Kyverno's policy annotations that Kyverno copies into report results.
	annotationScored   = "policies.kyverno.io/scored"
	annotationCategory = "policies.kyverno.io/category"
	annotationSeverity = "policies.kyverno.io/severity"
)

// Subject is the resource a PolicyReport is about. UID is required: it names the report and
// makes the resource the report's owner, so that deleting the resource deletes its report.
type Subject struct {
	APIVersion string
	Kind       string
	Namespace  string // "" for a cluster-scoped resource: a ClusterPolicyReport
	Name       string
	UID        string
}

// GVR returns the report resource for the subject: PolicyReports in its namespace, or
// ClusterPolicyReports for a cluster-scoped subject.
func (s Subject) GVR() schema.GroupVersionResource {
	if s.Namespace == "" {
		return ClusterPolicyReports
	}
	return PolicyReports
}

// ReportName is the name of the subject's report: "vouch-<resource UID>". Kyverno (1.10 and
// later) names its per-resource report by the UID alone; the prefix keeps vouch's report from
// overwriting Kyverno's when both run.
func (s Subject) ReportName() string { return "vouch-" + s.UID }

// The processes a report result names (properties.process), as Kyverno's do.
const (
	ProcessAdmission  = "admission review"
	ProcessBackground = "background scan"
)

// PolicyReport builds the report of one resource, in the layout Kyverno uses since 1.10: one
// report per resource, named after its UID, owned by it, with the resource as scope and one
// result per (policy, rule) evaluated for it. An Audit failure is a "fail" result (the resource
// was admitted, the report says it violates the policy), as in Kyverno's reports; it is "warn"
// for a policy annotated policies.kyverno.io/scored: "false". Results are sorted by policy and
// rule; now stamps them, and process (ProcessAdmission or ProcessBackground) is each result's
// properties.process.
func PolicyReport(s Subject, results []engine.RuleResult, now time.Time, process string) *unstructured.Unstructured {
	ref := map[string]any{"apiVersion": s.APIVersion, "kind": s.Kind, "name": s.Name, "uid": s.UID}
	if s.Namespace != "" {
		ref["namespace"] = s.Namespace
	}
	summary := map[string]any{"pass": int64(0), "fail": int64(0), "warn": int64(0), "error": int64(0), "skip": int64(0)}
	list := make([]any, 0, len(results))
	sorted := append([]engine.RuleResult(nil), results...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Policy.ReportName() != b.Policy.ReportName() {
			return a.Policy.ReportName() < b.Policy.ReportName()
		}
		return a.Rule.Name < b.Rule.Name
	})
	for _, r := range sorted {
		ann := r.Policy.Annotations
		scored := ann[annotationScored] != "false"
		result := reportResult(r.Status, scored)
		summary[result] = summary[result].(int64) + 1
		item := map[string]any{
			"source":     Source,
			"policy":     r.Policy.ReportName(),
			"rule":       r.Rule.Name,
			"result":     result,
			"message":    r.Message,
			"scored":     scored,
			"timestamp":  map[string]any{"seconds": now.Unix(), "nanos": int64(0)},
			"resources":  []any{copyMap(ref)},
			"properties": map[string]any{"process": process},
		}
		if c := ann[annotationCategory]; c != "" {
			item["category"] = c
		}
		if sev := severity(ann[annotationSeverity]); sev != "" {
			item["severity"] = sev
		}
		list = append(list, item)
	}
	meta := map[string]any{
		"name":   s.ReportName(),
		"labels": map[string]any{LabelManagedBy: ManagedByVouch, LabelResourceUID: s.UID},
		"ownerReferences": []any{map[string]any{
			"apiVersion": s.APIVersion, "kind": s.Kind, "name": s.Name, "uid": s.UID,
		}},
	}
	kind := "ClusterPolicyReport"
	if s.Namespace != "" {
		meta["namespace"] = s.Namespace
		kind = "PolicyReport"
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": PolicyReports.GroupVersion().String(),
		"kind":       kind,
		"metadata":   meta,
		"scope":      ref,
		"summary":    summary,
		"results":    list,
	}}
}

// reportResult maps an engine status to a report result (Kyverno's toPolicyResult, with the
// engine's Audit "warn" reported as the failure it is).
func reportResult(s engine.Status, scored bool) string {
	switch s {
	case engine.Pass:
		return "pass"
	case engine.Skip:
		return "skip"
	case engine.Error:
		return "error"
	}
	if !scored {
		return "warn"
	}
	return "fail"
}

// severity keeps the values the PolicyReport schema allows.
func severity(s string) string {
	switch s {
	case "critical", "high", "medium", "low", "info":
		return s
	}
	return ""
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
