package source

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
)

// GVRs of Kyverno's policy resources.
var (
	ClusterPolicies = schema.GroupVersionResource{Group: v1.Group, Version: v1.Version, Resource: "clusterpolicies"}
	Policies        = schema.GroupVersionResource{Group: v1.Group, Version: v1.Version, Resource: "policies"}
)

// Options configures a Source.
type Options struct {
	// Paths are policy files or directories, re-read every Interval; a change of content
	// publishes a new set.
	Paths    []string
	Interval time.Duration // 0 means 2 s
	// Dynamic, when set, watches ClusterPolicy and Policy objects of the cluster.
	Dynamic dynamic.Interface
	// Events, when set, receives an Event for every cluster policy (new generation) that is
	// loaded (Normal, PolicyLoaded), cannot be loaded (Warning, PolicyError) or uses insecure
	// settings (Warning, InsecurePolicy). internal/recorder implements it.
	Events PolicyEvents
	// OnChange receives every new compiled set. Required.
	OnChange func(*policy.Set)
	// Registerer receives the vouch_policies and vouch_policy_insecure_settings gauges; nil
	// means none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// PolicyEvents records Kubernetes Events about policy objects; it must not block.
type PolicyEvents interface {
	PolicyEvent(regarding corev1.ObjectReference, eventType, reason, action, note string)
}

// Reasons of the Events about policies.
const (
	ReasonPolicyLoaded   = "PolicyLoaded"
	ReasonPolicyError    = "PolicyError"
	ReasonInsecurePolicy = "InsecurePolicy"
)

// Source keeps the compiled policy set in step with files and the cluster.
type Source struct {
	opts    Options
	log     *slog.Logger
	gauge   *prometheus.GaugeVec
	unsafe  *prometheus.GaugeVec
	mu      sync.Mutex
	compile map[string]*policy.Policy // by identity + version, to recompile only what changed
	events  map[string]bool           // policy generations already reported
	files   []*policy.Policy
	cluster []*policy.Policy
	fileSum [32]byte
	dirty   chan struct{}
}

// New validates the options.
func New(opts Options) (*Source, error) {
	if opts.OnChange == nil {
		return nil, errors.New("source: OnChange is required")
	}
	if len(opts.Paths) == 0 && opts.Dynamic == nil {
		return nil, errors.New("source: no policy paths and no cluster: nothing to enforce")
	}
	if opts.Interval == 0 {
		opts.Interval = 2 * time.Second
	}
	s := &Source{opts: opts, log: opts.Logger, compile: map[string]*policy.Policy{}, events: map[string]bool{}, dirty: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vouch_policies", Help: "Policies by state: loaded, or broken (cannot be compiled; their rules fail closed)."}, []string{"state"})
	s.unsafe = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vouch_policy_insecure_settings",
		Help: "Insecure settings in the loaded policies, by setting (ignoreTlog, ignoreSCT, allowInsecureRegistry, unanchoredRegExp, hostWildcard, failurePolicyIgnore)."}, []string{"setting"})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.gauge, s.unsafe} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Run loads the policies, publishes the first set, then watches until ctx ends. It returns an
// error only when the first load cannot start (cluster informers that never sync).
func (s *Source) Run(ctx context.Context) error {
	var listers []cache.GenericLister
	if s.opts.Dynamic != nil {
		factory := dynamicinformer.NewDynamicSharedInformerFactory(s.opts.Dynamic, 10*time.Minute)
		for _, gvr := range []schema.GroupVersionResource{ClusterPolicies, Policies} {
			inf := factory.ForResource(gvr)
			if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc:    func(any) { s.markDirty() },
				UpdateFunc: func(any, any) { s.markDirty() },
				DeleteFunc: func(any) { s.markDirty() },
			}); err != nil {
				return err
			}
			listers = append(listers, inf.Lister())
		}
		factory.Start(ctx.Done())
		for gvr, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("source: watching %s did not sync", gvr.Resource)
			}
		}
	}
	s.reloadFiles(true)
	s.reloadCluster(listers)
	s.publish()
	ticker := time.NewTicker(s.opts.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if s.reloadFiles(false) {
				s.publish()
			}
		case <-s.dirty:
			time.Sleep(50 * time.Millisecond) // let a burst of updates settle
			s.reloadCluster(listers)
			s.publish()
		}
	}
}

func (s *Source) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// reloadFiles re-reads the policy paths; it reports whether their content changed.
func (s *Source) reloadFiles(first bool) bool {
	if len(s.opts.Paths) == 0 {
		return false
	}
	docs, err := manifest.ReadPaths(s.opts.Paths)
	if err != nil {
		s.log.Error("reading policy files; keeping the previous policies", "err", err)
		return false
	}
	h := sha256.New()
	for _, d := range docs {
		h.Write(d.JSON)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if !first && sum == s.fileSum {
		return false
	}
	s.fileSum = sum
	var out []*policy.Policy
	for _, d := range docs {
		out = append(out, s.load(d.JSON, d.Location()))
	}
	s.mu.Lock()
	s.files = out
	s.mu.Unlock()
	return true
}

func (s *Source) reloadCluster(listers []cache.GenericLister) {
	var out []*policy.Policy
	for _, l := range listers {
		objs, err := l.List(labels.Everything())
		if err != nil {
			s.log.Error("listing policies", "err", err)
			continue
		}
		for _, o := range objs {
			u, ok := o.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			data, err := json.Marshal(u.Object)
			if err != nil {
				continue
			}
			out = append(out, s.load(data, fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())))
		}
	}
	s.mu.Lock()
	s.cluster = out
	s.mu.Unlock()
}

// load compiles one policy document, or returns its fail-closed stand-in.
func (s *Source) load(data []byte, where string) *policy.Policy {
	sum := sha256.Sum256(data)
	key := string(sum[:])
	s.mu.Lock()
	if p, ok := s.compile[key]; ok {
		s.mu.Unlock()
		return p
	}
	s.mu.Unlock()
	api, err := v1.DecodePolicy(data)
	var p *policy.Policy
	if err == nil {
		var warnings []string
		p, warnings, err = policy.Compile(api, where)
		for _, w := range warnings {
			s.log.Warn("policy warning", "policy", where, "warning", w)
		}
	}
	if err != nil {
		p = s.broken(data, api, where, err)
	} else {
		s.loaded(p, where)
	}
	s.mu.Lock()
	s.compile[key] = p
	s.mu.Unlock()
	return p
}

// broken builds the fail-closed stand-in of a policy that cannot be loaded, logs it and
// reports it with an Event.
func (s *Source) broken(data []byte, api *v1.Policy, where string, cause error) *policy.Policy {
	var head struct {
		Kind     string            `json:"kind"`
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     struct {
			FailurePolicy string `json:"failurePolicy"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(data, &head)
	fp := v1.FailurePolicyType(head.Spec.FailurePolicy)
	if api != nil {
		fp = api.Spec.GetFailurePolicy()
	}
	s.log.Error("policy cannot be loaded; its rules fail closed", "policy", where, "failurePolicy", fp, "err", cause)
	p := policy.Broken(head.Kind, head.Metadata.Namespace, head.Metadata.Name, api, fp, cause)
	p.Source = where
	s.event(head.Kind, head.Metadata, corev1.EventTypeWarning, ReasonPolicyError, "Load",
		"vouch cannot enforce this policy; its rules deny matching resources unless failurePolicy is Ignore: "+cause.Error())
	return p
}

// loaded logs a compiled policy's insecure settings and reports the policy with Events.
func (s *Source) loaded(p *policy.Policy, where string) {
	for _, f := range p.Insecure {
		s.log.Warn("policy uses an insecure setting", "policy", where, "setting", f.Setting, "field", f.Path, "why", f.Message)
	}
	s.event(p.Kind, p.API.ObjectMeta, corev1.EventTypeNormal, ReasonPolicyLoaded, "Load",
		fmt.Sprintf("vouch enforces this policy: %d verifyImages rule(s), autogen included", len(p.Rules)))
	if len(p.Insecure) > 0 {
		notes := make([]string, len(p.Insecure))
		for i, f := range p.Insecure {
			notes[i] = f.String()
		}
		s.event(p.Kind, p.API.ObjectMeta, corev1.EventTypeWarning, ReasonInsecurePolicy, "Load",
			fmt.Sprintf("vouch enforces this policy with %d insecure setting(s): %s", len(p.Insecure), strings.Join(notes, "; ")))
	}
}

// event reports a cluster policy with an Event, once per generation (status updates change
// the resourceVersion, not the generation) and reason.
func (s *Source) event(kind string, meta metav1.ObjectMeta, eventType, reason, action, note string) {
	key := fmt.Sprintf("%s/%d/%s", meta.UID, meta.Generation, reason)
	if s.opts.Events == nil || meta.UID == "" || s.events[key] {
		return
	}
	s.events[key] = true
	s.opts.Events.PolicyEvent(corev1.ObjectReference{APIVersion: v1.Group + "/" + v1.Version, Kind: kind,
		Name: meta.Name, Namespace: meta.Namespace, UID: meta.UID}, eventType, reason, action, note)
}

// publish compiles the union of file and cluster policies into a set and hands it over.
func (s *Source) publish() {
	s.mu.Lock()
	all := append(append([]*policy.Policy(nil), s.files...), s.cluster...)
	s.mu.Unlock()
	sort.SliceStable(all, func(i, j int) bool { return all[i].Kind+all[i].ReportName() < all[j].Kind+all[j].ReportName() })
	unique := all[:0]
	seen := map[string]bool{}
	for _, p := range all {
		id := p.Kind + "/" + p.ReportName()
		if seen[id] {
			s.log.Error("policy defined twice (a file and the cluster, or two files); the first is used", "policy", id, "source", p.Source)
			continue
		}
		seen[id] = true
		unique = append(unique, p)
	}
	set, err := policy.NewSet(unique)
	if err != nil {
		s.log.Error("indexing policies; keeping the previous set", "err", err)
		return
	}
	broken := 0
	settings := map[policy.Setting]int{}
	for _, p := range unique {
		if p.Err != nil {
			broken++
		}
		for _, f := range p.Insecure {
			settings[f.Setting]++
		}
	}
	for _, setting := range []policy.Setting{policy.SettingIgnoreTlog, policy.SettingIgnoreSCT, policy.SettingInsecureRegistry,
		policy.SettingUnanchoredRegExp, policy.SettingHostWildcard, policy.SettingFailOpen, policy.SettingTrustFromRequest} {
		s.unsafe.WithLabelValues(string(setting)).Set(float64(settings[setting]))
	}
	s.gauge.WithLabelValues("loaded").Set(float64(len(unique) - broken))
	s.gauge.WithLabelValues("broken").Set(float64(broken))
	s.log.Info("policies loaded", "loaded", len(unique)-broken, "broken", broken)
	s.opts.OnChange(set)
}
