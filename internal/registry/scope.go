package registry

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Scope is the credentials one group of registry calls runs with: those of one verifyImages
// entry for one admitted object (spec §7). A Client's calls use the Scope carried by their
// context (WithScope) instead of Options.Keychain.
type Scope struct {
	// Key identifies the credentials without containing them (e.g. a digest of the Secrets'
	// names, UIDs and resourceVersions and of the helper names). Calls with equal Keys share a
	// Puller — pings and token exchanges — so equal Keys must mean equal credentials. "" means
	// no scope.
	Key string
	// Keychain finds the credentials per registry.
	Keychain authn.Keychain
}

type scopeKey struct{}

// WithScope returns a context whose registry calls use s. A Scope without Key or Keychain
// leaves ctx as it is.
func WithScope(ctx context.Context, s Scope) context.Context {
	if s.Key == "" || s.Keychain == nil {
		return ctx
	}
	return context.WithValue(ctx, scopeKey{}, s)
}

// ScopeOf returns the Scope ctx carries, and whether it carries one.
func ScopeOf(ctx context.Context) (Scope, bool) {
	s, ok := ctx.Value(scopeKey{}).(Scope)
	return s, ok
}

// maxScopes bounds the per-scope clients a Client keeps (each holds a Puller); the least
// recently used is dropped first and rebuilt on its next use.
const maxScopes = 256

// scopes holds the per-scope clients of a Client.
type scopes struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, *Client]
}

// scoped returns the Client for the Scope ctx carries: c itself when there is none (or c is
// already a per-scope client), else a client sharing c's options and transport — so caps,
// redirect limits and metrics hold — with the scope's keychain and a Puller of its own.
func (c *Client) scoped(ctx context.Context) *Client {
	if c.scopes == nil {
		return c
	}
	s, ok := ScopeOf(ctx)
	if !ok {
		return c
	}
	c.scopes.mu.Lock()
	defer c.scopes.mu.Unlock()
	if d, ok := c.scopes.lru.Get(s.Key); ok {
		return d
	}
	d := &Client{opts: c.opts, keychain: s.Keychain, transport: c.transport, nameOpts: c.nameOpts}
	c.scopes.lru.Add(s.Key, d)
	return d
}

func newScopes() *scopes {
	lru, err := simplelru.NewLRU[string, *Client](maxScopes, nil)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &scopes{lru: lru}
}
