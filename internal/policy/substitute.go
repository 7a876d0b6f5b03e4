package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/conditions"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// entryTemplate is a verifyImages entry that holds `{{ }}` variables outside the places
// evaluated per statement (attestations[].conditions, validate): Kyverno substitutes them in
// the whole rule before verifying (spec §2.3), so the entry is compiled again for each
// substitution (and the compiled entries of recent substitutions are kept).
type entryTemplate struct {
	raw         v1.ImageVerification
	value       *conditions.Value // the entry without conditions and validate, as JSON
	index       int
	path        *field.Path
	trustedRoot []byte

	mu   sync.Mutex
	memo map[string]*Verification // by Variant
}

// maxSubstitutions bounds the compiled substitutions kept per entry; past it the memo starts
// over (a rule whose keys vary per namespace compiles each once per few hundred requests).
const maxSubstitutions = 256

func newEntryTemplate(iv *v1.ImageVerification, index int, path *field.Path) (*entryTemplate, error) {
	cp := *iv
	cp.Attestations = make([]v1.Attestation, len(iv.Attestations))
	for i, a := range iv.Attestations {
		a.Conditions = nil
		cp.Attestations[i] = a
	}
	cp.Validation = nil
	b, err := json.Marshal(cp)
	if err != nil {
		return nil, err
	}
	var untyped any
	if err := json.Unmarshal(b, &untyped); err != nil {
		return nil, err
	}
	value, err := conditions.CompileValue(untyped, path.String())
	if err != nil {
		return nil, err
	}
	return &entryTemplate{raw: *iv, value: value, index: index, path: path, memo: map[string]*Verification{}}, nil
}

// Templated reports whether the entry holds variables to substitute before it is used.
func (v *Verification) Templated() bool { return v.template != nil }

// ErrSubstitution marks an entry whose variables did not resolve (Kyverno: "failed to
// substitute variables"); other errors of Substitute are an entry that does not compile.
var ErrSubstitution = conditions.ErrSubstitution

// Substitute returns the entry with its variables substituted against doc, the rule's context
// (request, images, context entries), compiled as the policy was. The result's Variant
// identifies the substitution (the cache keeps verifications of different substitutions
// apart). An entry without variables is returned as it is. An error wrapping ErrSubstitution
// is a variable that did not resolve; any other error is a substituted entry that is not
// valid (a key that is not PEM, ...), naming the field.
func (v *Verification) Substitute(doc map[string]any) (*Verification, error) {
	t := v.template
	if t == nil {
		return v, nil
	}
	rendered, err := t.value.Render(doc)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(rendered)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.path, err)
	}
	sum := sha256.Sum256(b)
	variant := hex.EncodeToString(sum[:16])
	t.mu.Lock()
	done := t.memo[variant]
	t.mu.Unlock()
	if done != nil {
		return done, nil
	}
	var iv v1.ImageVerification
	if err := json.Unmarshal(b, &iv); err != nil {
		return nil, fmt.Errorf("%s: after substitution: %w", t.path, err)
	}
	if len(iv.Attestations) != len(t.raw.Attestations) {
		return nil, fmt.Errorf("%s.attestations: after substitution: %d entries, want %d", t.path, len(iv.Attestations), len(t.raw.Attestations))
	}
	for i := range iv.Attestations {
		iv.Attestations[i].Conditions = t.raw.Attestations[i].Conditions
	}
	iv.Validation = t.raw.Validation
	if v1HasVariables(&iv) {
		// Substituted text is never substituted again: a value that brings `{{ }}` (from
		// the object, say) cannot add expressions to the policy, and the entry is invalid.
		return nil, fmt.Errorf("%s: after substitution: a substituted value holds a {{ }} variable", t.path)
	}
	out, errs := compileVerification(&iv, t.index, t.path)
	if len(errs) > 0 {
		return nil, fmt.Errorf("after substitution: %w", joinFieldErrors(errs))
	}
	out.Entry.TrustedRoot = t.trustedRoot
	out.Variant = variant
	t.mu.Lock()
	if len(t.memo) >= maxSubstitutions {
		t.memo = map[string]*Verification{}
	}
	if prev := t.memo[variant]; prev != nil {
		out = prev // concurrent substitutions share one compiled entry
	} else {
		t.memo[variant] = out
	}
	t.mu.Unlock()
	return out, nil
}
