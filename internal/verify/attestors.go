package verify

import (
	"context"
	"strings"
	"time"
)

// Result is the outcome of an entry's attestor sets for a subject on the "decided" channel.
type Result struct {
	Passed bool
	// Digest is the digest named by the last verified signature (spec §2.6 step 5).
	Digest string
	// Route is where the last verified signature was found (Evidence.Route).
	Route string
	// Failure explains a failed result: the errors of every entry of the first failing set,
	// each prefixed with its attestor path (spec §5).
	Failure error
	// Attestations, when the entry has attestations and its signatures passed, is what the
	// verifiers established about them; the caller decides them per request (Evaluate).
	Attestations *AttestationEvidence
	// ValidUntil, when not zero, is when the result stops holding: the earliest NotAfter among
	// the certificates that were checked at the time of verification rather than at a trusted
	// signing time (Evidence.ValidUntil), over the evidence the result depends on — the
	// entries that made each attestor set's count and, with attestations, every attestor that
	// returned statements (AttestationEvidence.ValidUntil). Zero: unbounded. The cache keeps
	// a result no longer than this.
	ValidUntil time.Time
}

// VerifyAttestorSets evaluates the sets of one verifyImages entry for a subject (spec §5):
// every set must pass; a set passes once Required of its entries verify (later entries are
// not evaluated); nested attestor sets count as one entry. Every entry error is kept.
//
// A set that misses its count fails (Result.Failure) when every entry error was a failure. If
// any entry could not be decided, the set could not be decided either — that entry might have
// verified — and the joined errors are returned on the error channel.
//
// A pass holds until the earliest ValidUntil of the entries that made the sets' counts (the
// entries evaluated and verified: a set stops at its count).
func VerifyAttestorSets(ctx context.Context, v Verifier, s Subject, e *Entry, sets []*AttestorSet) (Result, error) {
	var digest, route string
	var until time.Time
	for _, set := range sets {
		ev, err := verifySet(ctx, v, s, e, set)
		if err != nil {
			if Undecided(err) {
				return Result{}, err
			}
			return Result{Failure: err}, nil
		}
		if ev != nil && ev.Digest != "" {
			digest = ev.Digest
		}
		if ev != nil && ev.Route != "" {
			route = ev.Route
		}
		if ev != nil {
			until = Earliest(until, ev.ValidUntil)
		}
	}
	return Result{Passed: true, Digest: digest, Route: route, ValidUntil: until}, nil
}

// verifySet returns the evidence of the last entry that made the set's count, bounded by the
// earliest ValidUntil of all the entries that made it.
func verifySet(ctx context.Context, v Verifier, s Subject, e *Entry, set *AttestorSet) (*Evidence, error) {
	var (
		count int
		last  *Evidence
		until time.Time
		errs  []error
	)
	for _, a := range set.Entries {
		if err := ctx.Err(); err != nil {
			errs = append(errs, Errorf(CodeTimeout, "verification deadline exceeded before "+a.Path, err))
			break
		}
		var ev *Evidence
		var err error
		if a.Nested != nil {
			ev, err = verifySet(ctx, v, s, e, a.Nested)
		} else {
			ev, err = v.Verify(ctx, s, e, a)
			if err != nil {
				err = &entryError{path: a.Path, err: err}
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		count++
		last = ev
		if ev != nil {
			until = Earliest(until, ev.ValidUntil)
		}
		if count >= set.Required {
			out := Evidence{}
			if last != nil {
				out = *last
			}
			out.ValidUntil = until
			return &out, nil
		}
	}
	if len(errs) == 0 {
		// Cannot happen for a valid set (Required <= len(Entries)); never pass by accident.
		errs = append(errs, Errorf(CodeNoMatch, "attestor set requires more entries than it has", nil))
	}
	return nil, &joinError{errs: errs}
}

// entryError prefixes an attestor's error with its path, as Kyverno does.
type entryError struct {
	path string
	err  error
}

func (e *entryError) Error() string { return e.path + ": " + e.err.Error() }
func (e *entryError) Unwrap() error { return e.err }

// joinError is the errors of a set's entries, rendered like Kyverno's multierr ("; ").
type joinError struct{ errs []error }

func (j *joinError) Error() string {
	parts := make([]string, len(j.errs))
	for i, e := range j.errs {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (j *joinError) Unwrap() []error { return j.errs }
