package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/imageref"
)

// Pair routes calls to a secure or an insecure Client according to a policy entry's
// imageRegistryCredentials.allowInsecureRegistry. It resolves vouch image references.
type Pair struct {
	Secure, Insecure *Client

	manifests *checkedManifests // nil: Resolve does not check manifests (a Pair literal)
	flights   *flights          // nil: Resolve does not coalesce (a Pair literal)
}

// NewPair builds the two clients from one set of options (Insecure is set per client). They
// share their per-registry limits on requests in flight and circuit breakers.
func NewPair(opts Options) (*Pair, error) {
	if opts.hosts == nil && opts.MaxInFlightPerRegistry >= 0 && opts.BreakerThreshold >= 0 && opts.BreakerCooldown >= 0 {
		opts.hosts = newHostTable(orDefault(opts.MaxInFlightPerRegistry, DefaultMaxInFlightPerRegistry),
			orDefault(opts.BreakerThreshold, DefaultBreakerThreshold), orDefault(opts.BreakerCooldown, DefaultBreakerCooldown))
	}
	opts.Insecure = false
	secure, err := New(opts)
	if err != nil {
		return nil, err
	}
	opts.Insecure = true
	insecure, err := New(opts)
	if err != nil {
		return nil, err
	}
	return &Pair{Secure: secure, Insecure: insecure, manifests: newCheckedManifests(), flights: newFlights()}, nil
}

// Client returns the client for the insecure setting.
func (p *Pair) Client(insecure bool) *Client {
	if insecure {
		return p.Insecure
	}
	return p.Secure
}

// Resolve returns the digest the reference resolves to ("sha256:<hex>"): the digest the
// engine verifies and pins. The manifest it names is read once per digest (GET, capped and
// verified against the digest; later resolutions cost the HEAD alone) and must be what its
// media type claims (CheckManifest): a digest of bytes that do not parse as a manifest or
// index is never returned — it is an invalid error, a failure.
//
// Resolutions in flight at the same time share one call (one HEAD) when they ask the same
// reference with the same insecure setting and credentials (the Scope ctx carries, see
// resolveKey); each caller still waits no longer than its ctx allows, and a failure is shared
// only by the callers of that call. Nothing is kept once the call has answered: a later
// Resolve asks the registry again.
func (p *Pair) Resolve(ctx context.Context, ref imageref.Ref, insecure bool) (string, error) {
	c := p.Client(insecure)
	r, err := ref.Reference(c.NameOptions()...)
	if err != nil {
		return "", &Error{Code: CodeInvalid, Op: "resolve", Ref: ref.String(), Err: err}
	}
	if p.flights == nil {
		return p.resolve(ctx, c, r)
	}
	return p.flights.do(ctx, keyOf(ctx, r, insecure), func(ctx context.Context) (string, error) { return p.resolve(ctx, c, r) })
}

// resolve asks the registry what r names and checks the manifest (see Resolve).
func (p *Pair) resolve(ctx context.Context, c *Client, r name.Reference) (string, error) {
	desc, err := c.Resolve(ctx, r)
	if err != nil {
		return "", err
	}
	if err := p.manifests.check(ctx, c, r, desc); err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// RemoteOptions returns the go-containerregistry options of the client for the setting.
func (p *Pair) RemoteOptions(ctx context.Context, insecure bool) []remote.Option {
	return p.Client(insecure).RemoteOptions(ctx)
}
