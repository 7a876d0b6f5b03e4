package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/vouchproject/vouch/internal/verify"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// SecretKeyName is the Secret data key cosign (and so Kyverno) reads a public key from:
// keys.secret and k8s://<namespace>/<name> references name Secrets holding it.
const SecretKeyName = "cosign.pub"

// ErrSecretKey marks a Secret's cosign.pub that was read but is not a public key: the entry
// fails (a bad key is never left to failurePolicy). Other errors of ResolveSecretKeys are a
// Secret that could not be read.
var ErrSecretKey = errors.New("not a public key")

// checkSecretRef checks the names of a Secret reference (keys.secret, k8s://).
func checkSecretRef(r verify.SecretRef) error {
	if r.Namespace == "" || r.Name == "" {
		return errors.New("want a Secret's namespace and name (k8s://<namespace>/<name>)")
	}
	if msgs := validation.IsDNS1123Label(r.Namespace); len(msgs) > 0 {
		return fmt.Errorf("namespace %q: %s", r.Namespace, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(r.Name); len(msgs) > 0 {
		return fmt.Errorf("name %q: %s", r.Name, strings.Join(msgs, "; "))
	}
	return nil
}

// foreignSecrets refuses, at load, the Secrets of other namespaces a namespaced Policy names
// (those named through variables are refused when substituted, by ResolveSecretKeys).
func foreignSecrets(p *Policy, v *Verification) field.ErrorList {
	if p.Namespace == "" || v.secrets == nil {
		return nil
	}
	var errs field.ErrorList
	for _, r := range v.secrets.refs {
		if r.Namespace != p.Namespace {
			errs = append(errs, field.Invalid(field.NewPath(v.Path+secretPath(v, r)), "Secret "+r.String(),
				"a namespaced Policy reads Secrets in its own namespace ("+p.Namespace+") only"))
		}
	}
	return errs
}

// secretKeys keeps the entries of a Verification whose public keys Secrets hold, by the keys
// read (see ResolveSecretKeys).
type secretKeys struct {
	refs []verify.SecretRef // every Secret the entry names, sorted

	mu   sync.Mutex
	memo map[string]*Verification
}

// ReadsSecrets reports whether the entry holds public keys from Secrets (keys.secret,
// k8s://<namespace>/<name>), to be read with ResolveSecretKeys before it is verified.
func (v *Verification) ReadsSecrets() bool { return v.secrets != nil }

// decideSecrets sets what ReadsSecrets reports, once the entry is compiled.
func (v *Verification) decideSecrets() {
	refs := map[verify.SecretRef]bool{}
	for _, set := range v.allAttestorSets() {
		collectSecretRefs(set, refs)
	}
	if len(refs) == 0 {
		return
	}
	sorted := make([]verify.SecretRef, 0, len(refs))
	for r := range refs {
		sorted = append(sorted, r)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].String() < sorted[j].String() })
	v.secrets = &secretKeys{refs: sorted, memo: map[string]*Verification{}}
}

func (v *Verification) allAttestorSets() []*verify.AttestorSet {
	sets := append([]*verify.AttestorSet(nil), v.Attestors...)
	for _, att := range v.Attestations {
		sets = append(sets, att.Attestors...)
	}
	return sets
}

func collectSecretRefs(set *verify.AttestorSet, refs map[verify.SecretRef]bool) {
	for _, a := range set.Entries {
		if a.Secret != nil {
			refs[*a.Secret] = true
		}
		if a.Nested != nil {
			collectSecretRefs(a.Nested, refs)
		}
	}
}

// ResolveSecretKeys returns the entry with the public key of every Secret it names (the
// Secret's cosign.pub, its first PEM block as cosign reads it) in place of the reference, read
// with read. The result's Variant identifies the keys read, so that a verification cached with
// one key never answers for another: a key rotated in its Secret is used as soon as it is read.
// A namespaced Policy (policyNamespace != "") reads Secrets in its own namespace only.
//
// An error wrapping ErrSecretKey is a Secret whose cosign.pub is not a public key; any other
// error is a Secret that could not be read. Both name the entry's path and the Secret.
func (v *Verification) ResolveSecretKeys(ctx context.Context, read func(ctx context.Context, namespace, name string) (string, error), policyNamespace string) (*Verification, error) {
	if v.secrets == nil {
		return v, nil
	}
	m := v.secrets
	sorted := m.refs
	texts := make([]string, len(sorted))
	h := sha256.New()
	for i, r := range sorted {
		if policyNamespace != "" && r.Namespace != policyNamespace {
			return nil, fmt.Errorf("%s: a namespaced Policy reads Secrets in its own namespace (%s) only", secretWhere(v, r), policyNamespace)
		}
		if read == nil {
			return nil, fmt.Errorf("%s: no Secrets can be read here", secretWhere(v, r))
		}
		text, err := read(ctx, r.Namespace, r.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", secretWhere(v, r), err)
		}
		texts[i] = text
		fmt.Fprintf(h, "%s\x00%d\x00%s", r, len(text), text)
	}
	variant := v.Variant + "+keys:" + hex.EncodeToString(h.Sum(nil)[:16])

	// The same texts were parsed before: the entry holding their keys is kept.
	m.mu.Lock()
	done := m.memo[variant]
	m.mu.Unlock()
	if done != nil {
		return done, nil
	}
	keys := make(map[verify.SecretRef]verify.PublicKey, len(sorted))
	for i, r := range sorted {
		key, err := firstPublicKey(texts[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", secretWhere(v, r), ErrSecretKey, err)
		}
		keys[r] = key
	}
	out := *v
	out.secrets, out.template, out.Variant = nil, nil, variant
	out.Attestors = withSecretKeys(v.Attestors, keys)
	out.Attestations = make([]*Attestation, len(v.Attestations))
	for i, att := range v.Attestations {
		cp := *att
		cp.Attestors = withSecretKeys(att.Attestors, keys)
		out.Attestations[i] = &cp
	}
	m.mu.Lock()
	if len(m.memo) >= maxSubstitutions {
		m.memo = map[string]*Verification{}
	}
	if prev := m.memo[variant]; prev != nil {
		m.mu.Unlock()
		return prev, nil
	}
	m.memo[variant] = &out
	m.mu.Unlock()
	return &out, nil
}

// secretWhere names r in messages: the path of the first attestor naming it, the Secret and
// its data key.
func secretWhere(v *Verification, r verify.SecretRef) string {
	return fmt.Sprintf("%s: Secret %s (%s)", secretPath(v, r), r, SecretKeyName)
}

// secretPath is the message path of the first attestor naming r.
func secretPath(v *Verification, r verify.SecretRef) string {
	var find func(set *verify.AttestorSet) string
	find = func(set *verify.AttestorSet) string {
		for _, a := range set.Entries {
			if a.Secret != nil && *a.Secret == r {
				return a.Path
			}
			if a.Nested != nil {
				if p := find(a.Nested); p != "" {
					return p
				}
			}
		}
		return ""
	}
	for _, set := range v.allAttestorSets() {
		if p := find(set); p != "" {
			return p
		}
	}
	return v.Path
}

// withSecretKeys copies the attestor sets, each entry naming a Secret given its key.
func withSecretKeys(sets []*verify.AttestorSet, keys map[verify.SecretRef]verify.PublicKey) []*verify.AttestorSet {
	out := make([]*verify.AttestorSet, len(sets))
	for i, set := range sets {
		cp := *set
		cp.Entries = make([]*verify.Attestor, len(set.Entries))
		for j, a := range set.Entries {
			e := *a
			if a.Secret != nil {
				e.Keys, e.Secret = []verify.PublicKey{keys[*a.Secret]}, nil
			}
			if a.Nested != nil {
				e.Nested = withSecretKeys([]*verify.AttestorSet{a.Nested}, keys)[0]
			}
			cp.Entries[j] = &e
		}
		out[i] = &cp
	}
	return out
}

// maxSecretKeyBytes bounds the cosign.pub read from a Secret.
const maxSecretKeyBytes = 64 << 10

// firstPublicKey reads a cosign.pub as cosign does: the first PEM block, a "PUBLIC KEY".
func firstPublicKey(text string) (verify.PublicKey, error) {
	if len(text) > maxSecretKeyBytes {
		return verify.PublicKey{}, fmt.Errorf("%d bytes, more than %d", len(text), maxSecretKeyBytes)
	}
	block, _ := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil {
		return verify.PublicKey{}, errors.New("no PEM block")
	}
	return publicKeyFrom(block)
}
