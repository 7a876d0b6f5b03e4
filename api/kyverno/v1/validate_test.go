package v1

import (
	"strings"
	"testing"
)

const testKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwwedoAKf7Ug9y8rT+oaLk0apbxp/
wNpc+L9HiO/AZJ6rUz9Z7CQmpQP3VyxgVuZlU/2Dau7XNBoZtHaMMNFJqA==
-----END PUBLIC KEY-----`

// policyWith wraps one rule body (YAML, indented for the rules list) in an Enforce policy.
func policyWith(spec, rule string) string {
	return "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n" + spec +
		"  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n" + rule
}

const enforce = "  validationFailureAction: Enforce\n"

// TestValidateSpec16 has one failing policy per validation rule of spec §1.6 (and the CRD
// rules vouch adds), each with the field path and message expected.
func TestValidateSpec16(t *testing.T) {
	tests := []struct {
		name, doc, path, msg string
	}{
		{"audit with mutateDigest (spec default Audit)", policyWith("", `    verifyImages: [{imageReferences: ["*"]}]
`), "spec.rules[0].verifyImages[0].mutateDigest", "mutateDigest must be set to false for ‘Audit’ failure action"},
		{"entry failureAction Audit with mutateDigest", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], failureAction: Audit}]
`), "spec.rules[0].verifyImages[0].mutateDigest", "mutateDigest must be set to false"},
		{"no image reference", policyWith(enforce, `    verifyImages: [{required: false}]
`), "spec.rules[0].verifyImages[0].imageReferences", "An image reference is required"},
		{"count exceeds entries", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{count: 2, entries: [{keys: {kms: "awskms:///k"}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].count", "Count cannot exceed length of entries"},
		{"count below minimum", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{count: 0, entries: [{keys: {kms: "awskms:///k"}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].count", "must be greater than or equal to 1"},
		{"no entries", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: []}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries", "An entry is required"},
		{"empty attestor", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{repository: x}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0]", "keys, certificates, keyless, or a nested attestor is required"},
		{"two authorities", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keys: {kms: "awskms:///k"}, certificates: {cert: x}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0]", "keys, certificates, keyless, or a nested attestor is required"},
		{"nested attestor invalid", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{attestor: {entries: [{keys: {}}]}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].attestor.entries[0].keys", "A public key, kms key or secret is required"},
		{"keys without material", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keys: {signatureAlgorithm: sha256}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys", "A public key, kms key or secret is required"},
		{"bad signature algorithm", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keys: {publicKeys: "k8s://ns/s", signatureAlgorithm: sha1}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.signatureAlgorithm", "Invalid signature algorithm provided"},
		{"bad attestor signature algorithm", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{signatureAlgorithm: md5, keys: {kms: "awskms:///k"}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].signatureAlgorithm", "Unsupported value"},
		{"certificates without cert", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{certificates: {rekor: {url: "https://r"}}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].certificates", "cert or certChain required"},
		{"keyless without rekor or roots", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keyless: {subject: s, issuer: i}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless", "Either Rekor URL or roots are required"},
		{"keyless rekor without url", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keyless: {subject: s, rekor: {ignoreTlog: true}}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.rekor.url", "An URL is required"},
		{"notary keyless", policyWith(enforce, `    verifyImages: [{type: Notary, imageReferences: ["*"], attestors: [{entries: [{keyless: {roots: x}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless", "Keyless field is not allowed for type notary"},
		{"notary keys", policyWith(enforce, `    verifyImages: [{type: Notary, imageReferences: ["*"], attestors: [{entries: [{keys: {kms: "awskms:///k"}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys", "Keys field is not allowed for type notary"},
		{"variables in image reference", policyWith(enforce, `    verifyImages: [{imageReferences: ["{{ request.object.x }}"]}]
`), "spec.rules[0].verifyImages[0].imageReferences[0]", "should not have variables in image reference section"},
		{"bad attestation condition operator", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestations: [{type: t, conditions: [{all: [{key: a, operator: Equal1, value: b}]}]}]}]
`), "spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].operator", "Unsupported value"},
		{"bad deny condition operator", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestations: [{type: t}], validate: {deny: {conditions: {any: [{key: a, operator: Is, value: b}]}}}}]
`), "spec.rules[0].verifyImages[0].validate.deny.conditions.any[0].operator", "Unsupported value"},
		{"attestation without type", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestations: [{name: a}]}]
`), "spec.rules[0].verifyImages[0].attestations[0].type", "missing type"},
		{"jmesPath extractor with mutateDigest", policyWith(enforce, `    imageExtractors: {Task: [{path: /spec/x, jmesPath: "@"}]}
    verifyImages: [{imageReferences: ["*"]}]
`), "spec.rules[0].imageExtractors[Task][0].jmesPath", "jmespath may not be used in an image extractor when mutating digests"},
		{"admission false", policyWith(enforce+"  admission: false\n", `    verifyImages: [{imageReferences: ["*"]}]
`), "spec.admission", "disabling admission processing is only allowed with validation policies"},
		{"unknown type", policyWith(enforce, `    verifyImages: [{type: GPG, imageReferences: ["*"]}]
`), "spec.rules[0].verifyImages[0].type", "Unsupported value: \"GPG\""},
		{"unknown provider", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], imageRegistryCredentials: {providers: [docker]}}]
`), "spec.rules[0].verifyImages[0].imageRegistryCredentials.providers[0]", "Unsupported value"},
		{"bad subject regexp", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keyless: {subjectRegExp: "(", roots: x}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.subjectRegExp", "invalid regular expression"},
		{"unknown extension", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keyless: {roots: x, additionalExtensions: {foo: bar}}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.additionalExtensions[foo]", "invalid certificate extension foo"},
		{"secret without namespace", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{keys: {secret: {name: s, namespace: ""}}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.secret.namespace", "Required value"},
		{"bad failureAction", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], failureAction: Block}]
`), "spec.rules[0].verifyImages[0].failureAction", "Unsupported value"},
		{"nesting too deep", policyWith(enforce, `    verifyImages: [{imageReferences: ["*"], attestors: [{entries: [{attestor: {entries: [{attestor: {entries: [{attestor: {entries: [{attestor: {entries: [{attestor: {entries: [{attestor: {entries: [{keys: {kms: "awskms:///k"}}]}}]}}]}}]}}]}}]}}]}]}]
`), "spec.rules[0].verifyImages[0].attestors[0].entries[0].attestor.entries[0].attestor.entries[0].attestor.entries[0].attestor.entries[0].attestor", "nest deeper than 4 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectInvalid(t, tt.doc, tt.path, tt.msg)
		})
	}
}

// TestValidatePolicyAndRules covers the policy, rule, match and exclude checks.
func TestValidatePolicyAndRules(t *testing.T) {
	vi := `    verifyImages: [{imageReferences: ["*"], mutateDigest: false}]
`
	tests := []struct {
		name, doc, path, msg string
	}{
		{"no operation", policyWith(enforce, ""), "spec.rules[0]", "No operation defined in the rule 'r'"},
		{"two operations", policyWith(enforce, "    validate: {message: m, pattern: {x: y}}\n"+vi), "spec.rules[0]", "Multiple operations defined in the rule 'r'"},
		{"imageExtractors on a validate rule", policyWith(enforce, "    imageExtractors: {Task: [{path: /x}]}\n    validate: {message: m, pattern: {x: y}}\n"), "spec.rules[0].imageExtractors", "imageExtractors can only be defined for verifyImages rule"},
		{"duplicate rule names", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {resources: {kinds: [Pod]}}\n" + vi +
			"  - name: r\n    match: {resources: {kinds: [Pod]}}\n" + vi, "spec.rules[1].name", "Duplicate rule name: 'r'"},
		{"rule without name", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - match: {resources: {kinds: [Pod]}}\n" + vi, "spec.rules[0].name", "Required value"},
		{"rule name too long", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: " + strings.Repeat("x", 64) + "\n    match: {resources: {kinds: [Pod]}}\n" + vi, "spec.rules[0].name", "Too long"},
		{"policy without name", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {}\nspec: {rules: []}\n", "metadata.name", "Required value"},
		{"bad validationFailureAction", policyWith("  validationFailureAction: Block\n", vi), "spec.validationFailureAction", "Unsupported value"},
		{"bad failurePolicy", policyWith("  failurePolicy: Maybe\n", vi), "spec.failurePolicy", "Unsupported value"},
		{"webhook timeout out of range", policyWith("  webhookTimeoutSeconds: 31\n", vi), "spec.webhookTimeoutSeconds", "between 1 and 30 seconds"},
		{"bad applyRules", policyWith("  applyRules: Some\n", vi), "spec.applyRules", "Unsupported value"},
		{"match without kinds", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {names: [x]}}]}\n" + vi, "spec.rules[0].match.any[0].resources.kinds", "the kind attribute is mandatory"},
		{"empty match", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n" + vi, "spec.rules[0].match", "a rule must match resources"},
		{"any and all together", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}], all: [{resources: {kinds: [Pod]}}]}\n" + vi, "spec.rules[0].match", "Can't specify any and all together"},
		{"any with resources", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}], resources: {kinds: [Pod]}}\n" + vi, "spec.rules[0].match", "can't specify any/all together with resources"},
		{"name and names", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {resources: {kinds: [Pod], name: a, names: [b]}}\n" + vi, "spec.rules[0].match.resources", "Both name and names can not be specified together"},
		{"bad selector", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {resources: {kinds: [Pod], selector: {matchExpressions: [{key: a, operator: Near}]}}}\n" + vi, "spec.rules[0].match.resources.selector", "is not a valid label selector operator"},
		{"bad operation", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {resources: {kinds: [Pod], operations: [PATCH]}}\n" + vi, "spec.rules[0].match.resources.operations[0]", "Unsupported value"},
		{"subject without kind", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}, subjects: [{name: x}]}]}\n" + vi, "spec.rules[0].match.any[0].subjects[0].kind", "Required value"},
		{"service account without namespace", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}, subjects: [{kind: ServiceAccount, name: x}]}]}\n" + vi, "spec.rules[0].match.any[0].subjects[0].namespace", "namespace is required when Kind is ServiceAccount"},
		{"role format", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}, roles: [admin]}]}\n" + vi, "spec.rules[0].match.any[0].roles[0]", "Role is expected to be in namespace:name format"},
		{"namespaced policy filtering namespaces", "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata: {name: p, namespace: team}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod], namespaces: [other]}}]}\n" + vi, "spec.rules[0].match.any[0].resources.namespaces", "Filtering namespaces not allowed in namespaced policies"},
		{"overrides in namespaced policy", "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata: {name: p, namespace: team}\nspec:\n  validationFailureActionOverrides: [{action: Audit, namespaces: [x]}]\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n" + vi, "spec.validationFailureActionOverrides[0]", "supported only with ClusterPolicy"},
		{"variables in match", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod], names: [\"{{ request.name }}\"]}}]}\n" + vi, "spec.rules[0].match", "variables are not allowed in match and exclude blocks"},
		{"identical match and exclude", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    exclude: {any: [{resources: {kinds: [Pod]}}]}\n" + vi, "spec.rules[0]", "Rule is matching an empty set"},
		{"context entry without source", policyWith(enforce, "    context: [{name: x}]\n"+vi), "spec.rules[0].context[0]", "exactly one of configMap or apiCall"},
		{"context entry reserved name", policyWith(enforce, "    context: [{name: images, variable: {value: 1}}]\n"+vi), "spec.rules[0].context[0].name", "conflicts with a pre-defined variable images"},
		{"precondition operator", policyWith(enforce, "    preconditions: {all: [{key: a, operator: Like, value: b}]}\n"+vi), "spec.rules[0].preconditions.all[0].operator", "Unsupported value"},
		{"both admission and background off", policyWith("  admission: false\n  background: false\n", "    validate: {message: m, pattern: {x: y}}\n"), "spec.admission", "disabling both admission and background processing is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectInvalid(t, tt.doc, tt.path, tt.msg)
		})
	}
}

func expectInvalid(t *testing.T, doc, path, msg string) {
	t.Helper()
	p, err := DecodePolicy(mustJSON(t, doc))
	if err != nil {
		t.Fatalf("DecodePolicy: %v", err)
	}
	errs, _ := Validate(p)
	for _, e := range errs {
		if e.Field == path && strings.Contains(e.Error(), msg) {
			return
		}
	}
	t.Errorf("want an error at %s containing %q, got:\n%v", path, msg, errs.ToAggregate())
}

func TestValidateAcceptsAndWarns(t *testing.T) {
	doc := policyWith("  validationFailureAction: enforce\n", `    verifyImages:
    - image: "ghcr.io/*"
      key: |-
`+indent(testKey, "        ")+`
      attestations: [{predicateType: https://slsa.dev/provenance/v0.2}]
`)
	p, err := DecodePolicy(mustJSON(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	errs, warnings := Validate(p)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs.ToAggregate())
	}
	want := []string{"enforce/audit are deprecated", "predicateType has been deprecated use 'type: https://slsa.dev/provenance/v0.2'", "verifyImages[0].image: deprecated", "verifyImages[0].key: deprecated"}
	joined := strings.Join(warnings, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings %q lack %q", joined, w)
		}
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func TestConvertLegacy(t *testing.T) {
	iv := &ImageVerification{Image: "ghcr.io/*", Key: testKey, Annotations: map[string]string{"a": "b"}}
	cp := iv.Convert()
	if iv.Image != "ghcr.io/*" || len(iv.Attestors) != 0 {
		t.Fatal("Convert modified its receiver")
	}
	if len(cp.ImageReferences) != 1 || cp.ImageReferences[0] != "ghcr.io/*" {
		t.Errorf("imageReferences = %v", cp.ImageReferences)
	}
	if len(cp.Attestors) != 1 || cp.Attestors[0].Entries[0].Keys.PublicKeys != testKey || cp.Attestors[0].Entries[0].Annotations["a"] != "b" {
		t.Errorf("attestors = %+v", cp.Attestors)
	}
	kl := (&ImageVerification{ImageReferences: []string{"x"}, Issuer: "https://i", Subject: "s@x", Roots: "R"}).Convert()
	if k := kl.Attestors[0].Entries[0].Keyless; k == nil || k.Issuer != "https://i" || k.Subject != "s@x" || k.Roots != "R" {
		t.Errorf("keyless conversion = %+v", kl.Attestors)
	}
	// With attestations, the legacy key goes to every attestation lacking attestors (vouch's
	// deliberate fix of Kyverno dropping it; docs/COMPATIBILITY.md).
	wa := (&ImageVerification{Image: "x", Key: testKey, Attestations: []Attestation{{Type: "t"}, {Type: "u", Attestors: []AttestorSet{{}}}}}).Convert()
	if len(wa.Attestors) != 0 || len(wa.Attestations[0].Attestors) != 1 || wa.Attestations[1].Attestors[0].Entries != nil {
		t.Errorf("attestations after conversion = %+v", wa.Attestations)
	}
	plain := &ImageVerification{ImageReferences: []string{"x"}}
	if plain.Convert() != plain {
		t.Error("an entry without legacy fields should be returned as is")
	}
}
