package credentials

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	k8skeychain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Defaults of the Secret cache.
const (
	// DefaultSecretTTL is how long a Secret read from the API is used before it is read again
	// (a rotated pull secret takes effect within it).
	DefaultSecretTTL = time.Minute
	// DefaultMissingSecretTTL is how long "not found" and "forbidden" answers are kept, so that
	// a Secret created after a failed admission is seen soon.
	DefaultMissingSecretTTL = 10 * time.Second
	// secretReadTimeout bounds one read of a Secret, whatever the caller's deadline.
	secretReadTimeout = 5 * time.Second
	// maxCachedSecrets bounds the cache; the least recently used name is dropped first.
	maxCachedSecrets = 1024
)

// Errors of a Secret read, matched with errors.Is.
var (
	ErrSecretNotFound  = errors.New("not found")
	ErrSecretForbidden = errors.New("vouch is not allowed to read it (RBAC: get secrets)")
	ErrNotPullSecret   = errors.New("not a pull secret")
)

// SecretRef names a Secret.
type SecretRef struct{ Namespace, Name string }

func (r SecretRef) String() string { return r.Namespace + "/" + r.Name }

// ParseSecretRef reads "name" (in defaultNamespace) or "namespace/name".
func ParseSecretRef(s, defaultNamespace string) (SecretRef, error) {
	s = strings.TrimSpace(s)
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = defaultNamespace, s
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return SecretRef{}, fmt.Errorf("image pull secret %q: want NAME or NAMESPACE/NAME", s)
	}
	return SecretRef{Namespace: ns, Name: name}, nil
}

// pullSecret is what vouch keeps of a Secret: its identity and its pull-secret data only.
type pullSecret struct {
	ref      SecretRef
	uid      string
	version  string // resourceVersion: a changed Secret is a new credential scope
	typ      corev1.SecretType
	data     []byte // .dockerconfigjson or .dockercfg, by typ
	keychain authn.Keychain
	err      error // the data does not parse (never says how: it would quote it)
}

// identity identifies the Secret's content without containing it.
func (p *pullSecret) identity() string {
	return p.ref.String() + "#" + p.uid + "#" + p.version
}

// newPullSecret keeps the pull-secret data of s and parses it once.
func newPullSecret(ctx context.Context, s *corev1.Secret) *pullSecret {
	p := &pullSecret{
		ref: SecretRef{Namespace: s.Namespace, Name: s.Name}, uid: string(s.UID), version: s.ResourceVersion, typ: s.Type,
	}
	var key string
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		key = corev1.DockerConfigJsonKey
	case corev1.SecretTypeDockercfg:
		key = corev1.DockerConfigKey
	default:
		p.err = fmt.Errorf("%w: type %q is neither %s nor %s", ErrNotPullSecret, s.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
		return p
	}
	p.data = s.Data[key]
	if len(p.data) == 0 {
		p.err = fmt.Errorf("%w: it has no %s", ErrNotPullSecret, key)
		return p
	}
	kc, err := k8skeychain.NewFromPullSecrets(ctx, []corev1.Secret{{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name},
		Type:       s.Type,
		Data:       map[string][]byte{key: p.data},
	}})
	if err != nil {
		// Deliberately without err: JSON errors quote the offending bytes.
		p.err = fmt.Errorf("%w: its %s is malformed", ErrNotPullSecret, key)
		return p
	}
	p.keychain = kc
	return p
}

// kubeSecrets reads Secrets through the Kubernetes API with a TTL cache: each name is read
// at most once per TTL, concurrent reads of one name are one request, and a read that fails
// for another reason than not-found or forbidden (the API server unavailable) serves the last
// value read, if any.
type kubeSecrets struct {
	kube       kubernetes.Interface
	ttl        time.Duration
	missingTTL time.Duration
	now        func() time.Time

	mu     sync.Mutex
	cache  *simplelru.LRU[SecretRef, secretEntry]
	flight singleflight.Group
}

type secretEntry struct {
	secret *pullSecret
	err    error
	read   time.Time
}

func newKubeSecrets(kube kubernetes.Interface, ttl, missingTTL time.Duration, now func() time.Time) *kubeSecrets {
	lru, err := simplelru.NewLRU[SecretRef, secretEntry](maxCachedSecrets, nil)
	if err != nil {
		panic(err)
	}
	return &kubeSecrets{kube: kube, ttl: ttl, missingTTL: missingTTL, now: now, cache: lru}
}

func (k *kubeSecrets) get(ctx context.Context, ref SecretRef) (*pullSecret, error) {
	now := k.now()
	k.mu.Lock()
	e, ok := k.cache.Get(ref)
	k.mu.Unlock()
	if ok {
		ttl := k.ttl
		if e.err != nil {
			ttl = k.missingTTL
		}
		if now.Sub(e.read) < ttl {
			return e.secret, e.err
		}
	}
	ch := k.flight.DoChan(ref.String(), func() (any, error) {
		return k.read(ctx, ref)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*pullSecret), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("reading image pull secret %s: %w", ref, context.Cause(ctx))
	}
}

// read reads the Secret from the API and caches the outcome.
func (k *kubeSecrets) read(ctx context.Context, ref SecretRef) (*pullSecret, error) {
	// The read is shared by concurrent callers: it outlives the first one's deadline.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), secretReadTimeout)
	defer cancel()
	s, err := k.kube.CoreV1().Secrets(ref.Namespace).Get(rctx, ref.Name, metav1.GetOptions{})
	var e secretEntry
	switch {
	case err == nil:
		e.secret = newPullSecret(rctx, s)
	case apierrors.IsNotFound(err):
		e.err = fmt.Errorf("image pull secret %s: %w", ref, ErrSecretNotFound)
	case apierrors.IsForbidden(err):
		e.err = fmt.Errorf("image pull secret %s: %w", ref, ErrSecretForbidden)
	default:
		k.mu.Lock()
		defer k.mu.Unlock()
		if old, ok := k.cache.Peek(ref); ok && old.secret != nil {
			return old.secret, nil // the API is unavailable: keep using the last value read
		}
		return nil, fmt.Errorf("reading image pull secret %s: %s", ref, apiReason(err))
	}
	e.read = k.now()
	k.mu.Lock()
	k.cache.Add(ref, e)
	k.mu.Unlock()
	return e.secret, e.err
}

// apiReason describes an API error by its reason and status, not by a message that could
// quote a request or response body.
func apiReason(err error) string {
	if st, ok := err.(apierrors.APIStatus); ok {
		s := st.Status()
		return fmt.Sprintf("the API server answered %d %s", s.Code, s.Reason)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the API server did not answer in time"
	}
	return err.Error()
}
