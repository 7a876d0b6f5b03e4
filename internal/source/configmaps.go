package source

import (
	"context"
	"encoding/json"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ConfigMapTTL is how long a ConfigMap (or an apiCall answer) read for a rule context entry is
// reused: a key rotated in a ConfigMap is used by admissions at most this long after the
// change.
const ConfigMapTTL = 5 * time.Second

// ConfigMaps reads ConfigMaps for rule context entries (Kyverno's configMap entry) from the
// API server: a GET on first use, reused for ConfigMapTTL (a ConfigMap that does not exist
// too), one GET in flight per ConfigMap whatever the number of admissions asking. Nothing is
// watched: vouch does not hold every ConfigMap of the cluster in memory.
type ConfigMaps struct {
	client kubernetes.Interface
	cache  *fetchCache
}

// NewConfigMaps returns a reader on the client.
func NewConfigMaps(client kubernetes.Interface) *ConfigMaps {
	return &ConfigMaps{client: client, cache: newFetchCache(ConfigMapTTL)}
}

// Get returns the ConfigMap as a context value, {"data": {...}, "metadata": {...}}, which the
// caller must not modify. Waiting for another admission's GET ends with ctx.
func (c *ConfigMaps) Get(ctx context.Context, namespace, name string) (map[string]any, error) {
	v, err := c.cache.get(ctx, "configmap "+namespace+"/"+name, func(ctx context.Context) (fetched, error) {
		return c.fetch(ctx, namespace, name)
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

func (c *ConfigMaps) fetch(ctx context.Context, namespace, name string) (fetched, error) {
	cm, err := c.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fetched{err: err}, nil
	case err != nil:
		return fetched{}, err
	}
	b, err := json.Marshal(cm.ObjectMeta)
	if err != nil {
		return fetched{}, err
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		return fetched{}, err
	}
	data := make(map[string]any, len(cm.Data))
	size := int64(len(b))
	for k, v := range cm.Data {
		data[k] = v
		size += int64(len(k) + len(v))
	}
	return fetched{value: map[string]any{"data": data, "metadata": meta}, size: size}, nil
}
