// Package recorder publishes what vouch decided to the cluster, off the admission path:
// Kubernetes Events (events.k8s.io/v1) on policy objects — a denial names the resource, rule,
// image and cause as Kyverno's PolicyViolation events do — and wgpolicyk8s.io/v1alpha2
// PolicyReports, one per admitted resource, as Kyverno writes them since 1.10.
//
// The webhook hands over each evaluated request with a non-blocking send to a bounded queue;
// when the queue is full the request is dropped and counted. Events are rate-limited (a token
// bucket; beyond it they are dropped and counted) and aggregated: an Event identical to one
// recorded in the last few minutes (same policy, resource, reason and note) becomes a series
// whose count is patched periodically, the way client-go's event broadcaster does. Reports
// are batched: the latest results of each resource are kept and written every interval, so a
// burst of admissions of one resource costs one write.
//
// Writes go through the clients given: Events need create and patch on events
// (events.k8s.io); reports need get, create and update on policyreports and
// clusterpolicyreports (wgpolicyk8s.io). The chart's ClusterRole must grant exactly these:
//
//	rules:
//	  - {apiGroups: [events.k8s.io], resources: [events], verbs: [create, patch]}
//	  - {apiGroups: [wgpolicyk8s.io], resources: [policyreports, clusterpolicyreports], verbs: [get, create, update]}
package recorder
