package conditions

import (
	"testing"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
)

// benchConditions are three typical SLSA provenance checks.
func benchConditions() []v1.AnyAllConditions {
	return []v1.AnyAllConditions{{All: []v1.Condition{
		cond("{{ builder.id }}", "Equals", "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v*"),
		cond("{{ invocation.configSource.uri }}", "AnyIn", []any{"git+https://github.com/acme/*", "git+https://gitlab.com/acme/*"}),
		cond("{{ time_since('', metadata.buildFinishedOn, '') }}", "DurationLessThan", "720h"),
	}}}
}

// BenchmarkEvaluate evaluates three conditions against a realistic SLSA v0.2 provenance
// predicate merged into an admission context.
func BenchmarkEvaluate(b *testing.B) {
	conds, err := Compile(benchConditions(), "spec.rules[0].verifyImages[0].attestations[0].conditions")
	if err != nil {
		b.Fatal(err)
	}
	stmt := mustJSON(b, `{"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
	  "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": "0000000000000000000000000000000000000000000000000000000000000000"}}],
	  "predicate": `+benchPredicate+`}`).(map[string]any)
	doc, err := AttestationDocument(map[string]any{"request": map[string]any{"namespace": "default"}}, stmt)
	if err != nil {
		b.Fatal(err)
	}
	if res, err := conds.EvaluateAt(doc, testNow); err != nil || !res.Pass {
		b.Fatalf("%+v, %v", res, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conds.EvaluateAt(doc, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

const benchPredicate = `{
  "builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.9.0"},
  "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
  "invocation": {
    "configSource": {"uri": "git+https://github.com/acme/app@refs/tags/v1.2.3", "digest": {"sha1": "8d3f1f0a2b8f2f3e5a1b7c9d0e1f2a3b4c5d6e7f"}, "entryPoint": ".github/workflows/release.yml"},
    "parameters": {},
    "environment": {"github_actor": "octocat", "github_actor_id": "583231", "github_base_ref": "", "github_event_name": "push",
      "github_event_payload": {"after": "8d3f1f0a2b8f2f3e5a1b7c9d0e1f2a3b4c5d6e7f", "base_ref": null, "created": true, "deleted": false, "forced": false,
        "head_commit": {"author": {"email": "octocat@github.com", "name": "The Octocat"}, "id": "8d3f1f0a2b8f2f3e5a1b7c9d0e1f2a3b4c5d6e7f", "message": "release v1.2.3", "timestamp": "2026-02-28T11:50:00Z"},
        "pusher": {"email": "octocat@github.com", "name": "octocat"}, "ref": "refs/tags/v1.2.3",
        "repository": {"default_branch": "main", "full_name": "acme/app", "html_url": "https://github.com/acme/app", "id": 123456789, "private": false, "visibility": "public"}},
      "github_head_ref": "", "github_ref": "refs/tags/v1.2.3", "github_ref_type": "tag", "github_repository_id": "123456789",
      "github_repository_owner": "acme", "github_repository_owner_id": "987654", "github_run_attempt": "1", "github_run_id": "7891011121",
      "github_run_number": "42", "github_sha1": "8d3f1f0a2b8f2f3e5a1b7c9d0e1f2a3b4c5d6e7f"}
  },
  "metadata": {"buildInvocationID": "7891011121-1", "buildStartedOn": "2026-02-28T11:55:00Z", "buildFinishedOn": "2026-02-28T12:00:00Z",
    "completeness": {"parameters": true, "environment": false, "materials": false}, "reproducible": false},
  "materials": [{"uri": "git+https://github.com/acme/app@refs/tags/v1.2.3", "digest": {"sha1": "8d3f1f0a2b8f2f3e5a1b7c9d0e1f2a3b4c5d6e7f"}}]
}`
