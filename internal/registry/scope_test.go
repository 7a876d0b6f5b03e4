package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/registry"
)

// TestScopeChoosesCredentials: the credential Scope a call's context carries replaces the
// Client's keychain for every call — Resolve, Manifest, Blob, Referrers and the RemoteOptions
// given to other libraries — and a call without one uses the Client's keychain.
func TestScopeChoosesCredentials(t *testing.T) {
	t.Parallel()
	good := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
	bad := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: "wrong-password"})
	host := serve(t, basicAuthRegistry(canaryPassword))
	img, dig := push(t, host, "app", "v1", remote.WithAuth(good))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	blob := mustDigest(t, host+"/app@"+ld.String())
	ctx := ctxTimeout(t, 10*time.Second)
	calls := map[string]func(ctx context.Context, c *registry.Client) error{
		"Resolve": func(ctx context.Context, c *registry.Client) error {
			_, err := c.Resolve(ctx, mustTag(t, host+"/app:v1"))
			return err
		},
		"Manifest": func(ctx context.Context, c *registry.Client) error { _, err := c.Manifest(ctx, dig); return err },
		"Blob":     func(ctx context.Context, c *registry.Client) error { _, err := c.Blob(ctx, blob); return err },
		"Referrers": func(ctx context.Context, c *registry.Client) error {
			_, err := c.Referrers(ctx, dig, "")
			return err
		},
		"RemoteOptions": func(ctx context.Context, c *registry.Client) error {
			_, err := remote.Get(dig, c.RemoteOptions(ctx)...)
			return err
		},
	}

	c := newClient(t, registry.Options{Keychain: staticKeychain{host: bad}})
	goodCtx := registry.WithScope(ctx, registry.Scope{Key: "good", Keychain: staticKeychain{host: good}})
	badCtx := registry.WithScope(ctx, registry.Scope{Key: "bad", Keychain: staticKeychain{host: bad}})
	for op, f := range calls {
		if err := f(goodCtx, c); err != nil {
			t.Errorf("%s in the good scope: %v", op, err)
		}
		for name, ctx := range map[string]context.Context{"the bad scope": badCtx, "no scope": ctx} {
			err := f(ctx, c)
			if registry.Classify(err) != registry.CodeAuth {
				t.Errorf("%s in %s: error %v, want auth", op, name, err)
			}
			if err != nil {
				assertNoSecret(t, op, err)
			}
		}
	}
	repo := mustTag(t, host+"/app:v1").Context()
	for name, tc := range map[string]struct {
		ctx  context.Context
		want authn.Authenticator
	}{"scope": {goodCtx, good}, "no scope": {ctx, bad}} {
		auth, err := c.KeychainFor(tc.ctx).Resolve(repo)
		if err != nil || auth != tc.want {
			t.Errorf("KeychainFor(%s) resolves to %v, %v", name, auth, err)
		}
	}
}

// TestScopeReusesTokens: calls in one scope share pings and token exchanges, as calls without
// a scope do; another scope exchanges its own token.
func TestScopeReusesTokens(t *testing.T) {
	t.Parallel()
	good := authn.FromConfig(authn.AuthConfig{Username: canaryUser, Password: canaryPassword})
	host := serve(t, tokenRegistry(canaryPassword))
	push(t, host, "app", "v1", remote.WithAuth(good))
	m := &registry.Counter{}
	c := newClient(t, registry.Options{Metrics: m})
	ctx := ctxTimeout(t, 10*time.Second)
	tokens := func() int {
		n := 0
		for k, v := range m.Snapshot() {
			if k.Kind == registry.KindToken {
				n += v
			}
		}
		return n
	}
	for _, scope := range []string{"a", "a", "a", "b", "b", "a"} {
		sctx := registry.WithScope(ctx, registry.Scope{Key: scope, Keychain: staticKeychain{host: good}})
		if _, err := c.Resolve(sctx, mustTag(t, host+"/app:v1")); err != nil {
			t.Fatalf("Resolve in scope %s: %v", scope, err)
		}
	}
	if got := tokens(); got != 2 {
		t.Errorf("token exchanges for scopes a,a,a,b,b,a = %d, want 2 (one per scope)", got)
	}
}

// TestWithScopeIgnoresEmpty: a Scope without key or keychain changes nothing.
func TestWithScopeIgnoresEmpty(t *testing.T) {
	t.Parallel()
	for i, s := range []registry.Scope{{}, {Key: "k"}, {Keychain: authn.DefaultKeychain}} {
		if _, ok := registry.ScopeOf(registry.WithScope(context.Background(), s)); ok {
			t.Errorf("scope %d (%s): carried", i, fmt.Sprint(s.Key))
		}
	}
}
