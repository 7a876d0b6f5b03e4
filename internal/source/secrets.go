package source

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SecretKeys reads the public keys policies name in Secrets (keys.secret,
// k8s://<namespace>/<name>) from the API server, as ConfigMaps are read: a GET on first use,
// reused for ConfigMapTTL (a Secret that does not exist too), one GET in flight per Secret.
// Only the Secret's key entry is kept; nothing else of the Secret stays in memory, and nothing
// is listed or watched.
type SecretKeys struct {
	client kubernetes.Interface
	key    string
	cache  *fetchCache
}

// NewSecretKeys returns a reader of the data entry key (cosign.pub) of Secrets.
func NewSecretKeys(client kubernetes.Interface, key string) *SecretKeys {
	return &SecretKeys{client: client, key: key, cache: newFetchCache(ConfigMapTTL)}
}

// Get returns the Secret's key entry. A Secret without it is an error naming the entry.
func (s *SecretKeys) Get(ctx context.Context, namespace, name string) (string, error) {
	v, err := s.cache.get(ctx, "secret "+namespace+"/"+name, func(ctx context.Context) (fetched, error) {
		sec, err := s.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return fetched{err: err}, nil
		case err != nil:
			return fetched{}, err
		}
		b, ok := sec.Data[s.key]
		if !ok {
			return fetched{err: fmt.Errorf("secret %q has no %s", name, s.key)}, nil
		}
		return fetched{value: string(b), size: int64(len(b))}, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}
