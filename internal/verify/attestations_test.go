package verify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// scriptedAttestations returns fixed statements or errors per attestor path.
type scriptedAttestations struct {
	statements map[string][]Statement
	errs       map[string]error
}

func (s *scriptedAttestations) Attestations(_ context.Context, _ Subject, _ *Entry, a *Attestor, typ string) ([]Statement, time.Time, error) {
	if err := s.errs[a.Path]; err != nil {
		return nil, time.Time{}, err
	}
	return s.statements[a.Path], time.Time{}, nil
}

func TestAttestationEvaluate(t *testing.T) {
	e0, e1 := ".attestations[0].attestors[0].entries[0]", ".attestations[0].attestors[0].entries[1]"
	good := []Statement{{"type": "sbom", "predicate": map[string]any{"ok": true}}}
	bad := []Statement{{"type": "sbom", "predicate": map[string]any{"ok": false}}}
	mixed := []Statement{good[0], bad[0]}
	other := []Statement{{"type": "scan", "predicate": map[string]any{"ok": true}}}
	check := func(_ int, st Statement) (bool, string, error) {
		p := st["predicate"].(map[string]any)
		if _, ok := p["ok"]; !ok {
			return false, "", errors.New(`Unknown key "ok" in path`)
		}
		return p["ok"] == true, "ok must be true", nil
	}
	missing := Errorf(CodeNoSignatures, "no matching attestations found for image i with type sbom", nil)
	tests := []struct {
		name       string
		required   int
		nested     bool
		statements map[string][]Statement
		errs       map[string]error
		passed     bool
		failure    string
		undecided  bool
	}{
		{name: "one entry passes", required: 1, statements: map[string][]Statement{e0: good}, passed: true},
		{name: "every statement of the type must hold", required: 1, statements: map[string][]Statement{e0: mixed},
			failure: "verifiedCount: 0, requiredCount: 1, error: " + e0 + ": attestation checks failed for i and predicate sbom: ok must be true"},
		{name: "statements of other types do not count", required: 1, statements: map[string][]Statement{e0: other},
			failure: e0 + ": attestions not found for predicate type sbom"},
		{name: "count 1 of 2", required: 1, statements: map[string][]Statement{e1: good}, errs: map[string]error{e0: missing}, passed: true},
		{name: "count 2 of 2", required: 2, statements: map[string][]Statement{e1: good}, errs: map[string]error{e0: missing},
			failure: "verifiedCount: 1, requiredCount: 2, error: no matching attestations found for image i with type sbom"},
		{name: "undecided entry, set short", required: 2, statements: map[string][]Statement{e1: good},
			errs: map[string]error{e0: Errorf(CodeUnavailable, "registry unavailable", nil)}, undecided: true},
		{name: "undecided entry, set satisfied", required: 1, statements: map[string][]Statement{e1: good},
			errs: map[string]error{e0: Errorf(CodeUnavailable, "registry unavailable", nil)}, passed: true},
		{name: "evaluation error fails the entry", required: 1, statements: map[string][]Statement{e0: {{"type": "sbom", "predicate": map[string]any{}}}},
			failure: "failed to check attestations"},
		{name: "nested set counts as one entry", required: 1, nested: true, statements: map[string][]Statement{e0: good}, passed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries := []*Attestor{{Path: e0, Kind: "certificates"}, {Path: e1, Kind: "certificates"}}
			s := &AttestorSet{Path: ".attestations[0].attestors[0]", Required: tc.required, Entries: entries}
			if tc.nested {
				s = &AttestorSet{Path: ".attestations[0].attestors[0]", Required: 1, Entries: []*Attestor{{Kind: "attestor", Nested: s}}}
			}
			atts := []*Attestation{{Path: ".attestations[0]", Type: "sbom", Attestors: []*AttestorSet{s}}}
			ev := FetchAttestations(context.Background(), &scriptedAttestations{statements: tc.statements, errs: tc.errs}, Subject{}, &Entry{}, atts)
			res, err := ev.Evaluate("i", check)
			if tc.undecided {
				if err == nil || !Undecided(err) {
					t.Fatalf("want undecided, got %v, %+v", err, res)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed != tc.passed {
				t.Fatalf("passed %v, want %v: %v", res.Passed, tc.passed, res.Failure)
			}
			if tc.failure != "" && !strings.Contains(res.Failure.Error(), tc.failure) {
				t.Errorf("failure %q does not contain %q", res.Failure, tc.failure)
			}
			if !tc.passed && !strings.HasPrefix(res.Failure.Error(), "image attestations verification failed, ") {
				t.Errorf("failure %q is not in Kyverno's form", res.Failure)
			}
		})
	}
}

func TestAttestationWithoutAttestorsNeverPasses(t *testing.T) {
	atts := []*Attestation{{Path: ".attestations[0]", Type: "sbom"}}
	ev := FetchAttestations(context.Background(), &scriptedAttestations{}, Subject{}, &Entry{}, atts)
	res, err := ev.Evaluate("i", nil)
	if res.Passed || !Undecided(err) {
		t.Fatalf("an attestation without attestors must be undecided, got %+v, %v", res, err)
	}
}
