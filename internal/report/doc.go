// Package report turns engine results into what people and tools read: the `vouch apply`
// report (DESIGN §4: an aligned table, JSON, or YAML followed by the mutated resources), with
// one result per (policy, rule, resource) and a summary of pass/fail/warn/error/skip counts;
// and the wgpolicyk8s.io/v1alpha2 PolicyReport of one admitted resource (PolicyReport), which
// internal/recorder writes to the cluster.
package report
