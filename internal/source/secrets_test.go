package source

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestSecretKeys: a Secret's cosign.pub is read once per TTL; only that entry is kept (never
// the Secret's other data); a Secret without it, or missing, is an error naming it; a change
// is seen once the TTL has passed; an API server that cannot answer is an error not kept.
func TestSecretKeys(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cosign", Namespace: "keys"},
			Data: map[string][]byte{"cosign.pub": []byte("k1"), "cosign.key": []byte("PRIVATE")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "keys"},
			Data: map[string][]byte{"token": []byte("t")}},
	)
	var gets atomic.Int32
	var failing atomic.Bool
	kube.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		if failing.Load() {
			return true, nil, errors.New("the server is currently unable to handle the request")
		}
		return false, nil, nil
	})
	s := NewSecretKeys(kube, "cosign.pub")
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	s.cache.now = func() time.Time { return time.Unix(0, now.Load()) }
	ctx := context.Background()

	for range 3 {
		if got, err := s.Get(ctx, "keys", "cosign"); err != nil || got != "k1" {
			t.Fatalf("Get = %q, %v; want k1", got, err)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("3 reads within the TTL made %d GETs, want 1", n)
	}
	s.cache.mu.Lock()
	for k, e := range s.cache.entries {
		if v, _ := e.value.(string); strings.Contains(v, "PRIVATE") || e.size != 2 {
			t.Errorf("kept for %s: %#v (size %d), want cosign.pub alone", k, e.value, e.size)
		}
	}
	s.cache.mu.Unlock()

	if _, err := s.Get(ctx, "keys", "other"); err == nil || err.Error() != `secret "other" has no cosign.pub` {
		t.Errorf("Secret without cosign.pub: %v", err)
	}
	if _, err := s.Get(ctx, "keys", "missing"); err == nil || !strings.Contains(err.Error(), `secrets "missing" not found`) {
		t.Errorf("missing Secret: %v", err)
	}

	sec, _ := kube.CoreV1().Secrets("keys").Get(ctx, "cosign", metav1.GetOptions{})
	sec.Data["cosign.pub"] = []byte("k2")
	if _, err := kube.CoreV1().Secrets("keys").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "keys", "cosign"); got != "k1" {
		t.Errorf("within the TTL after a rotation: %q, want the kept k1", got)
	}
	now.Add(int64(ConfigMapTTL))
	if got, _ := s.Get(ctx, "keys", "cosign"); got != "k2" {
		t.Errorf("after the TTL: %q, want k2", got)
	}

	now.Add(int64(ConfigMapTTL))
	failing.Store(true)
	before := gets.Load()
	if _, err := s.Get(ctx, "keys", "cosign"); err == nil || !strings.Contains(err.Error(), "unable to handle the request") {
		t.Errorf("API server failing: %v", err)
	}
	failing.Store(false)
	if got, err := s.Get(ctx, "keys", "cosign"); err != nil || got != "k2" || gets.Load() != before+2 {
		t.Errorf("after the failure: %q, %v after %d GETs; want k2 read again (the failure not kept)", got, err, gets.Load()-before)
	}
}
