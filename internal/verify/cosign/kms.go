package cosign

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/vouchproject/vouch/internal/verify"
)

// Defaults of KMSOptions.
const (
	DefaultKMSTTL     = 5 * time.Minute
	DefaultKMSMaxKeys = 256
)

// KMSOptions configures a KMS.
type KMSOptions struct {
	// TTL is how long a public key read from a KMS is reused; 0 means DefaultKMSTTL.
	// Failures are never kept.
	TTL time.Duration
	// MaxKeys bounds the keys kept; 0 means DefaultKMSMaxKeys.
	MaxKeys int
	// Get returns the signer-verifier of a key reference; nil means sigstore's kms.Get: the
	// providers registered by import (kms_providers.go: awskms://, gcpkms://, azurekms://,
	// hashivault://) and, for any other <name>://<key>, the CLI plugin sigstore-kms-<name>
	// found on PATH (sigstore's cliplugin protocol).
	Get func(ctx context.Context, ref string, hash crypto.Hash) (kms.SignerVerifier, error)
}

// KMS reads public keys from key management systems (keys.kms, KMS URIs in publicKeys), as
// cosign's PublicKeyFromKeyRef does, and keeps them for a while: only the public key is asked
// of the KMS; signatures are then verified locally, like a PEM key, so a KMS is asked once per
// key and TTL, not once per signature. It is safe for concurrent use.
type KMS struct {
	ttl time.Duration
	max int
	get func(ctx context.Context, ref string, hash crypto.Hash) (kms.SignerVerifier, error)

	mu   sync.Mutex
	keys map[kmsKey]kmsEntry
}

type kmsKey struct {
	ref  string
	hash crypto.Hash
}

type kmsEntry struct {
	key     crypto.PublicKey
	pem     string
	expires time.Time
}

// NewKMS returns a KMS.
func NewKMS(opts KMSOptions) *KMS {
	k := &KMS{ttl: opts.TTL, max: opts.MaxKeys, get: opts.Get, keys: map[kmsKey]kmsEntry{}}
	if k.ttl <= 0 {
		k.ttl = DefaultKMSTTL
	}
	if k.max <= 0 {
		k.max = DefaultKMSMaxKeys
	}
	if k.get == nil {
		k.get = func(ctx context.Context, ref string, hash crypto.Hash) (kms.SignerVerifier, error) {
			return kms.Get(ctx, ref, hash)
		}
	}
	return k
}

// PublicKey returns the public key ref names. A reference no provider or plugin handles is
// unsupported; a KMS that fails to answer is unavailable. Both are "could not verify".
func (k *KMS) PublicKey(ctx context.Context, ref string, hash crypto.Hash) (verify.PublicKey, error) {
	id := kmsKey{ref, hash}
	now := time.Now()
	k.mu.Lock()
	e, ok := k.keys[id]
	k.mu.Unlock()
	if ok && now.Before(e.expires) {
		return verify.PublicKey{Key: e.key, PEM: e.pem}, nil
	}
	sv, err := k.get(ctx, ref, hash)
	if err != nil {
		var nf *kms.ProviderNotFoundError
		if errors.As(err, &nf) {
			return verify.PublicKey{}, verify.Errorf(verify.CodeUnsupported, "failed to load public key from "+ref, err)
		}
		return verify.PublicKey{}, kmsError(ctx, ref, err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return verify.PublicKey{}, kmsError(ctx, ref, err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return verify.PublicKey{}, verify.Errorf(verify.CodeUnsupported, "failed to load public key from "+ref, err)
	}
	k.mu.Lock()
	if len(k.keys) >= k.max {
		for key, old := range k.keys {
			if !now.Before(old.expires) || len(k.keys) >= k.max {
				delete(k.keys, key)
			}
		}
	}
	k.keys[id] = kmsEntry{key: pub, pem: string(pem), expires: now.Add(k.ttl)}
	k.mu.Unlock()
	return verify.PublicKey{Key: pub, PEM: string(pem)}, nil
}

func kmsError(ctx context.Context, ref string, err error) error {
	if ctx.Err() != nil {
		return verify.Errorf(verify.CodeTimeout, "failed to load public key from "+ref, err)
	}
	return verify.Errorf(verify.CodeUnavailable, "failed to load public key from "+ref, err)
}

// resolveKey returns the attestor with a KMS key reference replaced by the public key it names,
// read once per evaluation (the subject's memo) and cached by the KMS. References that are not
// KMS keys are returned as they are (the plan reports them).
func (v *Verifier) resolveKey(ctx context.Context, s verify.Subject, a *verify.Attestor) (*verify.Attestor, error) {
	ref := strings.TrimSpace(a.KeyRef)
	if a.Kind != "keys" || ref == "" || strings.HasPrefix(ref, "k8s://") || strings.Contains(ref, "{{") || !strings.Contains(ref, "://") {
		return a, nil
	}
	hash, err := hashFor(a.SignatureAlgorithm)
	if err != nil {
		return nil, err
	}
	got, err := s.Memo.Do(fmt.Sprintf("kms:%d:%s", hash, ref), func() (any, error) {
		return v.kms.PublicKey(ctx, ref, hash)
	})
	if err != nil {
		return nil, err
	}
	cp := *a
	cp.KeyRef, cp.Keys = "", []verify.PublicKey{got.(verify.PublicKey)}
	return &cp, nil
}
