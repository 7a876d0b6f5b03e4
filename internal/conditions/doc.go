// Package conditions owns Kyverno's conditions language as verifyImages uses it: any/all blocks of
// {key, operator, value, message} conditions, `{{ }}` variable substitution with JMESPath (and
// Kyverno's custom JMESPath functions), and Kyverno's operators with their type coercions
// (spec/kyverno-verifyimages.md §3.12.2, §3.13, §3.14).
//
// Policies are compiled once — Compile for attestations[].conditions, CompileDeny for
// validate.deny.conditions, CompileTemplate for messages — and compile errors name the field
// (…conditions[0].all[1].operator: unknown operator "Equalz"). Compiled values are immutable
// and safe for concurrent use; Evaluate runs them against one JSON document (encoding/json
// shapes: map[string]any, []any, string, float64, bool, nil). For attestations that document
// is AttestationDocument(context, statement): the predicate's keys merged into the context root.
//
// Evaluation fails closed: a variable that does not resolve (Kyverno's "Unknown key" rule: a
// key missing from an object is an error, a null is not), an expression error or an exhausted
// budget is an error wrapping ErrSubstitution or ErrBudget, never a silent pass or empty value.
//
// Bounds: documents are attacker-controlled (the payload of a signed attestation), so their size
// is capped by the caller (the registry and verify packages cap payload bytes). Here every
// evaluation has a step budget (maxSteps JMESPath node and element visits), functions that can
// amplify their input (split, replace, regex_replace_all, pad_left, base64_encode, items, ...)
// check their output size against maxStringBytes before allocating it, and wildcard matching
// is linear, so a hostile predicate cannot make a condition run long or allocate without bound.
//
// Deviations from Kyverno, each deliberate (for docs/COMPATIBILITY.md):
//   - text produced by a substitution is never scanned for `{{ }}` again: Kyverno re-substitutes
//     results (attestation conditions twice), which lets a signed predicate inject expressions
//     into the policy;
//   - in AttestationDocument the context wins over predicate keys of the same name (Kyverno's
//     deep merge lets the predicate shadow `request`, `images` or another attestation's entry);
//   - operator names are case-insensitive throughout: Kyverno dispatches case-insensitively but
//     its numeric and Duration* comparisons return false for non-canonical spellings, so a
//     lower-case deny condition could never deny;
//   - NotIn(["a"], "a") is false (Kyverno: true);
//   - wildcards match exactly as go-wildcard v1.0.3 does, without its exponential backtracking;
//   - custom functions return float64 numbers (Kyverno's compare returns int), items returns a
//     JMESPath array, label_match compares values deeply (Kyverno panics on object values),
//     sort_by does not sort the document in place, obj.* lists values in key order (Kyverno: map
//     order), and a function given the wrong number of arguments fails at compile time;
//   - `{{ @ }}` is the document root: Kyverno rewrites it to the path of a validate/mutate
//     pattern, which conditions do not have;
//   - not provided (compile error): random, x509_decode, image_normalize (nondeterministic, or
//     needing cluster configuration, and not useful on attestations).
package conditions
