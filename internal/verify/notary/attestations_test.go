package notary

import (
	"context"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/notary/notarytest"
)

const sbomType = "sbom/cyclone-dx"

// attach stores payload as a referrer of s of the given type and signs it with leaf (nil:
// unsigned); it returns the referrer's digest.
func (w *world) attach(s verify.Subject, typ, payload string, leaf *notarytest.Leaf) string {
	w.t.Helper()
	h, err := Attach(context.Background(), w.digestRef(s, s.Digest), typ, []byte(payload))
	if err != nil {
		w.t.Fatal(err)
	}
	if leaf != nil {
		w.sign(s, leaf, SignOptions{}, h.String())
	}
	return h.String()
}

func TestAttestations(t *testing.T) {
	t.Parallel()
	for _, referrers := range []bool{true, false} {
		t.Run(map[bool]string{true: "referrers API", false: "tag schema"}[referrers], func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, referrers)
			other := mustCA(t)(notarytest.NewRoot("other", notarytest.Around(-time.Hour, time.Hour)))
			otherInter := mustCA(t)(other.NewIntermediate("other inter", notarytest.Around(-time.Hour, time.Hour), notarytest.Endpoints{}))
			stranger := mustLeaf(t)(otherInter.IssueLeaf(notarytest.LeafOptions{Validity: notarytest.Around(-time.Hour, time.Hour)}))

			signed := w.push("signed:1")
			w.attach(signed, sbomType, `{"bomFormat":"CycloneDX","components":[{"name":"a"}]}`, w.leaf)
			w.attach(signed, "vulnerability-scan", `{"high":0}`, w.leaf)
			unsigned := w.push("unsigned:1")
			w.attach(unsigned, sbomType, `{"bomFormat":"CycloneDX"}`, nil)
			wrongSigner := w.push("stranger:1")
			w.attach(wrongSigner, sbomType, `{"bomFormat":"CycloneDX"}`, stranger)
			mixed := w.push("mixed:1") // an unsigned referrer of the type next to a signed one
			w.attach(mixed, sbomType, `{"bomFormat":"forged"}`, nil)
			w.attach(mixed, sbomType, `{"bomFormat":"CycloneDX"}`, w.leaf)
			none := w.push("none:1")

			a := trusting(w.root.Cert)
			sts, _, err := w.verifier.Attestations(context.Background(), fresh(signed), entry(), a, sbomType)
			if err != nil {
				t.Fatal(err)
			}
			if len(sts) != 1 || sts[0]["type"] != sbomType {
				t.Fatalf("statements %v, want one of type %s", sts, sbomType)
			}
			if p, _ := sts[0]["predicate"].(map[string]any); p["bomFormat"] != "CycloneDX" {
				t.Errorf("predicate %v", sts[0]["predicate"])
			}
			if sts[0]["subject"] == nil {
				t.Error("the statement should keep the referrer manifest's fields")
			}

			sts, _, err = w.verifier.Attestations(context.Background(), fresh(mixed), entry(), a, sbomType)
			if err != nil || len(sts) != 1 || sts[0]["predicate"].(map[string]any)["bomFormat"] != "CycloneDX" {
				t.Errorf("mixed: only the signed referrer may become a statement, got %v, %v", sts, err)
			}

			for _, tc := range []struct {
				name string
				s    verify.Subject
				typ  string
				want verify.Code
			}{
				{"unsigned", unsigned, sbomType, verify.CodeNoSignatures},
				{"signed by an untrusted certificate", wrongSigner, sbomType, verify.CodeNoMatch},
				{"no referrer of the type", none, sbomType, verify.CodeNoSignatures},
				{"another type only", signed, "trivy/vulnerability", verify.CodeNoSignatures},
			} {
				_, _, err := w.verifier.Attestations(context.Background(), fresh(tc.s), entry(), a, tc.typ)
				if got := verify.CodeOf(err); err == nil || got != tc.want {
					t.Errorf("%s: code %v (%v), want %s", tc.name, got, err, tc.want)
				}
			}
		})
	}
}

// TestAttestationFlow runs verify's attestation counting and conditions over Notary
// statements, as the engine does.
func TestAttestationFlow(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	s := w.push("app:1")
	w.attach(s, sbomType, `{"bomFormat":"CycloneDX"}`, w.leaf)
	other := mustCA(t)(notarytest.NewRoot("other", notarytest.Around(-time.Hour, time.Hour)))
	set := func(required int, as ...*verify.Attestor) []*verify.AttestorSet {
		for i, a := range as {
			a.Path = ".attestations[0].attestors[0].entries[" + string(rune('0'+i)) + "]"
		}
		return []*verify.AttestorSet{{Path: ".attestations[0].attestors[0]", Required: required, Entries: as}}
	}
	isCycloneDX := func(_ int, st verify.Statement) (bool, string, error) {
		ok := st["predicate"].(map[string]any)["bomFormat"] == "CycloneDX"
		return ok, "bomFormat must be CycloneDX", nil
	}
	isSPDX := func(_ int, st verify.Statement) (bool, string, error) { return false, "bomFormat must be SPDX", nil }

	for _, tc := range []struct {
		name    string
		sets    []*verify.AttestorSet
		typ     string
		check   verify.StatementCheck
		pass    bool
		message string
	}{
		{"pass", set(1, trusting(w.root.Cert)), sbomType, isCycloneDX, true, ""},
		{"count 1 of 2", set(1, trusting(other.Cert), trusting(w.root.Cert)), sbomType, isCycloneDX, true, ""},
		{"count 2 of 2", set(2, trusting(other.Cert), trusting(w.root.Cert)), sbomType, isCycloneDX, false,
			"image attestations verification failed, verifiedCount: 1, requiredCount: 2, error: no verified attestations found for image"},
		{"condition false", set(1, trusting(w.root.Cert)), sbomType, isSPDX, false,
			"image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0]: attestation checks failed for " + s.Ref.String() + " and predicate sbom/cyclone-dx: bomFormat must be SPDX"},
		{"missing", set(1, trusting(w.root.Cert)), "vex/cyclone-dx", isCycloneDX, false,
			"image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: no matching attestations found for image " + s.Ref.String() + " with type vex/cyclone-dx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			atts := []*verify.Attestation{{Path: ".attestations[0]", Type: tc.typ, Attestors: tc.sets}}
			ev := verify.FetchAttestations(context.Background(), w.verifier, fresh(s), entry(), atts)
			res, err := ev.Evaluate(s.Ref.String(), tc.check)
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed != tc.pass {
				t.Fatalf("passed %v, want %v (%v)", res.Passed, tc.pass, res.Failure)
			}
			if !tc.pass && !startsWith(res.Failure.Error(), tc.message) {
				t.Errorf("message\n %s\nwant prefix\n %s", res.Failure, tc.message)
			}
		})
	}
}

func startsWith(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }
