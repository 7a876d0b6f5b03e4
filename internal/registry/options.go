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

// retryBackoff replaces ggcr's default (1 s then 3 s, slept without regard to the context) with
// delays that fit an admission budget: three attempts, ~250 ms then ~500 ms, with jitter.
var retryBackoff = remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 3}

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
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", f.name, f.v))
		}
	}
	if strings.ContainsAny(opts.UserAgent, "\r\n\x00") {
		errs = append(errs, errors.New("UserAgent must not contain control characters"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid registry options: %w", err)
	}
	opts.MaxManifestBytes = orDefault(opts.MaxManifestBytes, DefaultMaxManifestBytes)
	opts.MaxBlobBytes = orDefault(opts.MaxBlobBytes, DefaultMaxBlobBytes)
	opts.MaxRedirects = orDefault(opts.MaxRedirects, DefaultMaxRedirects)
	opts.MaxReferrers = orDefault(opts.MaxReferrers, DefaultMaxReferrers)
	opts.UserAgent = orDefault(opts.UserAgent, DefaultUserAgent)
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

// RemoteOptions returns the ggcr options that route a call through this Client: its transport,
// keychain, user agent and retry policy, ctx, and remote.Reuse of its Puller so that pings and
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
		remote.WithRetryBackoff(retryBackoff),
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
