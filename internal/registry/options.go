package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Defaults applied by New to zero fields of Options.
const (
	DefaultMaxManifestBytes = 4 << 20  // distribution's own limit for a manifest
	DefaultMaxBlobBytes     = 16 << 20 // signature layers, bundles, DSSE envelopes
	DefaultMaxRedirects     = 5
	DefaultMaxReferrers     = 50 // Kyverno: "too many referrers found, max limit is 50"
	DefaultUserAgent        = "vouch"
	defaultDialTimeout      = 5 * time.Second // Kyverno's registry client dials with 5 s

	// DefaultMaxRetries is how many times a GET or HEAD answered 408, 429, 502, 503 or 504 (or
	// cut by a connection reset) is sent again, when the wait fits in the time budget.
	DefaultMaxRetries = 2
	// DefaultRetryDelay is the base of the exponential backoff between retries (jittered), used
	// when the registry sends no Retry-After.
	DefaultRetryDelay = 200 * time.Millisecond
	// DefaultMaxInFlightPerRegistry bounds the requests in flight to one registry host.
	DefaultMaxInFlightPerRegistry = 16
	// DefaultBreakerThreshold is how many consecutive failing requests (5xx, 429, network
	// errors, deadlines) open a registry host's circuit.
	DefaultBreakerThreshold = 5
	// DefaultBreakerCooldown is how long an open circuit fails requests at once before one
	// request probes the registry again.
	DefaultBreakerCooldown = 10 * time.Second
)

// Pullers (ggcr's per-repository cache of pings and tokens) are replaced after this long or this
// many uses, so a long-lived Client neither grows without bound nor keeps credentials resolved
// from a keychain forever.
const (
	pullerMaxAge  = 10 * time.Minute
	pullerMaxUses = 10000
	// pullerJobs is ggcr's per-Puller limit on concurrent blob downloads (its default, 4, would
	// serialise admission requests sharing the Client).
	pullerJobs = 32
)

// Options configures a Client. The zero value is valid: docker-config credentials, the default
// transport and the default limits.
type Options struct {
	// Keychain finds credentials per registry; nil means authn.DefaultKeychain (the docker
	// config file, anonymous when there is none).
	Keychain authn.Keychain
	// Base is the network transport; nil means a clone of remote.DefaultTransport with a 5 s
	// dial timeout (and, with Insecure, no TLS certificate verification).
	Base http.RoundTripper
	// Insecure is Kyverno's allowInsecureRegistry: references are parsed with name.Insecure, so
	// every registry may be reached over plain HTTP after HTTPS fails, and the default Base skips
	// TLS verification. A caller-supplied Base is used as it is. Without it, plain HTTP is still
	// tried for localhost, loopback and RFC 1918 registries (ggcr's rule, kept as is).
	Insecure bool
	// MaxManifestBytes caps manifest and referrers-list bodies; 0 means 4 MiB.
	MaxManifestBytes int64
	// MaxBlobBytes caps blob bodies (signature layers, bundles, envelopes); 0 means 16 MiB.
	MaxBlobBytes int64
	// MaxRedirects ends redirect chains; 0 means 5.
	MaxRedirects int
	// MaxReferrers is the most descriptors Referrers accepts (more is an error, never a silent
	// truncation); 0 means 50.
	MaxReferrers int
	// UserAgent prefixes ggcr's User-Agent; "" means "vouch".
	UserAgent string
	// Metrics, when set, counts every request the Client's transport sends.
	Metrics *Counter

	// MaxRetries is how many times a failed GET or HEAD may be retried (see DefaultMaxRetries);
	// 0 means 2, a negative value none.
	MaxRetries int
	// RetryDelay is the base backoff between retries without Retry-After; 0 means 200 ms.
	RetryDelay time.Duration
	// MaxInFlightPerRegistry bounds the requests in flight to one registry host (a response
	// body being read counts); 0 means 16.
	MaxInFlightPerRegistry int
	// BreakerThreshold is how many consecutive failing requests to a registry host open its
	// circuit; 0 means 5.
	BreakerThreshold int
	// BreakerCooldown is how long an open circuit fails requests at once; 0 means 10 s.
	BreakerCooldown time.Duration
	// TokenRealms extends DefaultTokenRealms: hosts (host or host:port, "*" for one DNS label)
	// of HTTPS token services that may receive a registry's credentials although they are not
	// on the registry's own host and port (see docs/SECURITY.md).
	TokenRealms []string

	hosts *hostTable // shared by the Clients of a Pair; nil: New makes one
}

// Client talks to registries with the limits of Options. It is safe for concurrent use, and
// reuses pings and token exchanges per repository across calls (ggcr's remote.Puller).
type Client struct {
	opts      Options
	keychain  authn.Keychain
	transport *roundTripper
	nameOpts  []name.Option
	scopes    *scopes // per-credential-scope clients (nil in those clients themselves)

	mu         sync.Mutex
	puller     *remote.Puller
	pullerBorn time.Time
	pullerUses int
}

// New validates opts, applies defaults and returns a Client.
func New(opts Options) (*Client, error) {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxManifestBytes", opts.MaxManifestBytes},
		{"MaxBlobBytes", opts.MaxBlobBytes},
		{"MaxRedirects", int64(opts.MaxRedirects)},
		{"MaxReferrers", int64(opts.MaxReferrers)},
		{"RetryDelay", int64(opts.RetryDelay)},
		{"MaxInFlightPerRegistry", int64(opts.MaxInFlightPerRegistry)},
		{"BreakerThreshold", int64(opts.BreakerThreshold)},
		{"BreakerCooldown", int64(opts.BreakerCooldown)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", f.name, f.v))
		}
	}
	if strings.ContainsAny(opts.UserAgent, "\r\n\x00") {
		errs = append(errs, errors.New("UserAgent must not contain control characters"))
	}
	realms, err := newRealmPolicy(opts.TokenRealms)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid registry options: %w", err)
	}
	opts.MaxManifestBytes = orDefault(opts.MaxManifestBytes, DefaultMaxManifestBytes)
	opts.MaxBlobBytes = orDefault(opts.MaxBlobBytes, DefaultMaxBlobBytes)
	opts.MaxRedirects = orDefault(opts.MaxRedirects, DefaultMaxRedirects)
	opts.MaxReferrers = orDefault(opts.MaxReferrers, DefaultMaxReferrers)
	opts.UserAgent = orDefault(opts.UserAgent, DefaultUserAgent)
	opts.MaxRetries = max(orDefault(opts.MaxRetries, DefaultMaxRetries), 0)
	opts.RetryDelay = orDefault(opts.RetryDelay, DefaultRetryDelay)
	opts.MaxInFlightPerRegistry = orDefault(opts.MaxInFlightPerRegistry, DefaultMaxInFlightPerRegistry)
	opts.BreakerThreshold = orDefault(opts.BreakerThreshold, DefaultBreakerThreshold)
	opts.BreakerCooldown = orDefault(opts.BreakerCooldown, DefaultBreakerCooldown)
	if opts.hosts == nil {
		opts.hosts = newHostTable(opts.MaxInFlightPerRegistry, opts.BreakerThreshold, opts.BreakerCooldown)
	}
	c := &Client{opts: opts, keychain: opts.Keychain, scopes: newScopes()}
	if c.keychain == nil {
		c.keychain = authn.DefaultKeychain
	}
	base := opts.Base
	if base == nil {
		base = defaultBase(opts.Insecure)
	}
	c.transport = &roundTripper{
		base:          base,
		manifestLimit: opts.MaxManifestBytes,
		blobLimit:     opts.MaxBlobBytes,
		maxRedirects:  opts.MaxRedirects,
		metrics:       opts.Metrics,
		retry:         retryPolicy{max: opts.MaxRetries, delay: opts.RetryDelay},
		hosts:         opts.hosts,
		realms:        realms,
	}
	if opts.Insecure {
		c.nameOpts = []name.Option{name.Insecure}
	}
	return c, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func defaultBase(insecure bool) http.RoundTripper {
	var t *http.Transport
	if dt, ok := remote.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	t.DialContext = (&net.Dialer{Timeout: defaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	if insecure {
		// allowInsecureRegistry: the user asked for unverified TLS to this policy's registries.
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opt-in, see Options.Insecure
	}
	return t
}

// NameOptions returns the options for parsing references for this Client: name.Insecure when
// Options.Insecure is set. The Client's own calls re-apply them to the references they get.
func (c *Client) NameOptions() []name.Option {
	return append([]name.Option(nil), c.nameOpts...)
}

// Transport returns the Client's capping, verifying, redirect-limiting and counting transport,
// without authentication, for libraries that speak to registries without ggcr (notation-go
// through oras-go). Wrap it with their own auth layer; ggcr users want RemoteOptions.
func (c *Client) Transport() http.RoundTripper { return c.transport }

// Keychain returns the keychain the Client authenticates with, for libraries that need
// credentials in their own form (oras-go's credential function). KeychainFor gives the one
// of a call's credential scope.
func (c *Client) Keychain() authn.Keychain { return c.keychain }

// KeychainFor returns the keychain of the credential Scope ctx carries, else Keychain().
func (c *Client) KeychainFor(ctx context.Context) authn.Keychain { return c.scoped(ctx).keychain }

// RemoteOptions returns the ggcr options that route a call through this Client: its transport
// (and so its retry policy, with ggcr's own retries disabled), keychain, user agent, ctx, and remote.Reuse of its Puller so that pings and
// token exchanges are shared with every other call on the same repository. Pass them to every
// ggcr call, including those made by cosign (ociremote.WithRemoteOptions). The credentials are
// those of the Scope ctx carries (WithScope), else Options.Keychain.
func (c *Client) RemoteOptions(ctx context.Context) []remote.Option {
	c = c.scoped(ctx)
	opts := c.baseOptions()
	opts = append(opts, remote.WithContext(ctx))
	if p := c.pullerNow(); p != nil {
		opts = append(opts, remote.Reuse(p))
	}
	return opts
}

func (c *Client) baseOptions() []remote.Option {
	return []remote.Option{
		remote.WithTransport(c.transport),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithUserAgent(c.opts.UserAgent),
		// One retry policy, the transport's (retryPolicy): ggcr's would retry under it, sleeping
		// without regard to the context or Retry-After.
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithJobs(pullerJobs),
	}
}

// pullerNow returns the current Puller, replacing it when it is too old or too used. It returns
// nil only if ggcr refuses the options, which cannot happen with baseOptions.
func (c *Client) pullerNow() *remote.Puller {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.puller == nil || time.Since(c.pullerBorn) > pullerMaxAge || c.pullerUses >= pullerMaxUses {
		p, err := remote.NewPuller(c.baseOptions()...)
		if err != nil {
			return nil
		}
		c.puller, c.pullerBorn, c.pullerUses = p, time.Now(), 0
	}
	c.pullerUses++
	return c.puller
}
