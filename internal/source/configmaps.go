package source

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ConfigMapTTL is how long a ConfigMap read for a rule context entry is reused: a key rotated
// in a ConfigMap is used by admissions at most this long after the change.
const ConfigMapTTL = 5 * time.Second

// maxConfigMaps bounds the ConfigMaps kept; policies name few, but names may come from
// variables.
const maxConfigMaps = 4096

// configMapFetchTimeout bounds one GET, which admissions waiting for it share.
const configMapFetchTimeout = 5 * time.Second

// ConfigMaps reads ConfigMaps for rule context entries (Kyverno's configMap entry) from the
// API server: a GET on first use, reused for ConfigMapTTL (a ConfigMap that does not exist
// too), one GET in flight per ConfigMap whatever the number of admissions asking. Nothing is
// watched: vouch does not hold every ConfigMap of the cluster in memory.
type ConfigMaps struct {
	client kubernetes.Interface
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]configMapEntry
	flight  singleflight.Group
}

type configMapEntry struct {
	value map[string]any
	err   error // a ConfigMap that does not exist
	at    time.Time
}

// NewConfigMaps returns a reader on the client.
func NewConfigMaps(client kubernetes.Interface) *ConfigMaps {
	return &ConfigMaps{client: client, ttl: ConfigMapTTL, now: time.Now, entries: map[string]configMapEntry{}}
}

// Get returns the ConfigMap as a context value, {"data": {...}, "metadata": {...}}, which the
// caller must not modify. Waiting for another admission's GET ends with ctx.
func (c *ConfigMaps) Get(ctx context.Context, namespace, name string) (map[string]any, error) {
	key := namespace + "/" + name
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.value, e.err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("reading configmap %s: %w", key, context.Cause(ctx))
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), configMapFetchTimeout)
		defer cancel()
		e, err := c.fetch(fctx, namespace, name)
		if err != nil {
			return nil, err // the API server could not answer: not kept
		}
		c.mu.Lock()
		if len(c.entries) >= maxConfigMaps {
			c.entries = map[string]configMapEntry{}
		}
		c.entries[key] = e
		c.mu.Unlock()
		return e, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		e := r.Val.(configMapEntry)
		return e.value, e.err
	case <-ctx.Done():
		return nil, fmt.Errorf("reading configmap %s: %w", key, context.Cause(ctx))
	}
}

func (c *ConfigMaps) fetch(ctx context.Context, namespace, name string) (configMapEntry, error) {
	at := c.now()
	cm, err := c.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return configMapEntry{err: err, at: at}, nil
	case err != nil:
		return configMapEntry{}, err
	}
	b, err := json.Marshal(cm.ObjectMeta)
	if err != nil {
		return configMapEntry{}, err
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		return configMapEntry{}, err
	}
	data := make(map[string]any, len(cm.Data))
	for k, v := range cm.Data {
		data[k] = v
	}
	return configMapEntry{value: map[string]any{"data": data, "metadata": meta}, at: at}, nil
}
