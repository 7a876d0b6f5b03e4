package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kyvernov1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/engine"
)

// policyWebhook is the name of the policy admission webhook in metrics and logs.
const policyWebhook = "validate-policy"

// Admission is one request the engine evaluated, handed to Options.OnAdmission. It is
// read-only: the response is being written from it.
type Admission struct {
	Webhook  string // mutate or validate
	Request  *admissionv1.AdmissionRequest
	Response *engine.Response
	Decision engine.Decision
}

// admitPolicy answers /validate-policy: a kyverno.io ClusterPolicy or Policy being created or
// updated is checked by Options.CheckPolicy — the decoding and validation `vouch apply` uses —
// and denied with the same field-path messages when it is invalid, or admitted with warnings
// for the insecure settings it uses (Kyverno validates its policies at admission the same
// way, spec §1.6). Other kinds and operations are admitted untouched, as is a policy being
// deleted (only its finalizers may change).
func (s *Server) admitPolicy(_ context.Context, req *admissionv1.AdmissionRequest, _ time.Duration) (*admissionv1.AdmissionResponse, string, bool) {
	allow := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update || len(req.Object.Raw) == 0 {
		return allow, "allowed", false
	}
	if req.Kind.Group != kyvernov1.Group || (req.Kind.Kind != kyvernov1.KindClusterPolicy && req.Kind.Kind != kyvernov1.KindPolicy) {
		return allow, "allowed", false
	}
	var head struct {
		Metadata struct {
			DeletionTimestamp *metav1.Time `json:"deletionTimestamp"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &head); err == nil && head.Metadata.DeletionTimestamp != nil {
		return allow, "allowed", false
	}
	warnings, err := s.opts.CheckPolicy(req.Object.Raw)
	if err != nil {
		return &admissionv1.AdmissionResponse{
			UID: req.UID, Allowed: false, Warnings: warnings,
			Result: &metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonInvalid, Code: http.StatusUnprocessableEntity},
		}, "denied", false
	}
	allow.Warnings = warnings
	return allow, "allowed", false
}
