package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kyvernov1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/engine"
)

// phase says which webhook a request came in on.
type phase string

const (
	mutating   phase = "mutate"
	validating phase = "validate"
)

// review is an AdmissionReview in the version it was asked in.
type review struct {
	apiVersion string // admission.k8s.io/v1 or admission.k8s.io/v1beta1
	request    *admissionv1.AdmissionRequest
}

// serveAdmission is the handler of /mutate and /validate.
func (s *Server) serveAdmission(p phase) http.HandlerFunc {
	return s.serveReview(string(p), func(ctx context.Context, req *admissionv1.AdmissionRequest, limit time.Duration) (*admissionv1.AdmissionResponse, string, bool) {
		return s.admit(ctx, p, req, limit)
	})
}

// admitFunc answers one decoded request, with the outcome label for metrics and logs, and
// whether it was answered as overloaded (see Options.MaxAdmissionsInFlight).
type admitFunc func(ctx context.Context, req *admissionv1.AdmissionRequest, limit time.Duration) (resp *admissionv1.AdmissionResponse, outcome string, overloaded bool)

// serveReview is the handler of every AdmissionReview route. Every request gets a well-formed
// AdmissionReview back, in the version it was asked in (v1 when that cannot be told), as
// controller-runtime's handler does: bad bodies, wrong content types and panics included.
// Every request is timed and logged once with its UID.
func (s *Server) serveReview(name string, admit admitFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rev := review{apiVersion: admissionv1.SchemeGroupVersion.String()}
		outcome := "error"
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic while handling an admission request", "webhook", name, "uid", uid(rev), "panic", v, "stack", string(debug.Stack()))
				s.write(w, rev, errored(rev, http.StatusInternalServerError, "internal error while evaluating the request"))
			}
			s.metrics.observe(name, outcome, time.Since(start))
		}()
		var err error
		if rev, err = s.decode(r); err != nil {
			s.log.Warn("malformed admission request", "webhook", name, "uid", uid(rev), "err", err)
			s.write(w, rev, errored(rev, http.StatusBadRequest, err.Error()))
			return
		}
		resp, result, overloaded := admit(r.Context(), rev.request, budget(r))
		outcome = result
		if overloaded {
			s.overloaded(name)
		}
		s.logOutcome(name, rev.request, resp, outcome, overloaded, time.Since(start))
		s.write(w, rev, resp)
	}
}

// logOutcome writes the one log line of an answered request: at info level for answers, at
// warn level when the request could not be handled (error, not-ready), at debug level for
// answers given while overloaded (they come by the thousand in a storm; s.overloaded logs a
// summary at warn level instead).
func (s *Server) logOutcome(name string, req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse, outcome string, overloaded bool, took time.Duration) {
	if overloaded && !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []any{"webhook", name, "uid", req.UID, "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name,
		"operation", req.Operation, "outcome", outcome, "allowed", resp.Allowed, "durationMs", took.Milliseconds()}
	if len(resp.Warnings) > 0 {
		attrs = append(attrs, "warnings", len(resp.Warnings))
	}
	if resp.Result != nil && resp.Result.Message != "" {
		attrs = append(attrs, "message", resp.Result.Message)
	}
	switch {
	case outcome == "error" || outcome == "not-ready":
		s.log.Warn("admission request not evaluated", attrs...)
	case overloaded:
		s.log.Debug("admission", append(attrs, "overloaded", true)...)
	default:
		s.log.Info("admission", attrs...)
	}
}

// overloadLogInterval is the least time between two warnings that vouch is overloaded.
const overloadLogInterval = 10 * time.Second

// overloaded counts a request answered as overloaded, and logs at warn level how many were
// since the last such warning, at most once per overloadLogInterval (the first at once).
func (s *Server) overloaded(webhook string) {
	s.metrics.overloaded.WithLabelValues(webhook).Inc()
	s.overloads.Add(1)
	now, last := time.Now().UnixNano(), s.overloadLogged.Load()
	if now-last < int64(overloadLogInterval) || !s.overloadLogged.CompareAndSwap(last, now) {
		return
	}
	since := "the last warning"
	if last == 0 {
		since = "start"
	}
	s.log.Warn("vouch is overloaded: admissions beyond the bound answered at once, images that need the registry as could-not-verify",
		"overloaded", s.overloads.Swap(0), "since", since, "maxAdmissionsInFlight", s.opts.MaxAdmissionsInFlight)
}

// acquire takes a place among the admissions in flight; ok is false when all are taken
// (Options.MaxAdmissionsInFlight), and then nothing was taken. release gives the place back.
func (s *Server) acquire() (release func(), ok bool) {
	limit := int64(s.opts.MaxAdmissionsInFlight)
	for {
		n := s.inFlight.Load()
		if limit > 0 && n >= limit {
			return nil, false
		}
		if s.inFlight.CompareAndSwap(n, n+1) {
			return func() { s.inFlight.Add(-1) }, true
		}
	}
}

// decode reads and checks the request; on error the returned review still says which
// version to answer in when that could be read.
func (s *Server) decode(r *http.Request) (review, error) {
	rev := review{apiVersion: admissionv1.SchemeGroupVersion.String()}
	if r.Method != http.MethodPost {
		return rev, fmt.Errorf("method %s, expected POST", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return rev, fmt.Errorf("contentType=%s, expected application/json", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if err != nil {
		return rev, fmt.Errorf("reading the request body: %w", err)
	}
	if int64(len(body)) > s.maxBody {
		return rev, fmt.Errorf("request body is larger than %d bytes", s.maxBody)
	}
	if len(body) == 0 {
		return rev, errors.New("request body is empty")
	}
	// The version alone first, so that a request whose other fields do not decode is
	// still answered in the version it asked for.
	var head struct {
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return rev, fmt.Errorf("decoding the AdmissionReview: %w", err)
	}
	var kind string
	switch head.APIVersion {
	case admissionv1beta1.SchemeGroupVersion.String():
		rev.apiVersion = head.APIVersion
		var in admissionv1beta1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil {
			rev.request = requestUID(body)
			return rev, fmt.Errorf("decoding the AdmissionReview: %w", err)
		}
		if in.Request == nil {
			return rev, errors.New("the AdmissionReview has no request")
		}
		rev.request, kind = fromV1beta1(in.Request), in.Kind
	case admissionv1.SchemeGroupVersion.String():
		var in admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil {
			rev.request = requestUID(body)
			return rev, fmt.Errorf("decoding the AdmissionReview: %w", err)
		}
		if in.Request == nil {
			return rev, errors.New("the AdmissionReview has no request")
		}
		rev.request, kind = in.Request, in.Kind
	default:
		return rev, fmt.Errorf("apiVersion %q, expected admission.k8s.io/v1 or v1beta1", head.APIVersion)
	}
	if kind != "AdmissionReview" {
		return rev, fmt.Errorf("kind %q, expected AdmissionReview", kind)
	}
	return rev, nil
}

// requestUID returns a request holding only the UID of a review that does not decode, when
// its request.uid can still be read (nil otherwise), so that the denial answers that request:
// the API server then reports vouch's reason instead of a UID mismatch, which its
// failurePolicy would decide.
func requestUID(body []byte) *admissionv1.AdmissionRequest {
	var in struct {
		Request *struct {
			UID types.UID `json:"uid"`
		} `json:"request"`
	}
	if json.Unmarshal(body, &in) != nil || in.Request == nil || in.Request.UID == "" {
		return nil
	}
	return &admissionv1.AdmissionRequest{UID: in.Request.UID}
}

// budget is the time the engine may spend: the API server's timeout for the call (its
// ?timeout= query parameter) minus a margin to answer in, never more than 30 s.
func budget(r *http.Request) time.Duration {
	timeout := 10 * time.Second
	if d, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && d > 0 {
		timeout = d
	}
	if timeout > 30*time.Second {
		timeout = 30 * time.Second
	}
	margin := timeout / 10
	if margin < 500*time.Millisecond {
		margin = 500 * time.Millisecond
	}
	if timeout-margin < 100*time.Millisecond {
		return 100 * time.Millisecond
	}
	return timeout - margin
}

// admit evaluates one request and builds the response, with the outcome label for metrics
// and whether it was answered as overloaded.
//
// Beyond Options.MaxAdmissionsInFlight the request is still evaluated — matching, extraction
// and the cache cost microseconds — but with its budget already spent, the overload as the
// cause: nothing waits for the registry, a worker or another request's verification, so an
// image that needs any of them is "could not verify image …: vouch is overloaded (…)", and
// each policy's failurePolicy decides, as for a registry outage (Fail denies, Ignore admits
// with a warning). A request no policy matches is allowed, and a cached verification of an
// image given by digest still passes. Nothing unverified is ever admitted under Fail.
func (s *Server) admit(ctx context.Context, p phase, req *admissionv1.AdmissionRequest, limit time.Duration) (*admissionv1.AdmissionResponse, string, bool) {
	allow := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	eng := s.engine()
	if eng == nil {
		// Not ready: the API server's failurePolicy decides (the probe keeps us out of the
		// Service until policies are loaded).
		return errored(review{request: req}, http.StatusServiceUnavailable, "vouch is not ready: policies are not loaded yet"), "not-ready", false
	}
	if req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect || len(req.Object.Raw) == 0 {
		return allow, "allowed", false
	}
	var obj map[string]any
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return errored(review{request: req}, http.StatusBadRequest, "decoding the object: "+err.Error()), "error", false
	}
	var old map[string]any
	if len(req.OldObject.Raw) > 0 {
		_ = json.Unmarshal(req.OldObject.Raw, &old)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	release, ok := s.acquire()
	overloaded := !ok
	if ok {
		defer release()
	} else {
		var cancelSpent context.CancelFunc
		ctx, cancelSpent = context.WithDeadlineCause(ctx, time.Now(), s.overload)
		defer cancelSpent()
	}
	resp, err := eng.Evaluate(ctx, engine.Request{
		Object:          obj,
		OldObject:       old,
		Operation:       kyvernov1.AdmissionOperation(strings.ToUpper(string(req.Operation))),
		Subresource:     req.SubResource,
		NamespaceLabels: s.namespaceLabels(req.Namespace),
		User:            s.userInfo(req),
		Admission:       admissionFields(req),
	})
	if err != nil {
		return errored(review{request: req}, http.StatusInternalServerError, "evaluating: "+err.Error()), "error", overloaded
	}
	d := resp.Decide()
	out := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: d.Allowed, Warnings: d.Warnings}
	s.metrics.results(string(p), resp)
	if s.opts.OnAdmission != nil {
		s.opts.OnAdmission(Admission{Webhook: string(p), Request: req, Response: resp, Decision: d})
	}
	if !d.Allowed {
		out.Result = &metav1.Status{Status: metav1.StatusFailure, Message: d.Message, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden}
		return out, "denied", overloaded
	}
	if p == mutating && len(resp.Patches) > 0 {
		raw, err := json.Marshal(resp.Patches)
		if err != nil {
			return errored(review{request: req}, http.StatusInternalServerError, "encoding the patch: "+err.Error()), "error", overloaded
		}
		pt := admissionv1.PatchTypeJSONPatch
		out.Patch, out.PatchType = raw, &pt
	}
	return out, "allowed", overloaded
}

// errored is an AdmissionResponse that denies because the request could not be handled.
func errored(rev review, code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		UID:     types.UID(uid(rev)),
		Allowed: false,
		Result:  &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg},
	}
}

func uid(rev review) string {
	if rev.request == nil {
		return ""
	}
	return string(rev.request.UID)
}

// write answers with an AdmissionReview in the version the request used.
func (s *Server) write(w http.ResponseWriter, rev review, resp *admissionv1.AdmissionResponse) {
	var out any
	if rev.apiVersion == admissionv1beta1.SchemeGroupVersion.String() {
		out = &admissionv1beta1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: rev.apiVersion, Kind: "AdmissionReview"},
			Response: toV1beta1(resp),
		}
	} else {
		out = &admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
			Response: resp,
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "encoding the response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(body); err != nil {
		s.log.Debug("writing the admission response", "err", err)
	}
}

func (s *Server) userInfo(req *admissionv1.AdmissionRequest) *engine.User {
	return &engine.User{Username: req.UserInfo.Username, Groups: req.UserInfo.Groups, LookupRoles: s.opts.Roles}
}

// fromV1beta1 converts a v1beta1 request; the two versions have the same fields.
func fromV1beta1(in *admissionv1beta1.AdmissionRequest) *admissionv1.AdmissionRequest {
	out := &admissionv1.AdmissionRequest{}
	if data, err := json.Marshal(in); err == nil {
		_ = json.Unmarshal(data, out)
	}
	return out
}

// toV1beta1 converts a response to v1beta1.
func toV1beta1(in *admissionv1.AdmissionResponse) *admissionv1beta1.AdmissionResponse {
	out := &admissionv1beta1.AdmissionResponse{}
	if data, err := json.Marshal(in); err == nil {
		_ = json.Unmarshal(data, out)
	}
	return out
}

// admissionFields are the AdmissionRequest fields the engine does not read itself, as JSON
// values, for the `request` variable of policies (Kyverno puts the whole AdmissionRequest
// there).
func admissionFields(req *admissionv1.AdmissionRequest) map[string]any {
	gvr := func(group, version, resource string) map[string]any {
		return map[string]any{"group": group, "version": version, "resource": resource}
	}
	out := map[string]any{
		"uid":         string(req.UID),
		"resource":    gvr(req.Resource.Group, req.Resource.Version, req.Resource.Resource),
		"subResource": req.SubResource,
		"dryRun":      req.DryRun != nil && *req.DryRun,
	}
	if k := req.RequestKind; k != nil {
		out["requestKind"] = map[string]any{"group": k.Group, "version": k.Version, "kind": k.Kind}
	}
	if r := req.RequestResource; r != nil {
		out["requestResource"] = gvr(r.Group, r.Version, r.Resource)
	}
	if req.RequestSubResource != "" {
		out["requestSubResource"] = req.RequestSubResource
	}
	if len(req.Options.Raw) > 0 {
		var options any
		if json.Unmarshal(req.Options.Raw, &options) == nil {
			out["options"] = options
		}
	}
	return out
}
