// Package engine orchestrates one evaluation of the compiled policies against one object:
// match -> extract -> (resolve -> verify) -> decide, for both the mutation phase (verification,
// digest pinning) and the validation phase (required, verifyDigest), as Kyverno's verifyImages
// does (spec §2). It is the single entry point the CLI and the webhook share.
//
// Registry credentials are chosen per verifyImages entry and object through Credentials
// (spec §7) and carried to every registry call of the entry as a registry.Scope.
//
// The validation phase is decided from what this engine itself verified during the same
// evaluation, never from verification annotations the object arrived with (DESIGN §6).
//
// Attestations (spec §3.12, §3.13, attest.go): the cache keeps only what the attestors
// verified — the in-toto statements by digest — and the conditions, the attestations' names
// and validate.deny are evaluated against them on every evaluation, cache hit or not, with the
// request (`request`, `image`) as context.
package engine
