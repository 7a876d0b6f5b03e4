package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/policy"
)

// Reasons and actions of the Events vouch records on policies, as Kyverno names them.
const (
	ReasonPolicyViolation = "PolicyViolation"
	ActionBlocked         = "Resource Blocked"
	ActionPassed          = "Resource Passed"
)

const (
	// maxNote is the API server's limit on an Event's note (1 kB).
	maxNote = 1024
	// seriesFlushInterval is how often the counts of aggregated Events are written.
	seriesFlushInterval = 30 * time.Second
	// seriesCacheSize bounds the Events remembered for aggregation.
	seriesCacheSize = 1024
	// callTimeout bounds each API call.
	callTimeout = 5 * time.Second
)

// event is one Event to record.
type event struct {
	regarding corev1.ObjectReference
	related   *corev1.ObjectReference
	eventType string
	reason    string
	action    string
	note      string
}

// admissionEvents returns the Events of one admission (see Recorder.Admission). The note is
// Kyverno's (pkg/event buildPolicyEventMessage): "<Kind> <namespace>/<name>: [<rule>] <result>
// (blocked); <message>", the message naming the image and the cause (spec §8.2).
func admissionEvents(webhook string, req *admissionv1.AdmissionRequest, resp *engine.Response, d engine.Decision) []event {
	subject, related := resource(req, resp.Object)
	var out []event
	for _, res := range resp.Results {
		blocked := !d.Allowed && (res.Status == engine.Fail || res.Status == engine.Error && res.Policy.FailurePolicy == v1.Fail)
		audited := d.Allowed && webhook == "validate" && res.Status == engine.Warn
		if !blocked && !audited {
			continue
		}
		ref, ok := PolicyRef(res.Policy)
		if !ok {
			continue // a policy from a file: no object to hang the Event on
		}
		status := string(res.Status)
		if res.Status == engine.Warn {
			status = string(engine.Fail) // an Audit failure, reported as the failure it is
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: [%s] %s", subject, res.Rule.Name, status)
		action := ActionPassed
		if blocked {
			b.WriteString(" (blocked)")
			action = ActionBlocked
		}
		if res.Message != "" {
			fmt.Fprintf(&b, "; %s", res.Message)
		}
		out = append(out, event{regarding: ref, related: related, eventType: corev1.EventTypeWarning,
			reason: ReasonPolicyViolation, action: action, note: b.String()})
	}
	return out
}

// PolicyRef returns the object reference of a policy from the cluster, false for one from a
// file (which has no UID).
func PolicyRef(p *policy.Policy) (corev1.ObjectReference, bool) {
	if p == nil || p.API == nil || p.API.UID == "" {
		return corev1.ObjectReference{}, false
	}
	apiVersion := p.API.APIVersion
	if apiVersion == "" {
		apiVersion = v1.Group + "/" + v1.Version
	}
	ref := corev1.ObjectReference{APIVersion: apiVersion, Kind: p.Kind, Name: p.Name, UID: p.API.UID}
	if p.Kind == v1.KindPolicy {
		ref.Namespace = p.Namespace
	}
	return ref, true
}

// resource names the admitted resource for notes ("Pod default/app", with the generateName
// when the name is not assigned yet) and, when it has a name, returns its reference.
func resource(req *admissionv1.AdmissionRequest, obj map[string]any) (string, *corev1.ObjectReference) {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		name = req.Name
	}
	shown := name
	if shown == "" {
		gen, _ := meta["generateName"].(string)
		shown = gen + "*"
	}
	label := req.Kind.Kind + " " + shown
	if req.Namespace != "" {
		label = req.Kind.Kind + " " + req.Namespace + "/" + shown
	}
	if name == "" {
		return label, nil
	}
	uid, _ := meta["uid"].(string)
	gv := schema.GroupVersion{Group: req.Kind.Group, Version: req.Kind.Version}
	return label, &corev1.ObjectReference{APIVersion: gv.String(), Kind: req.Kind.Kind, Namespace: req.Namespace, Name: name, UID: types.UID(uid)}
}

// seriesKey identifies isomorphic Events (client-go's eventKey, with the note).
type seriesKey struct {
	regarding, related      corev1.ObjectReference
	eventType, reason, note string
	action                  string
}

// series is a recorded Event and how often it has occurred.
type series struct {
	name, namespace string
	count           int32
	last            time.Time
	dirty           bool // count changed since last written
}

type seriesCache struct {
	lru *simplelru.LRU[seriesKey, *series]
}

func newSeriesCache() *seriesCache {
	lru, _ := simplelru.NewLRU[seriesKey, *series](seriesCacheSize, nil)
	return &seriesCache{lru: lru}
}

// emit records an Event, or counts it in the series of an identical recent one.
func (r *Recorder) emit(ctx context.Context, ev event) {
	key := seriesKey{regarding: ev.regarding, eventType: ev.eventType, reason: ev.reason, note: ev.note, action: ev.action}
	if ev.related != nil {
		key.related = *ev.related
	}
	now := r.now()
	if s, ok := r.series.lru.Get(key); ok && now.Sub(s.last) < DefaultSeriesWindow {
		s.count++
		s.last, s.dirty = now, true
		r.events.WithLabelValues("aggregated").Inc()
		return
	}
	if !r.limiter.TryAccept() {
		r.events.WithLabelValues("rate-limited").Inc()
		return
	}
	ns := ev.regarding.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault // Events about cluster-scoped objects live in default
	}
	obj := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ev.regarding.Name, now.UnixNano()), Namespace: ns},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: ReportingController,
		ReportingInstance:   r.opts.Instance,
		Action:              ev.action,
		Reason:              ev.reason,
		Regarding:           ev.regarding,
		Related:             ev.related,
		Note:                truncate(ev.note, maxNote),
		Type:                ev.eventType,
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	created, err := r.opts.Events.Events(ns).Create(cctx, obj, metav1.CreateOptions{})
	if err != nil {
		r.events.WithLabelValues("failed").Inc()
		r.log.Warn("recording an Event", "reason", ev.reason, "regarding", ev.regarding.Kind+"/"+ev.regarding.Name, "err", err)
		return
	}
	r.events.WithLabelValues("created").Inc()
	r.series.lru.Add(key, &series{name: created.Name, namespace: ns, count: 1, last: now})
}

// flushSeries writes the counts of the Events that occurred again since the last flush, as
// client-go's broadcaster does: series.count and series.lastObservedTime.
func (r *Recorder) flushSeries(ctx context.Context) {
	if r.opts.Events == nil {
		return
	}
	for _, key := range r.series.lru.Keys() {
		s, ok := r.series.lru.Peek(key)
		if !ok || !s.dirty {
			continue
		}
		patch, err := json.Marshal(map[string]any{"series": eventsv1.EventSeries{Count: s.count, LastObservedTime: metav1.NewMicroTime(s.last)}})
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err = r.opts.Events.Events(s.namespace).Patch(cctx, s.name, types.MergePatchType, patch, metav1.PatchOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			r.series.lru.Remove(key) // expired or deleted: the next occurrence starts anew
		case err != nil:
			r.log.Warn("updating an Event series", "event", s.namespace+"/"+s.name, "err", err)
		default:
			s.dirty = false
		}
	}
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
