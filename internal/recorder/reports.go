package recorder

import (
	"context"
	"errors"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/report"
)

// pendingReport is the latest results of one resource, waiting to be written.
type pendingReport struct {
	subject report.Subject
	results []engine.RuleResult
	at      time.Time
	process string // report.ProcessAdmission or report.ProcessBackground
}

// queueReport keeps the latest results of the admitted resource for the next flush. The
// validating webhook sees the object with the UID it will be stored with; without one (or
// without a name) there is nothing to own the report, and no report is written.
func (r *Recorder) queueReport(req *admissionv1.AdmissionRequest, resp *engine.Response) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return
	}
	meta, _ := resp.Object["metadata"].(map[string]any)
	uid, _ := meta["uid"].(string)
	name, _ := meta["name"].(string)
	if name == "" {
		name = req.Name
	}
	if uid == "" || name == "" {
		r.log.Debug("no PolicyReport for a resource without UID or name", "uid", req.UID, "kind", req.Kind.Kind)
		return
	}
	s := report.Subject{
		APIVersion: schema.GroupVersion{Group: req.Kind.Group, Version: req.Kind.Version}.String(),
		Kind:       req.Kind.Kind, Namespace: req.Namespace, Name: name, UID: uid,
	}
	r.keepReport(s, resp.Results, report.ProcessAdmission)
}

// keepReport keeps the latest results of a resource for the next flush. It runs in Run.
func (r *Recorder) keepReport(s report.Subject, results []engine.RuleResult, process string) {
	key := s.GVR().Resource + "/" + s.Namespace + "/" + s.ReportName()
	if _, ok := r.pending[key]; !ok && len(r.pending) >= r.opts.MaxPendingReports {
		r.reports.WithLabelValues("queue-full").Inc()
		return
	}
	r.pending[key] = &pendingReport{subject: s, results: results, at: r.now(), process: process}
}

// flushReports writes every pending report.
func (r *Recorder) flushReports(ctx context.Context) {
	if len(r.pending) == 0 {
		return
	}
	batch := r.pending
	r.pending = map[string]*pendingReport{}
	var failed int
	var firstErr error
	for _, p := range batch {
		err := r.writeReport(ctx, report.PolicyReport(p.subject, p.results, p.at, p.process))
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			r.reports.WithLabelValues("failed").Inc()
			continue
		}
		r.reports.WithLabelValues("written").Inc()
	}
	// At most one line a minute, not one per report: a missing CRD or RBAC rule fails them all
	// (vouch_policy_reports_total{result="failed"} counts each).
	if failed > 0 && r.now().Sub(r.reportWarned) >= time.Minute {
		r.reportWarned = r.now()
		r.log.Warn("writing PolicyReports (are the wgpolicyk8s.io CRDs installed and the verbs granted?)", "failed", failed, "of", len(batch), "err", firstErr)
	}
}

// writeReport creates the report or replaces the results of the existing one, retrying once
// on a conflicting concurrent write.
func (r *Recorder) writeReport(ctx context.Context, obj *unstructured.Unstructured) error {
	gvr := report.PolicyReports
	if obj.GetNamespace() == "" {
		gvr = report.ClusterPolicyReports
	}
	var ri dynamic.ResourceInterface = r.opts.Dynamic.Resource(gvr)
	if ns := obj.GetNamespace(); ns != "" {
		ri = r.opts.Dynamic.Resource(gvr).Namespace(ns)
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err = r.putReport(cctx, ri, obj.DeepCopy())
		cancel()
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return err
}

func (r *Recorder) putReport(ctx context.Context, ri dynamic.ResourceInterface, obj *unstructured.Unstructured) error {
	cur, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: ReportingController})
		return err
	}
	if err != nil {
		return err
	}
	if cur.GetLabels()[report.LabelManagedBy] != report.ManagedByVouch {
		return errors.New("report " + obj.GetName() + " exists and is not managed by vouch")
	}
	labels := cur.GetLabels()
	for k, v := range obj.GetLabels() {
		labels[k] = v
	}
	obj.SetLabels(labels)
	obj.SetAnnotations(cur.GetAnnotations())
	obj.SetResourceVersion(cur.GetResourceVersion())
	_, err = ri.Update(ctx, obj, metav1.UpdateOptions{FieldManager: ReportingController})
	return err
}
