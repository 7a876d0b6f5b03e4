package verify

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// scripted is a Verifier whose outcome per attestor path is fixed by the test; it records the
// order in which attestors were asked.
type scripted struct {
	outcome map[string]error // nil error: verified
	asked   []string
}

func (s *scripted) Verify(_ context.Context, _ Subject, _ *Entry, a *Attestor) (*Evidence, error) {
	s.asked = append(s.asked, a.Path)
	if err := s.outcome[a.Path]; err != nil {
		return nil, err
	}
	return &Evidence{Digest: "sha256:" + a.Path}, nil
}

func set(path string, required int, entries ...*Attestor) *AttestorSet {
	return &AttestorSet{Path: path, Required: required, Entries: entries}
}

func key(path string) *Attestor { return &Attestor{Path: path, Kind: "keys"} }

func nested(path string, s *AttestorSet) *Attestor {
	return &Attestor{Path: path, Kind: "attestor", Nested: s}
}

var (
	noSigs  = Errorf(CodeNoSignatures, "no signatures found", nil)
	badSig  = Errorf(CodeNoMatch, "no matching signatures", errors.New("invalid signature when validating ASN.1 encoded signature"))
	offline = Errorf(CodeUnavailable, "registry unavailable", errors.New("connection refused"))
)

func TestVerifyAttestorSets(t *testing.T) {
	a0, a1, a2 := ".attestors[0].entries[0].keys", ".attestors[0].entries[1].keys", ".attestors[0].entries[2].keys"
	tests := []struct {
		name      string
		sets      []*AttestorSet
		outcome   map[string]error
		passed    bool
		failure   string // Result.Failure text
		undecided string // error channel text
		asked     []string
		is        error // errors.Is target for the failure or the error
	}{
		{name: "all must pass, all pass", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0), key(a1))},
			passed: true, asked: []string{a0, a1}},
		{name: "all must pass, one fails", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0), key(a1))},
			outcome: map[string]error{a1: noSigs}, failure: a1 + ": no signatures found", asked: []string{a0, a1}, is: ErrNoSignatures},
		{name: "count 1 stops at the first pass", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0), key(a1))},
			passed: true, asked: []string{a0}},
		{name: "count 1, first fails, second passes", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0), key(a1))},
			outcome: map[string]error{a0: badSig}, passed: true, asked: []string{a0, a1}},
		{name: "count 1, both fail, every error kept", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0), key(a1))},
			outcome: map[string]error{a0: badSig, a1: noSigs},
			failure: a0 + ": no matching signatures: invalid signature when validating ASN.1 encoded signature; " + a1 + ": no signatures found",
			asked:   []string{a0, a1}, is: ErrNoMatch},
		{name: "count 2 of 3", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0), key(a1), key(a2))},
			outcome: map[string]error{a1: noSigs}, passed: true, asked: []string{a0, a1, a2}},
		{name: "undecided entry makes a missed count undecided", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0), key(a1))},
			outcome: map[string]error{a0: offline, a1: noSigs}, undecided: a0 + ": registry unavailable: connection refused; " + a1 + ": no signatures found",
			asked: []string{a0, a1}, is: ErrUnavailable},
		{name: "undecided entry does not matter once the count is met", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0), key(a1))},
			outcome: map[string]error{a0: offline}, passed: true, asked: []string{a0, a1}},
		{name: "every set must pass", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0)), set(".attestors[1]", 1, key(".attestors[1].entries[0].keys"))},
			outcome: map[string]error{".attestors[1].entries[0].keys": noSigs}, failure: ".attestors[1].entries[0].keys: no signatures found",
			asked: []string{a0, ".attestors[1].entries[0].keys"}},
		{name: "nested set counts as one entry", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0),
			nested(".attestors[0].entries[1].attestor", set(".attestors[0].entries[1].attestor", 1,
				key(".attestors[0].entries[1].attestor.entries[0].keys"), key(".attestors[0].entries[1].attestor.entries[1].keys"))))},
			outcome: map[string]error{".attestors[0].entries[1].attestor.entries[0].keys": noSigs}, passed: true,
			asked: []string{a0, ".attestors[0].entries[1].attestor.entries[0].keys", ".attestors[0].entries[1].attestor.entries[1].keys"}},
		{name: "failing nested set reports its entries' paths", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0),
			nested(".attestors[0].entries[1].attestor", set(".attestors[0].entries[1].attestor", 1, key(".attestors[0].entries[1].attestor.entries[0].keys"))))},
			outcome: map[string]error{".attestors[0].entries[1].attestor.entries[0].keys": badSig},
			failure: ".attestors[0].entries[1].attestor.entries[0].keys: no matching signatures: invalid signature when validating ASN.1 encoded signature",
			asked:   []string{a0, ".attestors[0].entries[1].attestor.entries[0].keys"}, is: ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &scripted{outcome: tt.outcome}
			res, err := VerifyAttestorSets(context.Background(), v, Subject{}, &Entry{}, tt.sets)
			if diff := cmp.Diff(tt.asked, v.asked); diff != "" {
				t.Errorf("attestors asked (-want +got):\n%s", diff)
			}
			switch {
			case tt.undecided != "":
				if err == nil || err.Error() != tt.undecided {
					t.Fatalf("error = %v, want %q", err, tt.undecided)
				}
				if !Undecided(err) {
					t.Error("Undecided(err) = false")
				}
			case err != nil:
				t.Fatalf("unexpected error: %v", err)
			case res.Passed != tt.passed:
				t.Fatalf("passed = %v, want %v (failure %v)", res.Passed, tt.passed, res.Failure)
			case !tt.passed && (res.Failure == nil || res.Failure.Error() != tt.failure):
				t.Fatalf("failure = %v, want %q", res.Failure, tt.failure)
			}
			if tt.is != nil {
				target := err
				if target == nil {
					target = res.Failure
				}
				if !errors.Is(target, tt.is) {
					t.Errorf("errors.Is(%v, %v) = false", target, tt.is)
				}
			}
			if tt.passed && res.Digest == "" {
				t.Error("a passed result carries no digest")
			}
		})
	}
}

func TestCancelledContextIsTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := VerifyAttestorSets(ctx, &scripted{}, Subject{}, &Entry{}, []*AttestorSet{set(".attestors[0]", 1, key("a"))})
	if !errors.Is(err, ErrTimeout) || !Undecided(err) {
		t.Errorf("err = %v, want an undecided timeout", err)
	}
}

func TestErrorCodes(t *testing.T) {
	e := Errorf(CodeNoMatch, "no matching signatures", errors.New("bad"))
	if !errors.Is(e, ErrNoMatch) || errors.Is(e, ErrNoSignatures) {
		t.Error("errors.Is does not match by code")
	}
	if e.Error() != "no matching signatures: bad" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !Undecided(errors.New("unexpected")) || Undecided(e) || !Undecided(ErrAuth) {
		t.Error("Undecided classification wrong")
	}
	for _, c := range []Code{CodeNoSignatures, CodeNoMatch, CodeAnnotations, CodeDigestMismatch, CodeNotFound, CodeInvalid, CodeTooLarge, CodeIdentity} {
		if c.Undecided() {
			t.Errorf("%s is a failure, not undecided", c)
		}
	}
}
