package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/registry"
)

// DefaultNamespace is vouch's namespace when neither --namespace nor POD_NAMESPACE says.
const DefaultNamespace = "vouch"

// maxKeychains bounds the merged keychains kept by credential scope.
const maxKeychains = 256

// Options configures a Resolver.
type Options struct {
	// Kube reads Secrets. Nil means there is no cluster (vouch apply, vouch serve --policies
	// alone): Secret names — a policy's secrets, a Pod's imagePullSecrets — are not read, as
	// in the Kyverno CLI, and ImagePullSecrets must be empty.
	Kube kubernetes.Interface
	// Namespace is vouch's namespace, where plain Secret names of policies and of
	// ImagePullSecrets are looked up (Kyverno's namespace, spec §7); "" means DefaultNamespace.
	Namespace string
	// ImagePullSecrets are Kyverno's --imagePullSecrets: "name" or "namespace/name".
	ImagePullSecrets []string
	// ConfigFiles are docker config files ({"auths": {...}}, the content of a
	// kubernetes.io/dockerconfigjson Secret), read once by New (--registry-credentials).
	ConfigFiles []string
	// Helpers are Kyverno's --registryCredentialHelpers, consulted after every Secret and file;
	// an entry's providers replace them. Checked by ParseHelpers.
	Helpers []string
	// IgnorePodSecrets leaves the admitted Pods' imagePullSecrets unread.
	IgnorePodSecrets bool
	// SecretTTL and MissingSecretTTL are how long a Secret read, and a "not found" or
	// "forbidden" answer, are used; 0 means DefaultSecretTTL and DefaultMissingSecretTTL.
	SecretTTL, MissingSecretTTL time.Duration
	// Now reads the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Resolver chooses the credentials of each verifyImages entry for each admitted object. It is
// safe for concurrent use; the engine calls it through engine.Credentials.
type Resolver struct {
	namespace string
	secrets   *kubeSecrets // nil without a cluster
	global    []SecretRef
	files     []*pullSecret
	helpers   []string
	podSecret bool

	mu        sync.Mutex
	keychains *simplelru.LRU[string, authn.Keychain]
	helperKCs map[string]authn.Keychain
}

// New checks opts, reads the ConfigFiles and returns a Resolver. It reads no Secret: they are
// read when an admission first needs them.
func New(opts Options) (*Resolver, error) {
	r := &Resolver{namespace: opts.Namespace, podSecret: !opts.IgnorePodSecrets, helperKCs: map[string]authn.Keychain{}}
	if r.namespace == "" {
		r.namespace = DefaultNamespace
	}
	var err error
	if r.helpers, err = ParseHelpers(opts.Helpers); err != nil {
		return nil, err
	}
	for _, s := range opts.ImagePullSecrets {
		if strings.TrimSpace(s) == "" {
			continue
		}
		ref, err := ParseSecretRef(s, r.namespace)
		if err != nil {
			return nil, err
		}
		r.global = append(r.global, ref)
	}
	if len(r.global) > 0 && opts.Kube == nil {
		return nil, errors.New("image pull secrets need a cluster (--kubeconfig or in-cluster configuration); without one give docker config files")
	}
	for _, f := range opts.ConfigFiles {
		p, err := readConfigFile(f)
		if err != nil {
			return nil, err
		}
		r.files = append(r.files, p)
	}
	if opts.Kube != nil {
		ttl, missing, now := opts.SecretTTL, opts.MissingSecretTTL, opts.Now
		if ttl <= 0 {
			ttl = DefaultSecretTTL
		}
		if missing <= 0 {
			missing = DefaultMissingSecretTTL
		}
		if now == nil {
			now = time.Now
		}
		r.secrets = newKubeSecrets(opts.Kube, ttl, missing, now)
	}
	if r.keychains, err = simplelru.NewLRU[string, authn.Keychain](maxKeychains, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// readConfigFile reads a docker config file as the pull secret it would be in a cluster.
func readConfigFile(path string) (*pullSecret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry credentials file: %w", err)
	}
	p := newPullSecret(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: path},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: b},
	})
	if p.err != nil {
		return nil, fmt.Errorf("registry credentials file %s: not a docker config file ({\"auths\": {...}}): malformed JSON", path)
	}
	sum := sha256.Sum256(b)
	p.ref, p.version = SecretRef{Namespace: "file:", Name: path}, hex.EncodeToString(sum[:8])
	return p, nil
}

// Scope returns the credentials of one verifyImages entry for one object: entry is the entry's
// imageRegistryCredentials (nil when it has none), namespace the object's and pullSecrets the
// names in its pod spec's imagePullSecrets. The keychain consults, first match per registry:
//
//  1. the entry's secrets ("name" in vouch's namespace, or "namespace/name");
//  2. the Pod's imagePullSecrets, in the Pod's namespace;
//  3. the global image pull secrets, then the docker config files;
//  4. the entry's providers if it lists any, else the global helpers;
//
// and is anonymous for a registry none of them matches. A Secret of 1 or 3 that is missing,
// unreadable or not a pull secret is an error naming it; one of 2 that is missing or not a
// pull secret is skipped, as the kubelet skips it.
func (r *Resolver) Scope(ctx context.Context, entry *v1.ImageRegistryCredentials, namespace string, pullSecrets []string) (registry.Scope, error) {
	var ids []string
	var kcs []authn.Keychain
	use := func(layer string, p *pullSecret) {
		ids = append(ids, layer+" "+p.identity())
		kcs = append(kcs, p.keychain)
	}
	if entry != nil && r.secrets != nil {
		for _, name := range entry.Secrets {
			ref, err := ParseSecretRef(name, r.namespace)
			if err != nil {
				return registry.Scope{}, fmt.Errorf("imageRegistryCredentials.secrets: %w", err)
			}
			p, err := r.strict(ctx, ref)
			if err != nil {
				return registry.Scope{}, err
			}
			use("policy", p)
		}
	}
	if r.podSecret && r.secrets != nil {
		if namespace == "" {
			namespace = r.namespace
		}
		for _, name := range pullSecrets {
			if name == "" || strings.Contains(name, "/") {
				continue // not a Secret name the kubelet could read either
			}
			p, err := r.secrets.get(ctx, SecretRef{Namespace: namespace, Name: name})
			switch {
			case errors.Is(err, ErrSecretNotFound):
				continue
			case err != nil:
				return registry.Scope{}, err
			case p.err != nil:
				continue
			}
			use("pod", p)
		}
	}
	for _, ref := range r.global {
		p, err := r.strict(ctx, ref)
		if err != nil {
			return registry.Scope{}, err
		}
		use("global", p)
	}
	for _, p := range r.files {
		use("file", p)
	}
	helpers := r.helpers
	if entry != nil && len(entry.Providers) > 0 {
		names := make([]string, len(entry.Providers))
		for i, p := range entry.Providers {
			names[i] = string(p)
		}
		var err error
		if helpers, err = ParseHelpers(names); err != nil {
			return registry.Scope{}, fmt.Errorf("imageRegistryCredentials.providers: %w", err)
		}
	}
	ids = append(ids, "helpers "+strings.Join(helpers, ","))
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	key := hex.EncodeToString(sum[:])

	r.mu.Lock()
	defer r.mu.Unlock()
	if kc, ok := r.keychains.Get(key); ok {
		return registry.Scope{Key: key, Keychain: kc}, nil
	}
	hk, ok := r.helperKCs[strings.Join(helpers, ",")]
	if !ok {
		hk = helpersKeychain(helpers)
		r.helperKCs[strings.Join(helpers, ",")] = hk
	}
	kc := authn.NewMultiKeychain(append(kcs, hk)...)
	r.keychains.Add(key, kc)
	return registry.Scope{Key: key, Keychain: kc}, nil
}

// strict reads a Secret that configuration names explicitly: anything but a usable pull
// secret is an error naming it.
func (r *Resolver) strict(ctx context.Context, ref SecretRef) (*pullSecret, error) {
	p, err := r.secrets.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, fmt.Errorf("image pull secret %s: %w", ref, p.err)
	}
	return p, nil
}
