package metrics

import (
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/registry"
)

// Verifications counts the verifications the engine ran. It is an engine.Observer.
type Verifications struct {
	total *prometheus.CounterVec
}

var _ engine.Observer = (*Verifications)(nil)

// NewVerifications registers vouch_verifications_total with reg.
func NewVerifications(reg prometheus.Registerer) (*Verifications, error) {
	v := &Verifications{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vouch_verifications_total",
		Help: "Signature verifications run (cache hits excluded; callers sharing one in flight count once), by type (Cosign, SigstoreBundle, Notary), route (where the verified signature was found: legacy-tag, oci11-referrer, referrers-tag-schema, sigstore-bundle; for failures the route the entry reads first) and result (pass, fail, error = could not decide).",
	}, []string{"type", "route", "result"})}
	if err := reg.Register(v.total); err != nil {
		return nil, err
	}
	return v, nil
}

// Verified counts one verification.
func (v *Verifications) Verified(verificationType, route string, result engine.Status) {
	v.total.WithLabelValues(verificationType, route, string(result)).Inc()
}

// RegisterCache registers a collector of the cache's statistics, read at each scrape. A nil
// or disabled cache reports zeros.
func RegisterCache(reg prometheus.Registerer, c *cache.Cache) error {
	return reg.Register(&cacheCollector{cache: c})
}

var (
	cacheHits = prometheus.NewDesc("vouch_verification_cache_hits_total",
		"Verification cache lookups answered from the cache.", nil, nil)
	cacheMisses = prometheus.NewDesc("vouch_verification_cache_misses_total",
		"Verification cache lookups that found no live entry (coalesced ones included).", nil, nil)
	cacheEvictions = prometheus.NewDesc("vouch_verification_cache_evictions_total",
		"Verification cache entries dropped for room (imageVerifyCacheMaxSize) or found expired.", nil, nil)
	cacheCoalesced = prometheus.NewDesc("vouch_verification_cache_coalesced_total",
		"Verification cache lookups that waited for the same verification another request had started instead of starting their own.", nil, nil)
	cacheEntries = prometheus.NewDesc("vouch_verification_cache_entries",
		"Verification results held in the cache now (expired ones not yet reclaimed included).", nil, nil)
)

type cacheCollector struct{ cache *cache.Cache }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHits, cacheMisses, cacheEvictions, cacheCoalesced, cacheEntries} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.cache.Stats()
	ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMisses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(cacheEvictions, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheCoalesced, prometheus.CounterValue, float64(s.Coalesced))
	ch <- prometheus.MustNewConstMetric(cacheEntries, prometheus.GaugeValue, float64(s.Entries))
}

// DefaultMaxRegistryHosts is how many registry hosts get a label value of their own; the
// requests to any further host are counted under "other".
const DefaultMaxRegistryHosts = 100

// OtherHost is the registry label of the hosts beyond the limit.
const OtherHost = "other"

// RegisterRegistry registers a collector of the requests counted by counter (pass the same
// Counter as registry.Options.Metrics): vouch_registry_requests_total{registry, kind, method,
// code}. code is the HTTP status code ("429" for rate limiting), or "none" when no response
// arrived (connection refused, TLS failure, deadline). Hosts come from the pods admitted, so
// only the first maxHosts seen (0 means DefaultMaxRegistryHosts) get their own label value:
// a client cannot blow up the series count with made-up registries.
func RegisterRegistry(reg prometheus.Registerer, counter *registry.Counter, maxHosts int) error {
	if maxHosts <= 0 {
		maxHosts = DefaultMaxRegistryHosts
	}
	return reg.Register(&registryCollector{counter: counter, max: maxHosts, named: map[string]bool{}})
}

var registryRequests = prometheus.NewDesc("vouch_registry_requests_total",
	"HTTP requests sent to registries (each redirect hop and retry counts), by registry host, kind (manifest, blob, referrers, ping, token, other), method and status code (none: no response).",
	[]string{"registry", "kind", "method", "code"}, nil)

type registryCollector struct {
	counter *registry.Counter
	max     int

	mu    sync.Mutex
	named map[string]bool // hosts with a label value of their own; only grows
}

func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- registryRequests }

func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.counter.Snapshot()
	keys := make([]registry.RequestKey, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	// Admit new hosts in a stable order so that the same hosts win on every replica.
	sort.Slice(keys, func(i, j int) bool { return keys[i].Host < keys[j].Host })
	type labels struct{ host, kind, method, code string }
	sums := map[labels]int{}
	c.mu.Lock()
	for _, k := range keys {
		host := k.Host
		if !c.named[host] {
			if len(c.named) < c.max {
				c.named[host] = true
			} else {
				host = OtherHost
			}
		}
		code := "none"
		if k.Status != 0 {
			code = strconv.Itoa(k.Status)
		}
		sums[labels{host, string(k.Kind), k.Method, code}] += snap[k]
	}
	c.mu.Unlock()
	for l, n := range sums {
		ch <- prometheus.MustNewConstMetric(registryRequests, prometheus.CounterValue, float64(n), l.host, l.kind, l.method, l.code)
	}
}
