package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/vouchproject/vouch/internal/engine"
)

// DefaultMaxBodyBytes caps an AdmissionReview body (controller-runtime's limit).
const DefaultMaxBodyBytes = 7 << 20

// Options configures a Server.
type Options struct {
	// Addr is the listen address, e.g. ":9443".
	Addr string
	// TLS supplies the serving certificate (see NewCertReloader and SelfSigned). Required.
	TLS *tls.Config
	// Engine returns the engine to evaluate with, nil until policies are loaded. It is
	// called per request, so the policy set can be swapped atomically behind it. Required.
	Engine func() *engine.Engine
	// NamespaceLabels returns a namespace's labels for namespaceSelector; nil means none.
	NamespaceLabels func(namespace string) map[string]string
	// Roles returns the roles ("namespace:name") and cluster roles bound to the admission user,
	// for the roles and clusterRoles criteria of match and exclude; called only when a rule
	// being matched has them. nil means the user has none.
	Roles func(username string, groups []string) (roles, clusterRoles []string)
	// OnAdmission, when set, receives every request the engine evaluated, with its response
	// and decision, before the answer is written (Events and PolicyReports). It is called on
	// the admission path and must not block.
	OnAdmission func(Admission)
	// CheckPolicy, when set, serves /validate-policy: it validates a kyverno.io ClusterPolicy
	// or Policy (the object of a CREATE or UPDATE, as JSON) and returns the warnings to show
	// its author, or the error that rejects it. nil answers 404 on /validate-policy.
	CheckPolicy func(object []byte) (warnings []string, err error)
	// MaxBodyBytes caps request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Registry receives the server's metrics and is served on /metrics; nil means a new one.
	Registry *prometheus.Registry
	// Logger for request logs; nil means slog.Default().
	Logger *slog.Logger
	// ShutdownTimeout bounds the draining of in-flight requests; 0 means 30 s.
	ShutdownTimeout time.Duration
	// MaxAdmissionsInFlight bounds the /mutate and /validate requests evaluated at once; 0
	// means no bound. A request beyond it does not wait: it is evaluated at once with its
	// budget already spent, so that what the cache knows still answers and every image that
	// needs the registry is "could not verify image …: vouch is overloaded", which each
	// policy's failurePolicy decides. See DefaultMaxAdmissionsInFlight.
	MaxAdmissionsInFlight int
	// MaxConnections bounds the connections served at once; 0 means no bound. A connection
	// beyond it is not accepted until one closes: it waits in the kernel's accept backlog (its
	// client's TLS handshake waits, until the client's timeout) and costs this process nothing.
	// See DefaultMaxConnections.
	MaxConnections int
	// HealthAddr, when set, is a second listen address (ListenAndServe) serving /healthz,
	// /readyz and /metrics over plain HTTP, outside MaxConnections: the kubelet's probes are not
	// queued behind the connections of an admission storm. They are served on Addr as well.
	HealthAddr string
}

// DefaultMaxAdmissionsInFlight is `vouch serve`'s bound on admissions evaluated at once: 4 ×
// the default verification workers. A replica holds about rate × latency in flight — a few at
// 3,000 warm admissions/s on loopback, 50 at 1,000/s against a registry 50 ms away — and a
// burst of Pods waiting together for one new image's verification stays below it (pod
// controllers create Pods in slow-start batches). Past it, queueing only makes things worse
// (docs/PERFORMANCE.md, "Overload").
const DefaultMaxAdmissionsInFlight = 128

// DefaultMaxConnections is `vouch serve`'s bound on connections served at once. In normal
// operation a replica holds the API servers' pooled connections (client-go keeps 25 idle per
// host) plus those of the requests in flight — tens, a few hundred with several API servers
// under load. Far past capacity the webhook client opens a connection for every request it
// cannot put on an idle one: thousands of TLS handshakes at once, each holding memory — 0.6–0.7
// GiB measured with the default --max-admissions-in-flight, 1.8 GiB without, above the chart's
// memory limit (docs/PERFORMANCE.md, "Overload: a bound on connections").
const DefaultMaxConnections = 512

// Server is vouch's admission webhook: /mutate, /validate, /validate-policy, /healthz, /readyz
// and /metrics.
type Server struct {
	opts            Options
	engine          func() *engine.Engine
	namespaceLabels func(string) map[string]string
	maxBody         int64
	log             *slog.Logger
	metrics         *metrics
	registry        *prometheus.Registry
	shuttingDown    atomic.Bool
	http            *http.Server
	health          *http.Server // on HealthAddr

	inFlight       atomic.Int64 // /mutate and /validate requests being evaluated
	overload       error        // the cause of the spent budget of a request beyond the bound
	overloads      atomic.Int64 // requests answered as overloaded since the last warning
	overloadLogged atomic.Int64 // when the last overload warning was logged (Unix ns)
}

// New validates the options and returns a server.
func New(opts Options) (*Server, error) {
	if opts.TLS == nil {
		return nil, errors.New("webhook: Options.TLS is required")
	}
	if opts.Engine == nil {
		return nil, errors.New("webhook: Options.Engine is required")
	}
	if opts.MaxBodyBytes < 0 {
		return nil, errors.New("webhook: MaxBodyBytes must not be negative")
	}
	if opts.MaxAdmissionsInFlight < 0 {
		return nil, errors.New("webhook: MaxAdmissionsInFlight must not be negative")
	}
	if opts.MaxConnections < 0 {
		return nil, errors.New("webhook: MaxConnections must not be negative")
	}
	s := &Server{opts: opts, engine: opts.Engine, maxBody: opts.MaxBodyBytes, log: opts.Logger, registry: opts.Registry,
		overload: fmt.Errorf("vouch is overloaded (%d admissions in flight)", opts.MaxAdmissionsInFlight)}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	s.namespaceLabels = opts.NamespaceLabels
	if s.namespaceLabels == nil {
		s.namespaceLabels = func(string) map[string]string { return nil }
	}
	var err error
	if s.metrics, err = newMetrics(s.registry, s.inFlight.Load); err != nil {
		return nil, err
	}
	if s.opts.ShutdownTimeout == 0 {
		s.opts.ShutdownTimeout = 30 * time.Second
	}
	s.http = &http.Server{
		Addr:              opts.Addr,
		Handler:           s.Handler(),
		TLSConfig:         opts.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      35 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.health = &http.Server{
		Handler:           s.healthHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      35 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Handler returns the server's routes (also for tests without TLS).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mutate", s.serveAdmission(mutating))
	mux.Handle("/validate", s.serveAdmission(validating))
	if s.opts.CheckPolicy != nil {
		mux.Handle("/validate-policy", s.serveReview(policyWebhook, s.admitPolicy))
	}
	s.handleHealth(mux)
	return mux
}

// healthHandler returns the routes of HealthAddr.
func (s *Server) healthHandler() http.Handler {
	mux := http.NewServeMux()
	s.handleHealth(mux)
	return mux
}

// handleHealth adds /healthz, /readyz and /metrics to mux.
func (s *Server) handleHealth(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.shuttingDown.Load() || s.engine() == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
}

// Serve accepts connections on l (at most MaxConnections at once) until ctx ends, then stops
// being ready, drains in-flight requests (up to ShutdownTimeout) and returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.opts.MaxConnections > 0 {
		// Below TLS: a connection waiting for a slot has not been handshaken, and a slot is
		// freed when net/http closes the connection (idle, timed out, or its client gone).
		l = netutil.LimitListener(l, s.opts.MaxConnections)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(tls.NewListener(l, s.opts.TLS)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.shuttingDown.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeHealth serves /healthz, /readyz and /metrics over plain HTTP on l, with no bound on
// connections, until ctx ends.
func (s *Server) ServeHealth(ctx context.Context, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.health.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	_ = s.health.Close()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenAndServe listens on Options.Addr (and Options.HealthAddr) and serves until ctx ends.
// The health listener stays up until the webhook has drained: /readyz says "not ready" then.
func (s *Server) ListenAndServe(ctx context.Context) error {
	l, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return err
	}
	if s.opts.HealthAddr == "" {
		return s.Serve(ctx, l)
	}
	hl, err := net.Listen("tcp", s.opts.HealthAddr)
	if err != nil {
		l.Close()
		return err
	}
	hctx, stop := context.WithCancel(context.Background())
	herr := make(chan error, 1)
	go func() { herr <- s.ServeHealth(hctx, hl) }()
	err = s.Serve(ctx, l)
	stop()
	return errors.Join(err, <-herr)
}
