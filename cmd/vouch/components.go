package main

import (
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// newEngine wires the concrete adapters: registry clients (secure and insecure) and the
// signature verifiers, by verification type.
func newEngine(set *policy.Set, regOpts registry.Options) (*engine.Engine, error) {
	regs, err := registry.NewPair(regOpts)
	if err != nil {
		return nil, err
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		return nil, err
	}
	return engine.New(engine.Options{
		Policies:  set,
		Registry:  regs,
		Verifiers: map[string]verify.Verifier{"Cosign": cv},
	})
}
