package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vouchproject/vouch/internal/background"
	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/source"
	"github.com/vouchproject/vouch/internal/webhook"
)

type serveOptions struct {
	listen        string
	healthListen  string // --health-listen
	policies      []string
	kubeconfig    string
	cluster       bool
	certFile      string
	keyFile       string
	selfSigned    bool
	tlsHosts      []string
	cacheEnabled  bool
	cacheMaxSize  int
	cacheTTL      time.Duration
	cacheFailTTL  time.Duration
	workers       int
	maxAdmissions int // --max-admissions-in-flight
	maxConns      int // --max-connections
	logLevel      string
	shutdownGrace time.Duration
	events        bool // --events: Kubernetes Events on policies
	policyReports bool // --policy-reports: wgpolicyk8s.io PolicyReports

	creds credentialFlags // registry credentials (docs/CREDENTIALS.md)

	tokenRealms []string      // --registry-token-realms
	maxInFlight int           // --registry-max-in-flight
	cooldown    time.Duration // --registry-circuit-cooldown

	scanInterval time.Duration // --background-scan-interval
}

func serveCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR] [--policies PATH...] [--kubeconfig F] [--tls-cert-file F --tls-key-file F | --tls-self-signed]",
		Short: "Run the HTTPS admission webhook (/mutate, /validate, /validate-policy, /healthz, /readyz, /metrics)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", ":9443", "listen address")
	f.StringVar(&o.healthListen, "health-listen", "", "a second listen address serving /healthz, /readyz and /metrics over plain HTTP, outside --max-connections (for the kubelet's probes); they are served on --listen as well")
	f.StringArrayVar(&o.policies, "policies", nil, "policy file or directory, re-read on change (repeatable)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig for cluster policies and namespace labels (default: in-cluster when running in a Pod)")
	f.BoolVar(&o.cluster, "cluster-policies", true, "enforce the cluster's ClusterPolicy and Policy objects when a cluster is configured")
	f.StringVar(&o.certFile, "tls-cert-file", "", "serving certificate (PEM), reloaded on change")
	f.StringVar(&o.keyFile, "tls-key-file", "", "serving key (PEM), reloaded on change")
	f.BoolVar(&o.selfSigned, "tls-self-signed", false, "serve with a throwaway self-signed CA and print its bundle (for a quick local try)")
	f.StringSliceVar(&o.tlsHosts, "tls-hosts", []string{"localhost", "127.0.0.1"}, "names and IPs of the self-signed certificate")
	f.BoolVar(&o.cacheEnabled, "imageVerifyCacheEnabled", true, "cache verification results by image digest")
	f.IntVar(&o.cacheMaxSize, "imageVerifyCacheMaxSize", 1000, "maximum cached verification results (0: 1000)")
	f.DurationVar(&o.cacheTTL, "imageVerifyCacheTTLDuration", time.Hour, "how long a passed verification is cached (0: 60m)")
	f.DurationVar(&o.cacheFailTTL, "imageVerifyCacheFailedTTLDuration", 30*time.Second, "how long a failed verification is cached")
	f.IntVar(&o.workers, "verification-workers", engine.DefaultWorkers, "image verifications running at once")
	f.IntVar(&o.maxAdmissions, "max-admissions-in-flight", webhook.DefaultMaxAdmissionsInFlight, "admission requests (/mutate, /validate) evaluated at once; beyond it a request is answered at once, images that need the registry as could-not-verify (each policy's failurePolicy decides); 0: no bound")
	f.IntVar(&o.maxConns, "max-connections", webhook.DefaultMaxConnections, "connections served at once; beyond it a connection waits unaccepted (in the kernel's backlog) until one closes, and its client's TLS handshake with it; 0: no bound")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.DurationVar(&o.shutdownGrace, "shutdown-grace", 30*time.Second, "time to drain in-flight requests on SIGTERM")
	f.BoolVar(&o.events, "events", true, "record Kubernetes Events (events.k8s.io) on policies: denials, Audit violations, policies loaded, broken or insecure (needs a cluster)")
	f.BoolVar(&o.policyReports, "policy-reports", true, "write a wgpolicyk8s.io PolicyReport for every admitted resource a policy applies to (needs a cluster and the CRDs)")
	o.creds.register(f)
	f.StringSliceVar(&o.tokenRealms, "registry-token-realms", nil, registryTokenRealmsUsage)
	f.IntVar(&o.maxInFlight, "registry-max-in-flight", registry.DefaultMaxInFlightPerRegistry, "requests in flight to one registry host at most")
	f.DurationVar(&o.scanInterval, "background-scan-interval", 0, "re-verify the images of every stored Pod this often (and 2s after policy changes) with the policies whose background is true, and write the results to the Pods' PolicyReports (a scan verifies afresh, never from the admission cache); one replica scans, chosen with a Lease in --namespace; 0: no background scans (needs a cluster and --policy-reports)")
	f.DurationVar(&o.cooldown, "registry-circuit-cooldown", registry.DefaultBreakerCooldown,
		"how long a registry host's open circuit fails requests at once before one probes it (under failurePolicy Ignore, how long a recovered registry's images may still be admitted unverified)")
	return cmd
}

func (o *serveOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return invalid(fmt.Errorf("serve: --log-level: %w", err))
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	tlsConfig, err := o.tls(stdout, log)
	if err != nil {
		return err
	}
	kube, dyn, err := o.clients()
	if err != nil {
		return invalid(err)
	}
	clusterPolicies := dyn // nil with --cluster-policies=false; dyn still writes PolicyReports
	if !o.cluster {
		clusterPolicies = nil
	}
	if len(o.policies) == 0 && clusterPolicies == nil {
		return invalid(errors.New("serve: give --policies PATH and/or a cluster (--kubeconfig or in-cluster)"))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	results, err := cache.New(cache.Options{Enabled: o.cacheEnabled, MaxSize: o.cacheMaxSize, TTL: o.cacheTTL, FailTTL: o.cacheFailTTL})
	if err != nil {
		return invalid(err)
	}
	obs, err := newObservability(reg, results, kube, dyn, o.events, o.policyReports, log)
	if err != nil {
		return err
	}
	empty, err := policy.NewSet(nil)
	if err != nil {
		return err
	}
	creds, err := o.creds.resolver(kube)
	if err != nil {
		return invalid(fmt.Errorf("serve: %w", err))
	}
	if o.maxAdmissions < 0 {
		return invalid(errors.New("serve: --max-admissions-in-flight must not be negative"))
	}
	if o.maxConns < 0 {
		return invalid(errors.New("serve: --max-connections must not be negative"))
	}
	if o.maxInFlight <= 0 {
		return invalid(errors.New("serve: --registry-max-in-flight must be positive"))
	}
	switch {
	case o.scanInterval == 0:
	case o.scanInterval < time.Second:
		return invalid(errors.New("serve: --background-scan-interval must be at least 1s (or 0: off)"))
	case kube == nil:
		return invalid(errors.New("serve: --background-scan-interval needs a cluster (--kubeconfig or in-cluster)"))
	case !o.policyReports:
		return invalid(errors.New("serve: --background-scan-interval needs --policy-reports (its results are PolicyReports)"))
	}
	if o.cooldown < time.Second || o.cooldown > 10*time.Minute {
		return invalid(errors.New("serve: --registry-circuit-cooldown must be between 1s and 10m"))
	}
	regOpts := registry.Options{Metrics: obs.requests, TokenRealms: o.tokenRealms, MaxInFlightPerRegistry: o.maxInFlight, BreakerCooldown: o.cooldown}
	if _, err := registry.New(regOpts); err != nil {
		return invalid(fmt.Errorf("serve: --registry-token-realms: %w", err))
	}
	var loaders policy.Loaders
	if kube != nil {
		loaders.ConfigMap = source.NewConfigMaps(kube).Get
		loaders.APICall = source.NewAPICalls(kube.CoreV1().RESTClient()).Get
		loaders.SecretKey = source.NewSecretKeys(kube, policy.SecretKeyName).Get
	}
	base, err := newEngine(empty, regOpts, engineExtras{cache: results, workers: o.workers, credentials: creds, observer: obs.verifications, loaders: loaders})
	if err != nil {
		return err
	}
	var current atomic.Pointer[engine.Engine]
	var loaded atomic.Bool // the policies were loaded once
	var rescan func()      // a background scan after a policy change; set before the source runs
	var nsLabels func(string) map[string]string
	var roles func(string, []string) ([]string, []string)
	if kube != nil {
		ns, err := source.WatchNamespaces(ctx, kube)
		if err != nil {
			return err
		}
		nsLabels = ns.Labels
		rbac, err := source.WatchRoles(ctx, kube)
		if err != nil {
			return err
		}
		roles = rbac.For
	}
	src, err := source.New(source.Options{
		Paths: o.policies, Dynamic: clusterPolicies, Events: obs.policyEvents(), Registerer: reg, Logger: log,
		OnChange: func(set *policy.Set) {
			current.Store(base.With(set))
			loaded.Store(true)
			if rescan != nil {
				rescan()
			}
		},
	})
	if err != nil {
		return invalid(err)
	}
	scanner, scan, err := o.backgroundScans(kube, obs, func() *engine.Engine {
		if !loaded.Load() {
			return nil // the first scan waits for the policies
		}
		return current.Load()
	}, nsLabels, reg, log)
	if err != nil {
		return err
	}
	if scanner != nil {
		rescan = scanner.PoliciesChanged
	}
	srcErr := make(chan error, 1)
	go func() { srcErr <- src.Run(ctx) }()
	go obs.run(ctx)
	if scan != nil {
		go scan(ctx)
	}
	srv, err := webhook.New(webhook.Options{
		Addr: o.listen, TLS: tlsConfig, Engine: current.Load, NamespaceLabels: nsLabels, Roles: roles,
		Registry: reg, Logger: log, ShutdownTimeout: o.shutdownGrace, MaxAdmissionsInFlight: o.maxAdmissions,
		MaxConnections: o.maxConns, HealthAddr: o.healthListen, OnAdmission: obs.onAdmission(), CheckPolicy: policy.Check,
	})
	if err != nil {
		return err
	}
	log.Info("vouch serve listening", "addr", o.listen, "health", o.healthListen, "policies", strings.Join(o.policies, ","), "cluster", clusterPolicies != nil)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ListenAndServe(ctx) }()
	select {
	case err := <-srcErr:
		if err != nil {
			return err
		}
		return <-serveErr
	case err := <-serveErr:
		return err
	}
}

// tls returns the serving configuration: reloaded files, or a self-signed pair whose CA bundle
// is printed.
func (o *serveOptions) tls(stdout io.Writer, log *slog.Logger) (*tls.Config, error) {
	switch {
	case o.selfSigned && (o.certFile != "" || o.keyFile != ""):
		return nil, invalid(errors.New("serve: --tls-self-signed excludes --tls-cert-file/--tls-key-file"))
	case o.selfSigned:
		cfg, bundle, err := webhook.SelfSigned(o.tlsHosts)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "vouch serve: self-signed CA bundle (caBundle of the webhook configurations):\n%s", bundle)
		return cfg, nil
	case o.certFile == "" || o.keyFile == "":
		return nil, invalid(errors.New("serve: give --tls-cert-file and --tls-key-file, or --tls-self-signed"))
	}
	r, err := webhook.NewCertReloader(o.certFile, o.keyFile, log)
	if err != nil {
		return nil, invalid(err)
	}
	return r.TLSConfig(), nil
}

// clients returns Kubernetes clients from --kubeconfig or the in-cluster configuration, or
// nils when neither is available.
func (o *serveOptions) clients() (kubernetes.Interface, dynamic.Interface, error) {
	var cfg *rest.Config
	var err error
	switch {
	case o.kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err = rest.InClusterConfig()
	default:
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("serve: kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "vouch"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return kube, dyn, nil
}

// backgroundScans returns the scanner of --background-scan-interval and what runs it: the
// replica that holds the Lease scans; nils when scans are off.
func (o *serveOptions) backgroundScans(kube kubernetes.Interface, obs *observability, eng func() *engine.Engine,
	nsLabels func(string) map[string]string, reg prometheus.Registerer, log *slog.Logger) (*background.Scanner, func(context.Context), error) {
	if o.scanInterval == 0 {
		return nil, nil, nil
	}
	if obs.recorder == nil {
		return nil, nil, errors.New("serve: background scans without a recorder")
	}
	ns := o.creds.namespace // vouch's own: the Lease lives there
	scanner, err := background.New(background.Options{Client: kube, Engine: eng, NamespaceLabels: nsLabels,
		Record: obs.recorder.Scanned, Interval: o.scanInterval, Registerer: reg, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, err
	}
	election := background.Election{Client: kube, Namespace: ns, Identity: host + "_" + hex.EncodeToString(id), Logger: log}
	return scanner, func(ctx context.Context) {
		if err := election.Run(ctx, scanner.Run); err != nil {
			log.Error("background scans stopped", "error", err)
		}
	}, nil
}
