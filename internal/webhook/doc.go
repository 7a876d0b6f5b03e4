// Package webhook is vouch's admission webhook server: HTTPS with certificates reloaded on
// change (or a self-signed pair for a quick try), /mutate and /validate answering
// AdmissionReview v1 (and v1beta1, in the version asked), /validate-policy (kyverno.io
// policies checked as `vouch apply` checks them, with warnings for insecure settings),
// /healthz, /readyz (ready once policies are loaded, not while draining) and /metrics.
//
// Every answered request is logged once, as JSON through log/slog, with its UID and outcome,
// and timed in vouch_admission_duration_seconds; rule results are counted in
// vouch_policy_results_total. Each evaluated request is handed to Options.OnAdmission (Events
// and PolicyReports are written from there, off the admission path).
//
// Admissions evaluated at once are bounded (Options.MaxAdmissionsInFlight, counted in
// vouch_admissions_in_flight): a request beyond the bound never queues. It is evaluated at once
// with its budget already spent, so cached verifications still answer and every image that
// needs the registry is "could not verify image …: vouch is overloaded (N admissions in
// flight)", for each policy's failurePolicy to decide, as for a registry outage. Such answers
// are counted in vouch_admissions_overloaded_total and logged at debug level, with one warning
// at most every 10 s saying how many there were.
//
// The handler is hardened as controller-runtime's is: bodies are capped, the content type is
// checked, panics become error responses carrying the request UID, and every malformed
// request still gets a well-formed AdmissionReview. Each request gets a budget derived from
// the API server's own timeout for the call, so vouch answers before the API server gives up.
//
// Both webhooks run the engine's full evaluation: the mutating webhook returns the digest
// pins and annotations as a JSON patch; the validating webhook re-verifies (through the
// digest-keyed verification cache) and so never trusts a verification annotation the request
// carries. The package sees only internal/engine (DESIGN §2).
package webhook
