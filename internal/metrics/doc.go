// Package metrics exposes vouch's own counters to Prometheus: the verification cache's
// statistics (cache.Stats, read at each scrape), the registry requests its transport counted
// (registry.Counter, by registry host, kind of request, method and HTTP status — never a URL,
// a path or a credential), and the verifications the engine ran (an engine.Observer, by
// verification type, discovery route and result). Nothing is registered globally: every
// collector goes to the prometheus.Registerer it is given.
//
// The webhook's request metrics (vouch_admission_duration_seconds, vouch_policy_results_total,
// vouch_admissions_in_flight, vouch_admissions_overloaded_total),
// the policy source's (vouch_policies, vouch_policy_insecure_settings) and the recorder's
// (vouch_events_total, vouch_policy_reports_total) are defined by their own packages.
package metrics
