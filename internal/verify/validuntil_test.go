package verify

import (
	"context"
	"testing"
	"time"
)

// bounded is a Verifier whose evidence per attestor path holds until a fixed time (zero:
// unbounded); a path with an error fails.
type bounded struct {
	until map[string]time.Time
	errs  map[string]error
}

func (b *bounded) Verify(_ context.Context, _ Subject, _ *Entry, a *Attestor) (*Evidence, error) {
	if err := b.errs[a.Path]; err != nil {
		return nil, err
	}
	return &Evidence{Digest: "sha256:d", ValidUntil: b.until[a.Path]}, nil
}

// TestValidUntilOfAttestorSets: a pass holds until the earliest ValidUntil of the entries that
// made the sets' counts; entries not evaluated (the count was met) and failed ones do not
// bound it; a nested set passes on its own bound.
func TestValidUntilOfAttestorSets(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	early, late := t0.Add(time.Minute), t0.Add(time.Hour)
	a0, a1, a2 := ".attestors[0].entries[0]", ".attestors[0].entries[1]", ".attestors[0].entries[2]"
	tests := []struct {
		name  string
		sets  []*AttestorSet
		until map[string]time.Time
		errs  map[string]error
		want  time.Time
	}{
		{name: "keys only: unbounded", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0), key(a1))}},
		{name: "the earliest of the entries counted", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0), key(a1))},
			until: map[string]time.Time{a0: late, a1: early}, want: early},
		{name: "a bounded entry and an unbounded one", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0), key(a1))},
			until: map[string]time.Time{a1: late}, want: late},
		{name: "an entry after the count is not evaluated", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0), key(a1))},
			until: map[string]time.Time{a0: late, a1: early}, want: late},
		{name: "a failed entry does not bound", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0), key(a1))},
			until: map[string]time.Time{a0: early, a1: late}, errs: map[string]error{a0: noSigs}, want: late},
		{name: "across sets", sets: []*AttestorSet{set(".attestors[0]", 1, key(a0)), set(".attestors[1]", 1, key(a1))},
			until: map[string]time.Time{a0: late, a1: early}, want: early},
		{name: "nested set", sets: []*AttestorSet{set(".attestors[0]", 2, key(a0),
			nested(".attestors[0].entries[1].attestor", set(".attestors[0].entries[1].attestor", 1, key(a1), key(a2))))},
			until: map[string]time.Time{a0: late, a1: early, a2: t0.Add(2 * time.Hour)}, errs: map[string]error{a1: noSigs}, want: late},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := VerifyAttestorSets(context.Background(), &bounded{until: tt.until, errs: tt.errs}, Subject{}, &Entry{}, tt.sets)
			if err != nil || !res.Passed {
				t.Fatalf("want a pass, got %+v, %v", res, err)
			}
			if !res.ValidUntil.Equal(tt.want) {
				t.Errorf("ValidUntil = %v, want %v", res.ValidUntil, tt.want)
			}
		})
	}
}

// boundedAttestations returns fixed statements, each attestor's until a fixed time.
type boundedAttestations struct {
	scriptedAttestations
	until map[string]time.Time
}

func (b *boundedAttestations) Attestations(ctx context.Context, s Subject, e *Entry, a *Attestor, typ string) ([]Statement, time.Time, error) {
	sts, _, err := b.scriptedAttestations.Attestations(ctx, s, e, a, typ)
	if err != nil {
		return nil, time.Time{}, err
	}
	return sts, b.until[a.Path], nil
}

// TestValidUntilOfAttestations: attestation evidence holds until the earliest bound of every
// entry that returned statements — which of them count is decided per request — nested ones
// included; an entry that returned an error does not bound it; a verifier that reports no
// bounds is unbounded.
func TestValidUntilOfAttestations(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	early, late := t0.Add(time.Minute), t0.Add(time.Hour)
	e0, e1, e2 := ".attestations[0].attestors[0].entries[0]", ".attestations[0].attestors[0].entries[1]", ".attestations[0].attestors[0].entries[1].attestor.entries[0]"
	good := []Statement{{"type": "sbom", "predicate": map[string]any{}}}
	sts := map[string][]Statement{e0: good, e1: good, e2: good}
	atts := []*Attestation{{Path: ".attestations[0]", Type: "sbom", Attestors: []*AttestorSet{{
		Path: ".attestations[0].attestors[0]", Required: 1, Entries: []*Attestor{
			{Path: e0, Kind: "keys"},
			{Path: e1, Kind: "attestor", Nested: &AttestorSet{Required: 1, Entries: []*Attestor{{Path: e2, Kind: "keys"}}}},
		},
	}}}}
	for _, tc := range []struct {
		name  string
		until map[string]time.Time
		errs  map[string]error
		want  time.Time
	}{
		{name: "unbounded"},
		{name: "every entry with statements, not only the first that counts", until: map[string]time.Time{e0: late, e2: early}, want: early},
		{name: "an entry without statements does not bound", until: map[string]time.Time{e0: late, e2: early},
			errs: map[string]error{e2: Errorf(CodeNoSignatures, "no attestations", nil)}, want: late},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &boundedAttestations{scriptedAttestations: scriptedAttestations{statements: sts, errs: tc.errs}, until: tc.until}
			ev := FetchAttestations(context.Background(), v, Subject{}, &Entry{}, atts)
			if got := ev.ValidUntil(); !got.Equal(tc.want) {
				t.Errorf("ValidUntil = %v, want %v", got, tc.want)
			}
		})
	}
	unreported := FetchAttestations(context.Background(), &scriptedAttestations{statements: sts}, Subject{}, &Entry{}, atts)
	if got := unreported.ValidUntil(); !got.IsZero() {
		t.Errorf("a verifier without bounds: ValidUntil = %v, want zero", got)
	}
}
