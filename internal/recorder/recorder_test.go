package recorder

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/report"
)

const policies = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: signed, uid: 11111111-2222-3333-4444-555555555555, annotations: {policies.kyverno.io/severity: high}}
spec:
  validationFailureAction: Enforce
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false}]
---
apiVersion: kyverno.io/v1
kind: Policy
metadata: {name: audited, namespace: team, uid: 66666666-7777-8888-9999-000000000000}
spec:
  validationFailureAction: Audit
  rules:
  - name: check-digest
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false}]
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: from-a-file}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false}]
`

func compiled(t *testing.T) map[string]*policy.Policy {
	t.Helper()
	docs, err := manifest.Split("p.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*policy.Policy{}
	for _, p := range set.Policies() {
		out[p.Name] = p
	}
	return out
}

func result(p *policy.Policy, status engine.Status, msg string) engine.RuleResult {
	return engine.RuleResult{Policy: p, Rule: p.Rules[0], Status: status, Message: msg}
}

const podUID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

func pod(namespace string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "app", "namespace": namespace, "uid": podUID}}
}

func request(uid, op, namespace string) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{UID: k8stypes.UID("req-" + uid), Operation: admissionv1.Operation(op), Namespace: namespace, Name: "app",
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}}
}

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newRecorder(t *testing.T, opts Options) *Recorder {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.Instance = "vouch-test"
	if opts.Now == nil {
		opts.Now = func() time.Time { return now }
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func listEvents(t *testing.T, kube *kubefake.Clientset, namespace string) []eventsv1.Event {
	t.Helper()
	list, err := kube.EventsV1().Events(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// TestDenialBecomesAnEventOnThePolicy checks the Event of a denial (Kyverno's PolicyViolation
// on the policy, naming resource, rule, image and cause), its aggregation into a series, and
// that dry-run requests and file policies leave none.
func TestDenialBecomesAnEventOnThePolicy(t *testing.T) {
	ps := compiled(t)
	kube := kubefake.NewSimpleClientset()
	clock := now
	r := newRecorder(t, Options{Events: kube.EventsV1(), Now: func() time.Time { return clock }})
	cause := "failed to verify image ghcr.io/org/app:1: .attestors[0].entries[0].keys: no signatures found"
	resp := &engine.Response{Object: pod("default"), Results: []engine.RuleResult{
		result(ps["signed"], engine.Fail, cause),
		result(ps["from-a-file"], engine.Fail, cause),
	}}
	denied := engine.Decision{Allowed: false, Message: "blocked"}
	r.Admission("mutate", request("1", "CREATE", "default"), resp, denied)
	dry := true
	dryReq := request("2", "CREATE", "default")
	dryReq.DryRun = &dry
	r.Admission("mutate", dryReq, resp, denied)
	r.Flush(context.Background())

	events := listEvents(t, kube, "default")
	if len(events) != 1 {
		t.Fatalf("%d Events, want 1 (the file policy has no object, the dry run leaves no trace): %+v", len(events), events)
	}
	ev := events[0]
	want := eventsv1.Event{
		Regarding: corev1.ObjectReference{APIVersion: "kyverno.io/v1", Kind: "ClusterPolicy", Name: "signed", UID: "11111111-2222-3333-4444-555555555555"},
		Related:   &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: "default", Name: "app", UID: podUID},
		Reason:    ReasonPolicyViolation, Action: ActionBlocked, Type: corev1.EventTypeWarning,
		ReportingController: "vouch", ReportingInstance: "vouch-test",
		Note: "Pod default/app: [check-signature] fail (blocked); " + cause,
	}
	got := eventsv1.Event{Regarding: ev.Regarding, Related: ev.Related, Reason: ev.Reason, Action: ev.Action, Type: ev.Type,
		ReportingController: ev.ReportingController, ReportingInstance: ev.ReportingInstance, Note: ev.Note}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Event (-want +got):\n%s", diff)
	}
	if ev.EventTime.IsZero() || ev.Series != nil {
		t.Errorf("eventTime %v, series %v", ev.EventTime, ev.Series)
	}

	// The same denial twice more within the series window: one Event with a series of 3.
	for i := 0; i < 2; i++ {
		clock = clock.Add(time.Minute)
		r.Admission("mutate", request("3", "CREATE", "default"), resp, denied)
	}
	r.Flush(context.Background())
	events = listEvents(t, kube, "default")
	if len(events) != 1 || events[0].Series == nil || events[0].Series.Count != 3 || !events[0].Series.LastObservedTime.Time.Equal(clock) {
		t.Fatalf("after 3 identical denials: %d Events, series %+v", len(events), events[0].Series)
	}
	if c, a := testutil.ToFloat64(r.events.WithLabelValues("created")), testutil.ToFloat64(r.events.WithLabelValues("aggregated")); c != 1 || a != 2 {
		t.Errorf("vouch_events_total created=%v aggregated=%v, want 1 and 2", c, a)
	}
	// Past the window, the denial starts a new Event.
	clock = clock.Add(DefaultSeriesWindow + time.Second)
	r.Admission("mutate", request("4", "CREATE", "default"), resp, denied)
	r.Flush(context.Background())
	if n := len(listEvents(t, kube, "default")); n != 2 {
		t.Errorf("%d Events after the series window, want 2", n)
	}
}

func TestEventsAreBoundedAndNeverBlock(t *testing.T) {
	ps := compiled(t)
	kube := kubefake.NewSimpleClientset()
	r := newRecorder(t, Options{Events: kube.EventsV1(), QueueSize: 2, EventsPerSecond: 0.001, EventBurst: 1})
	denied := engine.Decision{Allowed: false}
	start := time.Now()
	for i := 0; i < 5; i++ { // Run is not running: the queue fills
		resp := &engine.Response{Object: pod("default"), Results: []engine.RuleResult{result(ps["signed"], engine.Fail, "cause "+string(rune('a'+i)))}}
		r.Admission("mutate", request("x", "CREATE", "default"), resp, denied)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Admission blocked for %v", d)
	}
	if n := testutil.ToFloat64(r.events.WithLabelValues("queue-full")); n != 3 {
		t.Errorf("queue-full drops = %v, want 3", n)
	}
	r.Flush(context.Background())
	if c, l := testutil.ToFloat64(r.events.WithLabelValues("created")), testutil.ToFloat64(r.events.WithLabelValues("rate-limited")); c != 1 || l != 1 {
		t.Errorf("created=%v rate-limited=%v, want 1 and 1 (burst 1)", c, l)
	}
}

func reportsClient() *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		report.PolicyReports: "PolicyReportList", report.ClusterPolicyReports: "ClusterPolicyReportList",
	})
}

// TestAuditResultsBecomeAPolicyReport checks that an admitted resource gets one PolicyReport,
// owned by it, with one result per (policy, rule) — an Audit violation as "fail" — replaced on
// the next admission of the resource; and an Event for the Audit violation.
func TestAuditResultsBecomeAPolicyReport(t *testing.T) {
	ps := compiled(t)
	kube := kubefake.NewSimpleClientset()
	dyn := reportsClient()
	r := newRecorder(t, Options{Events: kube.EventsV1(), Dynamic: dyn})
	resp := &engine.Response{Object: pod("team"), Results: []engine.RuleResult{
		result(ps["signed"], engine.Pass, "image verified"),
		result(ps["audited"], engine.Warn, "missing digest for ghcr.io/org/app:1"),
	}}
	allowed := engine.Decision{Allowed: true}
	r.Admission("mutate", request("1", "CREATE", "team"), resp, allowed) // the mutating webhook writes no report
	r.Admission("validate", request("1", "CREATE", "team"), resp, allowed)
	r.Flush(context.Background())

	got, err := dyn.Resource(report.PolicyReports).Namespace("team").Get(context.Background(), "vouch-"+podUID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetLabels()[report.LabelManagedBy] != "vouch" || len(got.GetOwnerReferences()) != 1 || string(got.GetOwnerReferences()[0].UID) != podUID ||
		got.GetOwnerReferences()[0].Kind != "Pod" {
		t.Errorf("report metadata: labels %v, owners %+v", got.GetLabels(), got.GetOwnerReferences())
	}
	scope, _, _ := unstructured.NestedMap(got.Object, "scope")
	if diff := cmp.Diff(map[string]any{"apiVersion": "v1", "kind": "Pod", "namespace": "team", "name": "app", "uid": podUID}, scope); diff != "" {
		t.Errorf("scope (-want +got):\n%s", diff)
	}
	summary, _, _ := unstructured.NestedMap(got.Object, "summary")
	if summary["pass"] != int64(1) || summary["fail"] != int64(1) {
		t.Errorf("summary %v", summary)
	}
	results, _, _ := unstructured.NestedSlice(got.Object, "results")
	var brief []string
	for _, x := range results {
		m := x.(map[string]any)
		brief = append(brief, strings.Join([]string{m["source"].(string), m["policy"].(string), m["rule"].(string), m["result"].(string), m["message"].(string)}, " | "))
		if ts := m["timestamp"].(map[string]any); ts["seconds"] != now.Unix() {
			t.Errorf("timestamp %v", ts)
		}
	}
	want := []string{
		"vouch | signed | check-signature | pass | image verified",
		"vouch | team/audited | check-digest | fail | missing digest for ghcr.io/org/app:1",
	}
	if diff := cmp.Diff(want, brief); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if sev := results[0].(map[string]any)["severity"]; sev != "high" {
		t.Errorf("severity from policies.kyverno.io/severity = %v", sev)
	}
	events := listEvents(t, kube, "team")
	if len(events) != 1 || events[0].Action != ActionPassed || events[0].Regarding.Kind != "Policy" || events[0].Regarding.Namespace != "team" ||
		events[0].Note != "Pod team/app: [check-digest] fail; missing digest for ghcr.io/org/app:1" {
		t.Errorf("Audit Event: %+v", events)
	}

	// The next admission of the resource replaces its results.
	resp2 := &engine.Response{Object: pod("team"), Results: []engine.RuleResult{result(ps["audited"], engine.Pass, "image verified")}}
	r.Admission("validate", request("2", "UPDATE", "team"), resp2, allowed)
	r.Flush(context.Background())
	got, err = dyn.Resource(report.PolicyReports).Namespace("team").Get(context.Background(), "vouch-"+podUID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	results, _, _ = unstructured.NestedSlice(got.Object, "results")
	if len(results) != 1 || results[0].(map[string]any)["result"] != "pass" {
		t.Errorf("results after the update: %v", results)
	}
	if w := testutil.ToFloat64(r.reports.WithLabelValues("written")); w != 2 {
		t.Errorf("vouch_policy_reports_total{written} = %v, want 2", w)
	}
}

func TestClusterScopedResourceGetsAClusterPolicyReport(t *testing.T) {
	ps := compiled(t)
	dyn := reportsClient()
	r := newRecorder(t, Options{Dynamic: dyn})
	obj := map[string]any{"apiVersion": "example.io/v1", "kind": "Runner", "metadata": map[string]any{"name": "app", "uid": podUID}}
	req := &admissionv1.AdmissionRequest{UID: "r", Operation: admissionv1.Create, Name: "app", Kind: metav1.GroupVersionKind{Group: "example.io", Version: "v1", Kind: "Runner"}}
	r.Admission("validate", req, &engine.Response{Object: obj, Results: []engine.RuleResult{result(ps["signed"], engine.Pass, "ok")}}, engine.Decision{Allowed: true})
	r.Flush(context.Background())
	got, err := dyn.Resource(report.ClusterPolicyReports).Get(context.Background(), "vouch-"+podUID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetKind() != "ClusterPolicyReport" || got.GetOwnerReferences()[0].APIVersion != "example.io/v1" {
		t.Errorf("report %v", got.Object)
	}
}

func TestPolicyEventAndNoteLimit(t *testing.T) {
	kube := kubefake.NewSimpleClientset()
	r := newRecorder(t, Options{Events: kube.EventsV1()})
	ref := corev1.ObjectReference{APIVersion: "kyverno.io/v1", Kind: "ClusterPolicy", Name: "p", UID: "u"}
	r.PolicyEvent(ref, corev1.EventTypeWarning, "InsecurePolicy", "Load", strings.Repeat("é", 2000))
	r.Flush(context.Background())
	events := listEvents(t, kube, "default")
	if len(events) != 1 || len(events[0].Note) > maxNote || !strings.HasSuffix(events[0].Note, "…") || events[0].Reason != "InsecurePolicy" {
		t.Fatalf("events %+v", events)
	}
}

func TestRunStopsAndFlushes(t *testing.T) {
	ps := compiled(t)
	dyn := reportsClient()
	r := newRecorder(t, Options{Dynamic: dyn, ReportInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	r.Admission("validate", request("1", "CREATE", "default"), &engine.Response{Object: pod("default"), Results: []engine.RuleResult{result(ps["signed"], engine.Pass, "ok")}}, engine.Decision{Allowed: true})
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := dyn.Resource(report.PolicyReports).Namespace("default").Get(context.Background(), "vouch-"+podUID, metav1.GetOptions{}); err != nil {
		t.Errorf("pending report not written on shutdown: %v", err)
	}
}

// TestScannedResultsBecomeAPolicyReport: a background scan's results replace the resource's
// report, marked process "background scan"; with the queue full, Scanned waits for room until
// its context ends (a scan slows down rather than silently losing results), then counts a drop.
func TestScannedResultsBecomeAPolicyReport(t *testing.T) {
	ps := compiled(t)
	dyn := reportsClient()
	r := newRecorder(t, Options{Dynamic: dyn, QueueSize: 1})
	s := report.Subject{APIVersion: "v1", Kind: "Pod", Namespace: "team", Name: "app", UID: podUID}
	ctx := context.Background()
	r.Scanned(ctx, s, []engine.RuleResult{result(ps["signed"], engine.Fail, "no signatures found")})
	r.Flush(ctx)
	got, err := dyn.Resource(report.PolicyReports).Namespace("team").Get(ctx, "vouch-"+podUID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	results, _, _ := unstructured.NestedSlice(got.Object, "results")
	if len(results) != 1 {
		t.Fatalf("results %v", results)
	}
	res := results[0].(map[string]any)
	if process, _, _ := unstructured.NestedString(res, "properties", "process"); res["result"] != "fail" || process != report.ProcessBackground {
		t.Errorf("result %v, want fail from process %q", res, report.ProcessBackground)
	}

	r.Scanned(ctx, s, []engine.RuleResult{result(ps["signed"], engine.Pass, "ok")}) // fills the queue
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Scanned(short, s, []engine.RuleResult{result(ps["signed"], engine.Pass, "ok")})
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Errorf("Scanned returned after %v with the queue full, want it to wait for its context", waited)
	}
	if n := testutil.ToFloat64(r.reports.WithLabelValues("queue-full")); n != 1 {
		t.Errorf("vouch_policy_reports_total{queue-full} = %v, want 1", n)
	}
}
