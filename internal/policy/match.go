package policy

import (
	"regexp"
	"slices"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/imageref"
)

// Request describes what is being admitted, for matching.
type Request struct {
	Group, Version, Kind string
	Subresource          string
	Name                 string // metadata.name, or metadata.generateName when the name is empty
	Namespace            string
	Labels               map[string]string
	Annotations          map[string]string
	Operation            v1.AdmissionOperation
	NamespaceLabels      map[string]string
	User                 *UserInfo // nil: no admission user (CLI); user criteria in match are then ignored
}

// UserInfo is the admission user, with the roles and cluster roles bound to it.
type UserInfo struct {
	Username     string
	Groups       []string
	Roles        []string // "namespace:name"
	ClusterRoles []string
	// LookupRoles, when set, adds to Roles and ClusterRoles the roles bound to the user (its
	// RoleBindings and ClusterRoleBindings). It is called once, and only when a rule being
	// matched names roles or clusterRoles: most requests never pay for it.
	LookupRoles func(username string, groups []string) (roles, clusterRoles []string)

	lookupOnce sync.Once
}

// BoundRoles returns the user's roles ("namespace:name") and cluster roles, looking them up
// on first use.
func (u *UserInfo) BoundRoles() (roles, clusterRoles []string) {
	if u.LookupRoles != nil {
		u.lookupOnce.Do(func() {
			r, c := u.LookupRoles(u.Username, u.Groups)
			u.Roles = append(slices.Clip(u.Roles), r...)
			u.ClusterRoles = append(slices.Clip(u.ClusterRoles), c...)
		})
	}
	return u.Roles, u.ClusterRoles
}

// RequestFor builds a Request from an object (decoded JSON) and an operation.
func RequestFor(obj map[string]any, op v1.AdmissionOperation) Request {
	apiVersion, _ := obj["apiVersion"].(string)
	r := Request{Operation: op}
	r.Kind, _ = obj["kind"].(string)
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		r.Group, r.Version = apiVersion[:i], apiVersion[i+1:]
	} else {
		r.Version = apiVersion
	}
	meta, _ := obj["metadata"].(map[string]any)
	r.Name, _ = meta["name"].(string)
	if r.Name == "" {
		r.Name, _ = meta["generateName"].(string)
	}
	r.Namespace, _ = meta["namespace"].(string)
	r.Labels = stringMap(meta["labels"])
	r.Annotations = stringMap(meta["annotations"])
	return r
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		if s, ok := val.(string); ok {
			out[k] = s
		}
	}
	return out
}

// block is a compiled match or exclude block.
type block struct {
	any    []*filter
	all    []*filter
	legacy *filter // set when neither any nor all is given
}

type filter struct {
	kinds       []kindSelector
	names       []string // name and names
	nameGiven   bool
	namespaces  []string
	annotations map[string]string
	selector    *selector
	nsSelector  *selector
	operations  []v1.AdmissionOperation
	roles       []string
	cluster     []string
	subjects    []rbacv1.Subject
	userEmpty   bool
}

type kindSelector struct{ group, version, kind, sub string }

var versionRegex = regexp.MustCompile(`^(v\d+((alpha|beta)\d+)?|\*)$`)

// parseKindSelector splits a kind selector as Kyverno does (pkg/utils/kube ParseKindSelector):
// Kind, version/Kind, group/version/Kind, each optionally with a /subresource (or .subresource).
func parseKindSelector(input string) kindSelector {
	parts := strings.Split(input, "/")
	last := parts[len(parts)-1]
	parts = append(parts[:len(parts)-1], strings.Split(last, ".")...)
	switch len(parts) {
	case 1:
		return kindSelector{"*", "*", parts[0], ""}
	case 2:
		if parts[0] == "*" && parts[1] == "*" {
			return kindSelector{"*", "*", "*", "*"}
		}
		if parts[0] == "*" && strings.ToLower(parts[1]) == parts[1] {
			return kindSelector{"*", "*", parts[0], parts[1]}
		}
		if versionRegex.MatchString(parts[0]) {
			return kindSelector{"*", parts[0], parts[1], ""}
		}
		return kindSelector{"*", "*", parts[0], parts[1]}
	case 3:
		if versionRegex.MatchString(parts[0]) {
			return kindSelector{"*", parts[0], parts[1], parts[2]}
		}
		return kindSelector{parts[0], parts[1], parts[2], ""}
	case 4:
		return kindSelector{parts[0], parts[1], parts[2], parts[3]}
	}
	return kindSelector{"", "", "", ""} // matches nothing
}

func (k kindSelector) matches(r *Request) bool {
	if !imageref.Match(k.group, r.Group) || !imageref.Match(k.version, r.Version) || !imageref.Match(k.kind, r.Kind) {
		return false
	}
	if k.sub == "" || imageref.Match(k.sub, r.Subresource) {
		return true
	}
	// Pod rules also cover the ephemeralcontainers subresource (Kyverno's CheckKind).
	return r.Group == "" && r.Version == "v1" && r.Kind == "Pod" && r.Subresource == "ephemeralcontainers"
}

func compileBlock(m *v1.MatchResources) (block, error) {
	var b block
	var err error
	for i := range m.Any {
		f, ferr := compileFilter(&m.Any[i].UserInfo, &m.Any[i].ResourceDescription)
		err = firstErr(err, ferr)
		b.any = append(b.any, f)
	}
	for i := range m.All {
		f, ferr := compileFilter(&m.All[i].UserInfo, &m.All[i].ResourceDescription)
		err = firstErr(err, ferr)
		b.all = append(b.all, f)
	}
	if len(b.any) == 0 && len(b.all) == 0 {
		b.legacy, err = compileFilter(&m.UserInfo, &m.ResourceDescription)
	}
	return b, err
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func compileFilter(u *v1.UserInfo, rd *v1.ResourceDescription) (*filter, error) {
	f := &filter{
		namespaces:  rd.Namespaces,
		annotations: rd.Annotations,
		operations:  rd.Operations,
		roles:       u.Roles,
		cluster:     u.ClusterRoles,
		subjects:    u.Subjects,
		userEmpty:   u.IsEmpty(),
	}
	for _, k := range rd.Kinds {
		f.kinds = append(f.kinds, parseKindSelector(k))
	}
	if rd.Name != "" {
		f.names, f.nameGiven = []string{rd.Name}, true
	}
	if len(rd.Names) > 0 {
		f.names, f.nameGiven = append(f.names, rd.Names...), true
	}
	var err error
	if f.selector, err = compileSelector(rd.Selector); err != nil {
		return nil, err
	}
	if f.nsSelector, err = compileSelector(rd.NamespaceSelector); err != nil {
		return nil, err
	}
	return f, nil
}

func compileSelector(ls *metav1.LabelSelector) (*selector, error) {
	if ls == nil {
		return nil, nil
	}
	s := &selector{raw: ls}
	for k, v := range ls.MatchLabels {
		if imageref.ContainsWildcard(k) || imageref.ContainsWildcard(v) {
			return s, nil
		}
	}
	compiled, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, err
	}
	s.compiled = compiled
	return s, nil
}

// matches evaluates the selector against labels, resolving wildcard matchLabels first
// (Kyverno's wildcards.ReplaceInSelector).
func (s *selector) matches(set map[string]string) bool {
	if s.compiled != nil {
		return s.compiled.Matches(labels.Set(set))
	}
	ls := s.raw.DeepCopy()
	resolved := make(map[string]string, len(ls.MatchLabels))
	for k, v := range ls.MatchLabels {
		if !imageref.ContainsWildcard(k) && !imageref.ContainsWildcard(v) {
			resolved[k] = v
			continue
		}
		rk, rv := replaceWildcardChars(k), replaceWildcardChars(v)
		for lk, lv := range set {
			if imageref.Match(k, lk) && imageref.Match(v, lv) {
				rk, rv = lk, lv
				break
			}
		}
		resolved[rk] = rv
	}
	ls.MatchLabels = resolved
	compiled, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return false
	}
	return compiled.Matches(labels.Set(set))
}

func replaceWildcardChars(s string) string {
	return strings.NewReplacer("*", "0", "?", "0").Replace(s)
}

// resourceMatches reports whether all resource criteria of the filter hold.
func (f *filter) resourceMatches(r *Request) bool {
	if len(f.operations) > 0 && !slices.Contains(f.operations, r.Operation) {
		return false
	}
	if len(f.kinds) > 0 && !slices.ContainsFunc(f.kinds, func(k kindSelector) bool { return k.matches(r) }) {
		return false
	}
	if f.nameGiven && !slices.ContainsFunc(f.names, func(n string) bool { return imageref.Match(n, r.Name) }) {
		return false
	}
	if len(f.namespaces) > 0 {
		ns := r.Namespace
		if r.Kind == "Namespace" {
			ns = r.Name
		}
		if !imageref.MatchAny(f.namespaces, ns) {
			return false
		}
	}
	if len(f.annotations) > 0 && !annotationsMatch(f.annotations, r.Annotations) {
		return false
	}
	if f.selector != nil && !f.selector.matches(r.Labels) {
		return false
	}
	if f.nsSelector != nil && r.Kind != "Namespace" && r.Kind != "" && !f.nsSelector.matches(r.NamespaceLabels) {
		return false
	}
	return true
}

func annotationsMatch(want, have map[string]string) bool {
	for k, v := range want {
		found := false
		for hk, hv := range have {
			if imageref.Match(k, hk) && imageref.Match(v, hv) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// userMatches reports whether the user criteria hold (Kyverno's checkUserInfo).
func (f *filter) userMatches(u *UserInfo) bool {
	if u == nil {
		u = &UserInfo{}
	}
	if len(f.roles) > 0 || len(f.cluster) > 0 {
		roles, clusterRoles := u.BoundRoles()
		if len(f.roles) > 0 && !slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(f.roles, r) }) {
			return false
		}
		if len(f.cluster) > 0 && !slices.ContainsFunc(clusterRoles, func(r string) bool { return slices.Contains(f.cluster, r) }) {
			return false
		}
	}
	if len(f.subjects) > 0 && !subjectsMatch(f.subjects, u) {
		return false
	}
	return true
}

func subjectsMatch(subjects []rbacv1.Subject, u *UserInfo) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if imageref.Match("system:serviceaccount:"+s.Namespace+":"+s.Name, u.Username) {
				return true
			}
		case rbacv1.GroupKind:
			for _, g := range u.Groups {
				if imageref.Match(s.Name, g) {
					return true
				}
			}
		case rbacv1.UserKind:
			if imageref.Match(s.Name, u.Username) {
				return true
			}
		}
	}
	return false
}

// includes reports whether the filter selects the request in a match block. Without an
// admission user (the CLI), user criteria are dropped, as Kyverno does; a filter left with no
// criterion matches nothing ("match cannot be empty").
func (f *filter) includes(r *Request) bool {
	user := !f.userEmpty && r.User != nil
	if f.resourceEmpty() && !user {
		return false
	}
	return f.resourceMatches(r) && (!user || f.userMatches(r.User))
}

// excludes reports whether the filter excludes the request; user criteria always apply, so
// without an admission user a filter with user criteria never excludes.
func (f *filter) excludes(r *Request) bool {
	if f.resourceEmpty() && f.userEmpty {
		return false
	}
	return f.resourceMatches(r) && f.userMatches(r.User)
}

func (f *filter) resourceEmpty() bool {
	return len(f.kinds) == 0 && !f.nameGiven && len(f.namespaces) == 0 && len(f.annotations) == 0 &&
		f.selector == nil && f.nsSelector == nil && len(f.operations) == 0
}

func (b *block) includes(r *Request) bool {
	switch {
	case len(b.any) > 0:
		return slices.ContainsFunc(b.any, func(f *filter) bool { return f.includes(r) })
	case len(b.all) > 0:
		for _, f := range b.all {
			if !f.includes(r) {
				return false
			}
		}
		return true
	default:
		return b.legacy.includes(r)
	}
}

func (b *block) excludes(r *Request) bool {
	switch {
	case len(b.any) > 0:
		return slices.ContainsFunc(b.any, func(f *filter) bool { return f.excludes(r) })
	case len(b.all) > 0:
		for _, f := range b.all {
			if !f.excludes(r) {
				return false
			}
		}
		return true
	default:
		return b.legacy.excludes(r)
	}
}

// Applies reports whether the rule applies to the request (match and not exclude, and the
// policy's namespace for a namespaced Policy).
func (rule *Rule) Applies(r *Request) bool {
	if ns := rule.Policy.Namespace; ns != "" && ns != r.Namespace {
		return false
	}
	if !rule.match.includes(r) {
		return false
	}
	return rule.exclude == nil || !rule.exclude.excludes(r)
}

// indexKinds returns the kind names under which the rule is indexed, or nil when it may
// match any kind (a wildcard kind, or a filter without kinds).
func (b *block) indexKinds() []string {
	collect := func(fs []*filter) ([]string, bool) {
		var out []string
		for _, f := range fs {
			if len(f.kinds) == 0 {
				return nil, false
			}
			for _, k := range f.kinds {
				if imageref.ContainsWildcard(k.kind) || k.kind == "" {
					return nil, false
				}
				out = append(out, k.kind)
			}
		}
		return out, true
	}
	switch {
	case len(b.any) > 0:
		if kinds, ok := collect(b.any); ok {
			return kinds
		}
	case len(b.all) > 0:
		for _, f := range b.all {
			if kinds, ok := collect([]*filter{f}); ok {
				return kinds
			}
		}
	default:
		if kinds, ok := collect([]*filter{b.legacy}); ok {
			return kinds
		}
	}
	return nil
}

func (b *block) usesNamespaceSelector() bool {
	for _, list := range [][]*filter{b.any, b.all, {b.legacy}} {
		for _, f := range list {
			if f != nil && f.nsSelector != nil {
				return true
			}
		}
	}
	return false
}
