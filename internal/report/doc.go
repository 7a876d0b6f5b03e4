// Package report turns engine results into what people and tools read: the `vouch apply`
// report (DESIGN §4: an aligned table, JSON, or YAML followed by the mutated resources), with
// one result per (policy, rule, resource) and a summary of pass/fail/warn/error/skip counts.
package report
