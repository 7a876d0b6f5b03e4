package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
	"github.com/vouchproject/vouch/internal/verify/notary"
)

// engineExtras are the long-running server's additions to the engine.
type engineExtras struct {
	cache   *cache.Cache
	workers int
	// observer counts the verifications the engine runs (metrics); nil means none.
	observer engine.Observer

	credentials engine.Credentials // nil: the docker config of the process (authn.DefaultKeychain)
	loaders     policy.Loaders     // what rule context entries read (ConfigMaps)
}

// newEngine wires the concrete adapters: registry clients (secure and insecure) and the
// signature verifiers, by verification type.
func newEngine(set *policy.Set, regOpts registry.Options, extras ...engineExtras) (*engine.Engine, error) {
	var x engineExtras
	if len(extras) > 0 {
		x = extras[0]
	}
	regs, err := registry.NewPair(regOpts)
	if err != nil {
		return nil, err
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		return nil, err
	}
	nv, err := notary.New(notary.Options{Registry: regs.Client})
	if err != nil {
		return nil, err
	}
	return engine.New(engine.Options{
		Policies:  set,
		Registry:  regs,
		Verifiers: map[string]verify.Verifier{"Cosign": cv, "SigstoreBundle": cv, "Notary": nv},
		Cache:     x.cache,
		Workers:   x.workers,
		Observer:  x.observer,

		Credentials: x.credentials,
		Loaders:     x.loaders,
	})
}

// resourceLoaders are the context loaders of `vouch apply`: the ConfigMaps among the resources,
// and the public keys (cosign.pub) of the Secrets among them for keys.secret and k8s://
// references.
func resourceLoaders(objs []manifest.Object) (policy.Loaders, error) {
	cms := manifest.ConfigMaps(objs)
	keys, err := manifest.SecretData(objs, policy.SecretKeyName)
	if err != nil {
		return policy.Loaders{}, err
	}
	return policy.Loaders{
		ConfigMap: func(_ context.Context, namespace, name string) (map[string]any, error) {
			cm, ok := cms[namespace+"/"+name]
			if !ok {
				return nil, fmt.Errorf("configmaps %q not found among the resources", name)
			}
			return cm, nil
		},
		SecretKey: func(_ context.Context, namespace, name string) (string, error) {
			key, ok := keys[namespace+"/"+name]
			if !ok {
				return "", errors.New("not among the resources")
			}
			return key, nil
		},
	}, nil
}
