package policy

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/manifest"
)

func load(t testing.TB, y string) *Set {
	t.Helper()
	docs, err := manifest.Split("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := LoadDocuments(docs)
	if err != nil {
		t.Fatalf("LoadDocuments: %v", err)
	}
	return set
}

func loadErr(t *testing.T, y string) error {
	t.Helper()
	docs, err := manifest.Split("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadDocuments(docs)
	if err == nil {
		t.Fatal("LoadDocuments succeeded, want an error")
	}
	return err
}

// TestCompileKitchenSink compiles the policy that sets every field and checks what compile
// derives from each: defaults, conversion, parsed trust material, key expansion, paths.
func TestCompileKitchenSink(t *testing.T) {
	data, err := os.ReadFile("../../api/kyverno/v1/testdata/kitchen-sink.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set := load(t, string(data))
	p := set.Policies()[0]
	if p.FailurePolicy != v1.Ignore || p.WebhookTimeout.Seconds() != 20 || !p.EmitWarning || p.Background || p.UID == "" || p.ResourceVersion != "42" {
		t.Errorf("policy settings not compiled: %+v", p)
	}
	if len(p.Overrides) != 1 || !p.Overrides[0].Matches("dev-1", map[string]string{"env": "dev"}) || p.Overrides[0].Matches("dev-1", nil) {
		t.Errorf("override not compiled: %+v", p.Overrides)
	}
	var names []string
	for _, r := range p.Rules {
		names = append(names, r.Name)
	}
	// The legacy rule matches by name, which disables autogen for the whole policy.
	if diff := cmp.Diff([]string{"everything", "legacy"}, names); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	e := p.Rules[0].Verifications[0]
	if !e.MutateDigest || !e.VerifyDigest || !e.Required || e.UseCache || !e.Entry.CosignOCI11 || e.Entry.Repository != "ghcr.io/example/signatures" {
		t.Errorf("entry flags: %+v", e)
	}
	set0 := e.Attestors[0]
	if set0.Required != 1 {
		t.Errorf("count = %d, want 1", set0.Required)
	}
	var paths []string
	for _, a := range set0.Entries {
		paths = append(paths, a.Path)
	}
	// Two PEM keys in one publicKeys field become two entries (spec §3.4).
	want := []string{".attestors[0].entries[0].keys", ".attestors[0].entries[1].keys", ".attestors[0].entries[2].keys",
		".attestors[0].entries[3].keys", ".attestors[0].entries[4].certificates", ".attestors[0].entries[5].keyless", ".attestors[0].entries[6].attestor"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("entry paths (-want +got):\n%s", diff)
	}
	k0 := set0.Entries[0]
	if len(k0.Keys) != 1 || k0.SignatureAlgorithm != "sha256" || k0.Rekor == nil || !k0.Rekor.IgnoreTlog || !k0.CTLog.IgnoreSCT || k0.Annotations["team"] != "platform" {
		t.Errorf("first key entry: %+v", k0)
	}
	if set0.Entries[2].KeyRef == "" || set0.Entries[3].Secret == nil {
		t.Errorf("kms/secret entries: %+v %+v", set0.Entries[2], set0.Entries[3])
	}
	c := set0.Entries[4]
	if c.Certificate == nil || len(c.CertificateChain) != 1 || len(c.CTLog.TSACertChain) != 1 {
		t.Errorf("certificates entry: %+v", c)
	}
	kl := set0.Entries[5].Keyless
	if kl.IssuerRegExp == nil || kl.SubjectRegExp == nil || len(kl.Roots) != 1 || kl.AdditionalExtensions["1.3.6.1.4.1.57264.1.2"] != "push" || kl.AdditionalExtensions["1.3.6.1.4.1.57264.1.3"] != "abc123" {
		t.Errorf("keyless entry: %+v", kl)
	}
	if n := set0.Entries[6].Nested; n == nil || n.Required != 1 || len(n.Entries[0].Keys) != 1 {
		t.Errorf("nested entry: %+v", n)
	}
	notary := p.Rules[0].Verifications[1]
	if notary.Type != v1.Notary || notary.MutateDigest || len(notary.Attestations) != 2 || notary.Attestations[1].Type != "vulnerability-scan" || notary.Validate == nil {
		t.Errorf("notary entry: %+v", notary)
	}
	legacy := p.Rules[1].Verifications[0]
	if diff := cmp.Diff([]string{"ghcr.io/legacy/*"}, legacy.ImageReferences); diff != "" || len(legacy.Attestors) != 1 || len(legacy.Attestors[0].Entries[0].Keys) != 1 {
		t.Errorf("legacy key entry not converted: %+v", legacy)
	}
	if kl := p.Rules[1].Verifications[1].Attestors[0].Entries[0].Keyless; kl == nil || kl.Issuer != "https://accounts.google.com" || len(kl.Roots) != 1 {
		t.Errorf("legacy keyless entry not converted: %+v", p.Rules[1].Verifications[1])
	}
	if got := p.Rules[1].Extractors["Task"][0]; got.Key != "name" || got.Value != "image" || got.Name != "steps" {
		t.Errorf("extractor = %+v", got)
	}
}

const podPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"]}]
`

func TestAutogen(t *testing.T) {
	rules := func(s *Set) (out []string) {
		for _, r := range s.Policies()[0].Rules {
			out = append(out, r.Name)
		}
		return out
	}
	all := load(t, podPolicy)
	if diff := cmp.Diff([]string{"r", "autogen-r", "autogen-cronjob-r"}, rules(all)); diff != "" {
		t.Errorf("default autogen (-want +got):\n%s", diff)
	}
	groups := map[string]string{"Deployment": "apps", "StatefulSet": "apps", "DaemonSet": "apps", "ReplicaSet": "apps", "Job": "batch", "CronJob": "batch"}
	for kind, want := range map[string]bool{"Pod": true, "Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true, "ReplicationController": true, "Job": true, "CronJob": true, "Service": false} {
		got := len(all.Match(&Request{Group: groups[kind], Kind: kind, Version: "v1", Operation: v1.Create})) > 0
		if got != want {
			t.Errorf("kind %s matched = %v, want %v", kind, got, want)
		}
	}
	none := load(t, strings.Replace(podPolicy, "metadata: {name: p}", "metadata: {name: p, annotations: {pod-policies.kyverno.io/autogen-controllers: none}}", 1))
	if diff := cmp.Diff([]string{"r"}, rules(none)); diff != "" {
		t.Errorf("autogen none (-want +got):\n%s", diff)
	}
	dep := load(t, strings.Replace(podPolicy, "metadata: {name: p}", "metadata: {name: p, annotations: {pod-policies.kyverno.io/autogen-controllers: Deployment}}", 1))
	if diff := cmp.Diff([]string{"r", "autogen-r"}, rules(dep)); diff != "" {
		t.Errorf("autogen Deployment (-want +got):\n%s", diff)
	}
	if len(dep.Match(&Request{Group: "apps", Version: "v1", Kind: "StatefulSet", Operation: v1.Create})) != 0 {
		t.Error("StatefulSet matched although only Deployment was requested")
	}
	cron := load(t, strings.Replace(podPolicy, "metadata: {name: p}", "metadata: {name: p, annotations: {pod-policies.kyverno.io/autogen-controllers: CronJob}}", 1))
	if diff := cmp.Diff([]string{"r", "autogen-cronjob-r"}, rules(cron)); diff != "" {
		t.Errorf("autogen CronJob (-want +got):\n%s", diff)
	}
	named := load(t, strings.Replace(podPolicy, "kinds: [Pod]", "kinds: [Pod], names: [web-*]", 1))
	if diff := cmp.Diff([]string{"r"}, rules(named)); diff != "" {
		t.Errorf("autogen with names (-want +got):\n%s", diff)
	}
	long := load(t, strings.Replace(podPolicy, "name: r\n", "name: "+strings.Repeat("x", 60)+"\n", 1))
	for _, name := range rules(long)[1:] {
		if len(name) != 63 {
			t.Errorf("autogen name %q not truncated to 63", name)
		}
	}
}

func TestMatchForms(t *testing.T) {
	mk := func(match string) *Set {
		return load(t, strings.Replace(podPolicy, "match: {any: [{resources: {kinds: [Pod]}}]}", match, 1))
	}
	pod := func(mod func(*Request)) *Request {
		r := &Request{Version: "v1", Kind: "Pod", Name: "web-1", Namespace: "prod", Operation: v1.Create,
			Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"team.example.com/owner": "a"},
			NamespaceLabels: map[string]string{"env": "prod"}}
		if mod != nil {
			mod(r)
		}
		return r
	}
	tests := []struct {
		name  string
		match string
		req   *Request
		want  bool
	}{
		{"legacy resources", "match: {resources: {kinds: [Pod]}}", pod(nil), true},
		{"gvk kind", "match: {resources: {kinds: [v1/Pod]}}", pod(nil), true},
		{"group wildcard", "match: {resources: {kinds: [\"*/Pod\"]}}", pod(nil), true},
		{"wrong version", "match: {resources: {kinds: [v2/Pod]}}", pod(nil), false},
		{"apps group", "match: {resources: {kinds: [apps/v1/Deployment]}}", pod(func(r *Request) { r.Group, r.Kind = "apps", "Deployment" }), true},
		{"kind wildcard", "match: {resources: {kinds: [\"*\"]}}", pod(nil), true},
		{"subresource required", "match: {resources: {kinds: [Pod/exec]}}", pod(nil), false},
		{"ephemeral containers subresource", "match: {resources: {kinds: [Pod]}}", pod(func(r *Request) { r.Subresource = "ephemeralcontainers" }), true},
		{"names wildcard", "match: {any: [{resources: {kinds: [Pod], names: [\"web-?\"]}}]}", pod(nil), true},
		{"names miss", "match: {any: [{resources: {kinds: [Pod], names: [\"api-*\"]}}]}", pod(nil), false},
		{"namespaces", "match: {any: [{resources: {kinds: [Pod], namespaces: [\"pr*\"]}}]}", pod(nil), true},
		{"annotations wildcard key", "match: {any: [{resources: {kinds: [Pod], annotations: {\"team.example.com/*\": \"?\"}}}]}", pod(nil), true},
		{"selector", "match: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {app: web}}}}]}", pod(nil), true},
		{"selector wildcard", "match: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {\"ti*\": \"fr*\"}}}}]}", pod(nil), true},
		{"selector miss", "match: {any: [{resources: {kinds: [Pod], selector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}}}]}", pod(nil), false},
		{"namespaceSelector", "match: {any: [{resources: {kinds: [Pod], namespaceSelector: {matchLabels: {env: prod}}}}]}", pod(nil), true},
		{"namespaceSelector miss", "match: {any: [{resources: {kinds: [Pod], namespaceSelector: {matchLabels: {env: dev}}}}]}", pod(nil), false},
		{"operations", "match: {any: [{resources: {kinds: [Pod], operations: [UPDATE]}}]}", pod(nil), false},
		{"operations update", "match: {any: [{resources: {kinds: [Pod], operations: [UPDATE]}}]}", pod(func(r *Request) { r.Operation = v1.Update }), true},
		{"any of two", "match: {any: [{resources: {kinds: [Service]}}, {resources: {kinds: [Pod]}}]}", pod(nil), true},
		{"all of two", "match: {all: [{resources: {kinds: [Pod]}}, {resources: {kinds: [Pod], namespaces: [prod]}}]}", pod(nil), true},
		{"all one misses", "match: {all: [{resources: {kinds: [Pod]}}, {resources: {kinds: [Pod], namespaces: [dev]}}]}", pod(nil), false},
		{"subjects ignored without a user", "match: {any: [{resources: {kinds: [Pod]}, subjects: [{kind: User, name: bob}]}]}", pod(nil), true},
		{"subjects checked with a user", "match: {any: [{resources: {kinds: [Pod]}, subjects: [{kind: User, name: bob}]}]}", pod(func(r *Request) { r.User = &UserInfo{Username: "alice"} }), false},
		{"service account subject", "match: {any: [{resources: {kinds: [Pod]}, subjects: [{kind: ServiceAccount, name: ci, namespace: tools}]}]}", pod(func(r *Request) { r.User = &UserInfo{Username: "system:serviceaccount:tools:ci"} }), true},
		{"group subject", "match: {any: [{resources: {kinds: [Pod]}, subjects: [{kind: Group, name: \"dev*\"}]}]}", pod(func(r *Request) { r.User = &UserInfo{Groups: []string{"developers"}} }), true},
		{"cluster roles", "match: {any: [{resources: {kinds: [Pod]}, clusterRoles: [admin]}]}", pod(func(r *Request) { r.User = &UserInfo{ClusterRoles: []string{"admin"}} }), true},
		{"exclude any", "match: {any: [{resources: {kinds: [Pod]}}]}\n    exclude: {any: [{resources: {kinds: [Pod], namespaces: [prod]}}]}", pod(nil), false},
		{"exclude all partial", "match: {any: [{resources: {kinds: [Pod]}}]}\n    exclude: {all: [{resources: {kinds: [Pod], namespaces: [prod]}}, {resources: {kinds: [Pod], names: [api]}}]}", pod(nil), true},
		{"exclude all full", "match: {any: [{resources: {kinds: [Pod]}}]}\n    exclude: {all: [{resources: {kinds: [Pod], namespaces: [prod]}}, {resources: {kinds: [Pod], names: [web-*]}}]}", pod(nil), false},
		{"exclude by subject needs a user", "match: {any: [{resources: {kinds: [Pod]}}]}\n    exclude: {any: [{resources: {kinds: [Pod]}, subjects: [{kind: User, name: alice}]}]}", pod(nil), true},
		{"exclude by subject with user", "match: {any: [{resources: {kinds: [Pod]}}]}\n    exclude: {any: [{resources: {kinds: [Pod]}, subjects: [{kind: User, name: alice}]}]}", pod(func(r *Request) { r.User = &UserInfo{Username: "alice"} }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := mk(tt.match)
			var got bool
			for _, r := range set.Match(tt.req) {
				if r.Name == "r" {
					got = true
				}
			}
			if got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRolesLookedUpOnlyWhenARuleNamesThem: roles bound to the user come from LookupRoles,
// called once per request and only when a rule has roles or clusterRoles criteria.
func TestRolesLookedUpOnlyWhenARuleNamesThem(t *testing.T) {
	calls := 0
	user := func() *UserInfo {
		return &UserInfo{Username: "alice", Groups: []string{"devs"}, LookupRoles: func(u string, g []string) ([]string, []string) {
			calls++
			if u != "alice" || !slices.Equal(g, []string{"devs"}) {
				t.Errorf("LookupRoles(%q, %v)", u, g)
			}
			return []string{"team-a:deployer"}, []string{"view"}
		}}
	}
	req := func() *Request {
		return &Request{Version: "v1", Kind: "Pod", Namespace: "team-a", Operation: v1.Create, User: user()}
	}
	plain := load(t, podPolicy)
	if len(plain.Match(req())) == 0 || calls != 0 {
		t.Errorf("a policy without role criteria: matched %v, %d lookups; want a match and no lookup", len(plain.Match(req())) > 0, calls)
	}
	for _, c := range []struct {
		criteria string
		want     bool
	}{
		{"clusterRoles: [view]", true},
		{"clusterRoles: [cluster-admin]", false},
		{"roles: [\"team-a:deployer\"]", true},
		{"roles: [\"team-b:deployer\"]", false},
	} {
		calls = 0
		set := load(t, strings.Replace(podPolicy, "resources: {kinds: [Pod]}", "resources: {kinds: [Pod]}, "+c.criteria, 1))
		r := req()
		got := len(set.Match(r)) > 0
		set.Match(r)
		if got != c.want || calls != 1 {
			t.Errorf("%s: matched %v (want %v), %d lookups for two matches of one request (want 1)", c.criteria, got, c.want, calls)
		}
	}
}

func TestNamespacedPolicy(t *testing.T) {
	set := load(t, strings.Replace(podPolicy, "kind: ClusterPolicy\nmetadata: {name: p}", "kind: Policy\nmetadata: {name: p, namespace: team-a}", 1))
	p := set.Policies()[0]
	if p.ReportName() != "team-a/p" || p.ScopeKey() != "team-a/p" {
		t.Errorf("names: %q %q", p.ReportName(), p.ScopeKey())
	}
	if len(set.Match(&Request{Version: "v1", Kind: "Pod", Namespace: "team-a", Operation: v1.Create})) == 0 {
		t.Error("namespaced policy did not match in its namespace")
	}
	if len(set.Match(&Request{Version: "v1", Kind: "Pod", Namespace: "team-b", Operation: v1.Create})) != 0 {
		t.Error("namespaced policy matched outside its namespace")
	}
	noNS := load(t, strings.Replace(podPolicy, "kind: ClusterPolicy", "kind: Policy", 1)).Policies()[0]
	if noNS.Namespace != "default" || noNS.ReportName() != "default/p" {
		t.Errorf("a Policy without namespace: namespace %q, report name %q; want default", noNS.Namespace, noNS.ReportName())
	}
	cp := load(t, podPolicy).Policies()[0]
	if cp.ReportName() != "p" || cp.ScopeKey() != "/p" {
		t.Errorf("cluster policy names: %q %q", cp.ReportName(), cp.ScopeKey())
	}
}

func TestLoadErrorsNameFileDocumentAndPath(t *testing.T) {
	bad := strings.Replace(podPolicy, "verifyImages: [{imageReferences: [\"*\"]}]",
		"verifyImages: [{imageReferences: [\"*\"], attestors: [{entries: [{keys: {publicKeys: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\"}}]}]}]", 1)
	err := loadErr(t, podPolicy+"---\n"+bad)
	for _, want := range []string{"test.yaml (document 2, line 11) ClusterPolicy/p", "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys", "parsing public key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	err = loadErr(t, strings.Replace(podPolicy, "imageReferences", "imageReference", 1))
	if !strings.Contains(err.Error(), "test.yaml (document 1, line 1): spec.rules[0].verifyImages[0].imageReference: unknown field") {
		t.Errorf("unknown field error = %v", err)
	}
	err = loadErr(t, podPolicy+"---\n"+podPolicy)
	if !strings.Contains(err.Error(), "ClusterPolicy/p is defined twice") {
		t.Errorf("duplicate policy error = %v", err)
	}
	err = loadErr(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
	if !strings.Contains(err.Error(), "not a kyverno.io ClusterPolicy or Policy") {
		t.Errorf("non-policy error = %v", err)
	}
	for _, bad := range []string{"certChain: notpem", "cert: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\""} {
		y := strings.Replace(podPolicy, "verifyImages: [{imageReferences: [\"*\"]}]",
			"verifyImages: [{imageReferences: [\"*\"], attestors: [{entries: [{certificates: {"+bad+"}}]}]}]", 1)
		if err := loadErr(t, y); !strings.Contains(err.Error(), "entries[0].certificates.cert") {
			t.Errorf("bad certificate %q: err = %v", bad, err)
		}
	}
	y := strings.Replace(podPolicy, "verifyImages: [{imageReferences: [\"*\"]}]",
		"verifyImages: [{imageReferences: [\"*\"], attestors: [{entries: [{keys: {publicKeys: /etc/passwd}}]}]}]", 1)
	if err := loadErr(t, y); !strings.Contains(err.Error(), "publicKeys must hold PEM") {
		t.Errorf("file key reference: err = %v", err)
	}
}

func TestBrokenPolicyFailsClosed(t *testing.T) {
	p := Broken(v1.KindClusterPolicy, "", "bad", nil, "", errors.New("spec.rules[0].x: unknown field"))
	set, err := NewSet([]*Policy{p})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Pod", "Deployment", "CronJob"} {
		rules := set.Match(&Request{Kind: kind, Version: "v1", Group: map[string]string{"Deployment": "apps", "CronJob": "batch"}[kind], Operation: v1.Create})
		if len(rules) != 1 || rules[0].Unsupported == "" || p.FailurePolicy != v1.Fail {
			t.Errorf("%s: rules = %+v", kind, rules)
		}
	}
	if len(set.Match(&Request{Kind: "ConfigMap", Version: "v1", Operation: v1.Create})) != 0 {
		t.Error("a broken policy should not cover kinds without images")
	}
}
