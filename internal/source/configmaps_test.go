package source

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestConfigMaps: a ConfigMap is read once per TTL (a missing one too), concurrent admissions
// share one GET, a change is seen once the TTL has passed, and an API server that cannot
// answer is an error that is not kept.
func TestConfigMaps(t *testing.T) {
	kube := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: "kyverno", Labels: map[string]string{"a": "b"}},
		Data:       map[string]string{"pub": "k1"},
	})
	var gets atomic.Int32
	release := make(chan struct{})
	var failing atomic.Bool
	kube.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		<-release
		if failing.Load() {
			return true, nil, errors.New("the server is currently unable to handle the request")
		}
		return false, nil, nil
	})
	c := NewConfigMaps(kube)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	c.cache.now = func() time.Time { return time.Unix(0, now.Load()) }
	ctx := context.Background()

	var wg sync.WaitGroup
	values := make([]map[string]any, 20)
	for i := range values {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(ctx, "kyverno", "keys")
			if err != nil {
				t.Error(err)
			}
			values[i] = v
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := gets.Load(); n != 1 {
		t.Errorf("20 concurrent reads made %d GETs, want 1", n)
	}
	for _, v := range values {
		if v["data"].(map[string]any)["pub"] != "k1" || v["metadata"].(map[string]any)["labels"].(map[string]any)["a"] != "b" {
			t.Fatalf("value %v", v)
		}
	}
	if _, err := c.Get(ctx, "kyverno", "missing"); err == nil || !strings.Contains(err.Error(), `configmaps "missing" not found`) {
		t.Errorf("missing: %v", err)
	}
	if _, err := c.Get(ctx, "kyverno", "missing"); err == nil || gets.Load() != 2 {
		t.Errorf("missing again: %v after %d GETs, want the kept answer (2 GETs)", err, gets.Load())
	}

	cm, _ := kube.CoreV1().ConfigMaps("kyverno").Get(ctx, "keys", metav1.GetOptions{})
	cm.Data["pub"] = "k2"
	if _, err := kube.CoreV1().ConfigMaps("kyverno").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := gets.Load()
	if v, _ := c.Get(ctx, "kyverno", "keys"); v["data"].(map[string]any)["pub"] != "k1" || gets.Load() != before {
		t.Errorf("within the TTL: %v, %d GETs; want the kept k1", v, gets.Load()-before)
	}
	now.Add(int64(ConfigMapTTL))
	if v, _ := c.Get(ctx, "kyverno", "keys"); v["data"].(map[string]any)["pub"] != "k2" {
		t.Errorf("after the TTL: %v, want k2", v)
	}
	now.Add(int64(ConfigMapTTL))
	failing.Store(true)
	if _, err := c.Get(ctx, "kyverno", "keys"); err == nil || !strings.Contains(err.Error(), "unable to handle") {
		t.Errorf("API server failing: %v", err)
	}
	failing.Store(false)
	if v, err := c.Get(ctx, "kyverno", "keys"); err != nil || v["data"].(map[string]any)["pub"] != "k2" {
		t.Errorf("after the failure: %v, %v; want k2 read again", v, err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	now.Add(int64(ConfigMapTTL))
	if _, err := c.Get(ctx2, "kyverno", "keys"); err == nil {
		t.Error("a cancelled admission got an answer it did not wait for")
	}
}
