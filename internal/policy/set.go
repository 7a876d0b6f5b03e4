package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/manifest"
)

// Set is an immutable collection of compiled policies with a kind index over their rules.
type Set struct {
	nsSelector bool
	policies   []*Policy
	byKind     map[string][]*Rule
	anyKind    []*Rule // rules that may match any kind
}

// NewSet indexes compiled policies. Two policies with the same kind, namespace and name are an
// error: the second would silently shadow the first.
func NewSet(policies []*Policy) (*Set, error) {
	s := &Set{policies: policies, byKind: map[string][]*Rule{}}
	seen := map[string]string{}
	seq := 0
	for _, p := range policies {
		id := p.Kind + "/" + p.ReportName()
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s: %s is defined twice (first in %s)", p.Source, id, prev)
		}
		seen[id] = p.Source
		for _, o := range p.Overrides {
			s.nsSelector = s.nsSelector || o.NamespaceSelector != nil
		}
		for _, r := range p.Rules {
			s.nsSelector = s.nsSelector || r.match.usesNamespaceSelector() || (r.exclude != nil && r.exclude.usesNamespaceSelector())
			r.seq = seq
			seq++
			if r.kinds == nil {
				s.anyKind = append(s.anyKind, r)
				continue
			}
			added := map[string]bool{}
			for _, k := range r.kinds {
				if !added[k] {
					added[k] = true
					s.byKind[k] = append(s.byKind[k], r)
				}
			}
		}
	}
	return s, nil
}

// UsesNamespaceSelector reports whether any rule or override depends on namespace labels.
func (s *Set) UsesNamespaceSelector() bool { return s.nsSelector }

// Policies returns the compiled policies in load order.
func (s *Set) Policies() []*Policy { return s.policies }

// Match returns the rules that apply to the request, in policy and rule order. Only rules
// indexed under the request's kind (or under "any kind") are examined.
func (s *Set) Match(r *Request) []*Rule {
	a, b := s.byKind[r.Kind], s.anyKind
	var out []*Rule
	for len(a) > 0 || len(b) > 0 {
		var next *Rule
		if len(b) == 0 || (len(a) > 0 && a[0].seq < b[0].seq) {
			next, a = a[0], a[1:]
		} else {
			next, b = b[0], b[1:]
		}
		if next.Applies(r) {
			out = append(out, next)
		}
	}
	return out
}

// Load reads every policy document under paths (files or directories), validates and compiles
// each, and indexes them. All problems are reported together, each naming the file, document,
// policy and field path. Warnings are Kyverno's deprecation notices, prefixed the same way.
func Load(paths []string) (*Set, []string, error) {
	docs, err := manifest.ReadPaths(paths)
	if err != nil {
		return nil, nil, err
	}
	return LoadDocuments(docs)
}

// LoadDocuments is Load for documents already read.
func LoadDocuments(docs []manifest.Document) (*Set, []string, error) {
	var (
		policies []*Policy
		warnings []string
		errs     []error
	)
	for _, d := range docs {
		p, ws, err := CompileDocument(d.JSON, d.Location())
		warnings = append(warnings, ws...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		policies = append(policies, p)
	}
	if len(errs) > 0 {
		return nil, warnings, errors.Join(errs...)
	}
	if len(policies) == 0 {
		return nil, warnings, errors.New("no policies found")
	}
	set, err := NewSet(policies)
	return set, warnings, err
}

// CompileDocument decodes, validates and compiles one policy document (JSON), as `vouch apply`
// and the policy admission webhook do. An error is a *manifest.Error naming the location (and,
// once the document could be decoded, "<Kind>/<name>") whose cause lists one field-path
// problem per line (see Problems). Warnings are Kyverno's deprecation notices, prefixed the
// same way.
func CompileDocument(data []byte, location string) (*Policy, []string, error) {
	api, err := v1.DecodePolicy(data)
	if err != nil {
		return nil, nil, &manifest.Error{Location: location, Err: indent(err)}
	}
	label := fmt.Sprintf("%s %s/%s", location, api.Kind, api.Name)
	p, ws, err := Compile(api, label)
	warnings := make([]string, 0, len(ws))
	for _, w := range ws {
		warnings = append(warnings, label+": "+w)
	}
	if err != nil {
		return nil, warnings, &manifest.Error{Location: label, Err: indent(err)}
	}
	return p, warnings, nil
}

// Problems returns the field-path problems of an error of CompileDocument, DecodePolicy or
// Compile without the location: "<path>: <problem>", one per line, sorted — the lines
// `vouch apply` prints.
func Problems(err error) string {
	var me *manifest.Error
	if errors.As(err, &me) {
		err = me.Err
	}
	return strings.Join(problemLines(err), "\n")
}

// indent renders a multi-problem error one problem per line, sorted for stable output.
func indent(err error) error {
	lines := problemLines(err)
	if len(lines) == 1 {
		return errors.New(lines[0])
	}
	return errors.New("\n  " + strings.Join(lines, "\n  "))
}

// problemLines splits an error into its non-empty lines, trimmed and sorted.
func problemLines(err error) []string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}
