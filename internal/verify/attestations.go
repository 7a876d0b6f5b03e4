package verify

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Statement is one verified attestation as policy conditions see it (spec §3.12): a JSON
// object (encoding/json shapes) with at least "type" and "predicate". It holds the exact
// bytes that were verified, decoded; nothing in it was fetched after verification.
type Statement = map[string]any

// AttestationVerifier is implemented by verifiers that read attestations: it returns the
// statements of one type carrying a valid signature by the attestor, and until when they hold
// (Evidence.ValidUntil: the earliest NotAfter among the certificates of their signatures that
// were checked at the time of verification; zero: unbounded). None is a failure (an *Error
// with a failed code, e.g. "no matching attestations found for image <s> with type <t>"); a
// registry problem is undecided.
type AttestationVerifier interface {
	Attestations(ctx context.Context, s Subject, e *Entry, a *Attestor, typ string) ([]Statement, time.Time, error)
}

// Attestation is one compiled attestations entry as the verification flow needs it.
type Attestation struct {
	Path      string // Kyverno's message path, e.g. ".attestations[0]"
	Type      string
	Attestors []*AttestorSet
}

// AttestationEvidence is what the verifiers established about a subject's attestations:
// for every attestation, set and entry, the verified statements or why there are none. It
// holds cryptographic results only — conditions are evaluated against it per request
// (Evaluate), so a cached result never stands in for a policy decision (landscape §4.1,
// kyverno#17173) and conditions read the verified bytes (kyverno#17130).
type AttestationEvidence struct {
	attestations []*Attestation
	sets         [][]*setEvidence // by attestation, then set
}

type setEvidence struct {
	set     *AttestorSet
	entries []entryEvidence
}

type entryEvidence struct {
	attestor   *Attestor
	statements []Statement
	until      time.Time // when the statements stop holding; zero: unbounded
	err        error
	nested     *setEvidence
}

// FetchAttestations asks the verifier for the statements of every entry of every
// attestation's attestor sets (spec §3.12 steps 1-3). Every entry is asked — which ones count
// is decided per request by Evaluate.
func FetchAttestations(ctx context.Context, v AttestationVerifier, s Subject, e *Entry, atts []*Attestation) *AttestationEvidence {
	ev := &AttestationEvidence{attestations: atts, sets: make([][]*setEvidence, len(atts))}
	for i, att := range atts {
		for _, set := range att.Attestors {
			ev.sets[i] = append(ev.sets[i], fetchSet(ctx, v, s, e, set, att.Type))
		}
	}
	return ev
}

func fetchSet(ctx context.Context, v AttestationVerifier, s Subject, e *Entry, set *AttestorSet, typ string) *setEvidence {
	out := &setEvidence{set: set}
	for _, a := range set.Entries {
		ee := entryEvidence{attestor: a}
		switch {
		case ctx.Err() != nil:
			ee.err = Errorf(CodeTimeout, "verification deadline exceeded before "+a.Path, ctx.Err())
		case a.Nested != nil:
			ee.nested = fetchSet(ctx, v, s, e, a.Nested, typ)
		default:
			ee.statements, ee.until, ee.err = v.Attestations(ctx, s, e, a, typ)
		}
		out.entries = append(out.entries, ee)
	}
	return out
}

// ValidUntil returns when the evidence stops holding: the earliest bound of the statements of
// every entry that returned some (zero: unbounded). Which entries count is decided per request
// (Evaluate), so every entry with statements bounds the evidence: once one of their
// certificates has expired, verifying again would drop its statements and could decide
// otherwise.
func (ev *AttestationEvidence) ValidUntil() time.Time {
	if ev == nil {
		return time.Time{}
	}
	var until time.Time
	var walk func(se *setEvidence)
	walk = func(se *setEvidence) {
		for _, ee := range se.entries {
			switch {
			case ee.nested != nil:
				walk(ee.nested)
			case ee.err == nil:
				until = Earliest(until, ee.until)
			}
		}
	}
	for _, sets := range ev.sets {
		for _, se := range sets {
			walk(se)
		}
	}
	return until
}

// StatementCheck evaluates an attestation's conditions on one statement: whether they hold,
// and if not, the message why. An error means they could not be evaluated (a variable that
// does not resolve in the signed payload); like Kyverno, vouch fails the entry then.
type StatementCheck func(attestation int, st Statement) (ok bool, reason string, err error)

// Evaluate decides the attestations for one request (spec §3.12): for each attestation, every
// attestor set must have Required entries whose statements of the type exist and ALL satisfy
// the conditions. A failure is an *AttestationError whose message is Kyverno's; when a set
// misses its count and one of its entries could not be decided, the error channel says so.
func (ev *AttestationEvidence) Evaluate(subject string, check StatementCheck) (Result, error) {
	for i, att := range ev.attestations {
		if len(ev.sets[i]) == 0 {
			// Kyverno would use an empty attestor here (Notary: a nil dereference); an
			// attestation nobody signed must never pass by having nothing to check.
			return Result{}, Errorf(CodeUnsupported, att.Path+": an attestation without attestors cannot be verified", nil)
		}
		for _, se := range ev.sets[i] {
			count, errs := ev.countSet(i, att, se, subject, check)
			if count >= se.set.Required {
				continue
			}
			joined := &joinError{errs: errs}
			if len(errs) == 0 {
				joined.errs = []error{Errorf(CodeNoMatch, "attestations verification failed", nil)}
			}
			if Undecided(joined) {
				return Result{}, joined
			}
			return Result{Failure: &AttestationError{Verified: count, Required: se.set.Required, Err: joined}}, nil
		}
	}
	return Result{Passed: true}, nil
}

// countSet counts the entries of a set that pass, stopping once enough do.
func (ev *AttestationEvidence) countSet(i int, att *Attestation, se *setEvidence, subject string, check StatementCheck) (int, []error) {
	count := 0
	var errs []error
	for _, ee := range se.entries {
		var err error
		switch {
		case ee.nested != nil:
			n, nerrs := ev.countSet(i, att, ee.nested, subject, check)
			if n < ee.nested.set.Required {
				err = &joinError{errs: nerrs}
			}
		case ee.err != nil:
			err = ee.err // fetch errors are not path-prefixed, as in Kyverno
		default:
			if perr := checkStatements(i, att, ee.statements, subject, check); perr != nil {
				err = &entryError{path: ee.attestor.Path, err: perr}
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if count++; count >= se.set.Required {
			return count, nil
		}
	}
	return count, errs
}

// checkStatements requires at least one statement of the type and every one of them to
// satisfy the conditions (spec §3.12.2).
func checkStatements(i int, att *Attestation, sts []Statement, subject string, check StatementCheck) error {
	n := 0
	for _, st := range sts {
		if t, _ := st["type"].(string); t != att.Type {
			continue
		}
		n++
		if check == nil {
			continue
		}
		ok, reason, err := check(i, st)
		if err != nil {
			return Errorf(CodeInvalid, "failed to check attestations", err)
		}
		if !ok {
			return Errorf(CodeNoMatch, fmt.Sprintf("attestation checks failed for %s and predicate %s: %s", subject, att.Type, reason), nil)
		}
	}
	if n == 0 {
		return Errorf(CodeNoSignatures, "attestions not found for predicate type "+att.Type, nil)
	}
	return nil
}

// AttestationError is a failed attestation check with Kyverno's message (spec §8.2).
type AttestationError struct {
	Verified, Required int
	Err                error
}

// Error returns "image attestations verification failed, verifiedCount: N, requiredCount: M,
// error: <errors>".
func (e *AttestationError) Error() string {
	return fmt.Sprintf("image attestations verification failed, verifiedCount: %d, requiredCount: %d, error: %s",
		e.Verified, e.Required, strings.TrimSpace(e.Err.Error()))
}

// Unwrap returns the entries' errors.
func (e *AttestationError) Unwrap() error { return e.Err }
