// Package cache owns the webhook's verification result cache and the coalescing of identical
// verifications in flight across concurrent admission requests.
//
// A result is keyed by the policy (UID and resourceVersion), the rule, the verifyImages entry
// index and the image DIGEST — never the tag. Kyverno keys its cache by the image string as
// written, usually a tag, so a tag moved to an unsigned image inherits the pass recorded for
// the old one, and a pass of one entry is a hit for another entry of the same rule (spec §6,
// DESIGN §6). Here a moved tag resolves to a new digest, hence a new key, and is verified
// afresh; each entry has its own key.
//
// What is cached follows the two channels of internal/verify: a passed Result is kept for
// Options.TTL (Kyverno's --imageVerifyCacheTTLDuration), a failed Result for the shorter
// Options.FailTTL (a re-signed image is seen soon, and a client retrying a rejected request
// does not reach the registry each time), and an error — vouch could not decide — is never
// kept. A result is never kept past its verify.Result.ValidUntil: when a certificate was
// checked at the time of verification (no trusted signing time), a re-verification after it
// expires would fail, so the kept pass ends with it. Memory is bounded by Options.MaxSize
// entries, evicted least recently used.
//
// Concurrent callers of one key share one verification. Each caller waits only as long as its
// own context allows; the shared verification runs with a context that keeps the first
// caller's values but not its deadline or cancellation, and ends when the last caller still
// waiting gives up — so its context ends no later than the longest waiter's deadline, and one
// impatient caller never cancels it for the others. See Cache.Do.
//
// The package holds no global state: every Cache is independent and safe for concurrent use.
package cache
