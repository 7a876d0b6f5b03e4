package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vouchproject/vouch/internal/verify"
)

func secretKeysPolicy(kind, keys string) string {
	meta := "{name: p}"
	if kind == "Policy" {
		meta = "{name: p, namespace: team-a}"
	}
	return "apiVersion: kyverno.io/v1\nkind: " + kind + "\nmetadata: " + meta + `
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      attestors:
      - entries:
        - keys: ` + keys + `
      attestations:
      - type: https://example.com/t
        attestors:
        - entries:
          - attestor:
              entries:
              - keys: {secret: {name: att, namespace: keys}}
`
}

// TestSecretKeyReferences: keys.secret and k8s://<namespace>/<name> (in publicKeys or kms)
// compile to one Secret reference, with Kyverno's precedence publicKeys > secret > kms; a
// reference that does not name a namespace and a Secret is refused at load, at its field.
func TestSecretKeyReferences(t *testing.T) {
	pem := testPublicKey(t)
	for _, tc := range []struct {
		keys       string
		want       *verify.SecretRef
		keyRef     string
		publicKeys bool
	}{
		{keys: "{secret: {name: cosign, namespace: keys}}", want: &verify.SecretRef{Namespace: "keys", Name: "cosign"}},
		{keys: `{publicKeys: "k8s://keys/cosign"}`, want: &verify.SecretRef{Namespace: "keys", Name: "cosign"}},
		{keys: `{kms: " k8s://keys/cosign "}`, want: &verify.SecretRef{Namespace: "keys", Name: "cosign"}},
		{keys: `{kms: "awskms:///k", secret: {name: cosign, namespace: keys}}`, want: &verify.SecretRef{Namespace: "keys", Name: "cosign"}},
		{keys: `{kms: "awskms:///k"}`, keyRef: "awskms:///k"},
		{keys: `{publicKeys: "k8s://keys/other", secret: {name: cosign, namespace: keys}}`, want: &verify.SecretRef{Namespace: "keys", Name: "other"}},
		{keys: `{publicKeys: "` + strings.ReplaceAll(pem, "\n", `\n`) + `", secret: {name: cosign, namespace: keys}, kms: "awskms:///k"}`, publicKeys: true},
	} {
		v := load(t, secretKeysPolicy("ClusterPolicy", tc.keys)).Policies()[0].Rules[0].Verifications[0]
		a := v.Attestors[0].Entries[0]
		switch {
		case tc.want != nil && (a.Secret == nil || *a.Secret != *tc.want || a.KeyRef != "" || len(a.Keys) != 0):
			t.Errorf("%s: attestor secret %v, keyRef %q, %d keys; want Secret %v", tc.keys, a.Secret, a.KeyRef, len(a.Keys), tc.want)
		case tc.want == nil && a.Secret != nil:
			t.Errorf("%s: attestor secret %v, want none", tc.keys, a.Secret)
		case a.KeyRef != tc.keyRef:
			t.Errorf("%s: keyRef %q, want %q", tc.keys, a.KeyRef, tc.keyRef)
		case tc.publicKeys != (len(a.Keys) == 1):
			t.Errorf("%s: %d keys", tc.keys, len(a.Keys))
		}
		if !v.ReadsSecrets() {
			t.Errorf("%s: ReadsSecrets() = false (the attestation's nested attestor names a Secret)", tc.keys)
		}
	}

	err := loadErr(t, secretKeysPolicy("ClusterPolicy", `{publicKeys: "k8s://cosign"}`)+
		"---\n"+strings.Replace(secretKeysPolicy("ClusterPolicy", `{secret: {name: "Not_A_Name", namespace: keys}}`), "name: p}", "name: q}", 1)+
		"---\n"+strings.Replace(secretKeysPolicy("ClusterPolicy", `{kms: "k8s://ns/"}`), "name: p}", "name: s}", 1))
	for _, want := range []string{
		`spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: Invalid value: k8s://cosign: want a Secret's namespace and name (k8s://<namespace>/<name>)`,
		`spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.secret: Invalid value: name "Not_A_Name"`,
		`spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.kms: Invalid value: k8s://ns/: want a Secret's namespace and name`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestResolveSecretKeys: every Secret an entry names (attestors, attestations, nested) is read
// once and its key put in place; the same keys give the same compiled entry and Variant,
// another key another Variant; the entry as compiled keeps its references.
func TestResolveSecretKeys(t *testing.T) {
	k1, k2 := testPublicKey(t), testPublicKey(t)
	keys := map[string]string{"keys/cosign": k1 + k2, "keys/att": k2} // cosign reads the first block
	var asked []string
	read := func(_ context.Context, ns, name string) (string, error) {
		asked = append(asked, ns+"/"+name)
		k, ok := keys[ns+"/"+name]
		if !ok {
			return "", errors.New("not found")
		}
		return k, nil
	}
	v := load(t, secretKeysPolicy("ClusterPolicy", "{secret: {name: cosign, namespace: keys}}")).Policies()[0].Rules[0].Verifications[0]
	a, err := v.ResolveSecretKeys(context.Background(), read, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 {
		t.Errorf("Secrets read: %v, want keys/att and keys/cosign once each", asked)
	}
	got := a.Attestors[0].Entries[0]
	if got.Secret != nil || len(got.Keys) != 1 || got.Keys[0].PEM != k1 {
		t.Errorf("resolved attestor: secret %v, keys %+v; want k1 alone", got.Secret, got.Keys)
	}
	nested := a.Attestations[0].Attestors[0].Entries[0].Nested.Entries[0]
	if nested.Secret != nil || len(nested.Keys) != 1 || nested.Keys[0].PEM != k2 {
		t.Errorf("resolved nested attestation attestor: secret %v, keys %+v; want k2", nested.Secret, nested.Keys)
	}
	if a.ReadsSecrets() || a.Variant == "" {
		t.Errorf("resolved: ReadsSecrets %v, Variant %q", a.ReadsSecrets(), a.Variant)
	}
	if orig := v.Attestors[0].Entries[0]; orig.Secret == nil || len(orig.Keys) != 0 || v.Attestations[0].Attestors[0].Entries[0].Nested.Entries[0].Secret == nil {
		t.Error("resolving changed the compiled entry")
	}
	if again, err := v.ResolveSecretKeys(context.Background(), read, ""); err != nil || again != a {
		t.Errorf("the same keys gave another entry (%p, %p, %v)", again, a, err)
	}
	keys["keys/cosign"] = k2
	b, err := v.ResolveSecretKeys(context.Background(), read, "")
	if err != nil || b.Variant == a.Variant || b.Attestors[0].Entries[0].Keys[0].PEM != k2 {
		t.Errorf("a rotated key: %v, variants %q %q", err, a.Variant, b.Variant)
	}

	keys["keys/cosign"] = "not a key"
	_, err = v.ResolveSecretKeys(context.Background(), read, "")
	if !errors.Is(err, ErrSecretKey) || !strings.Contains(err.Error(), ".attestors[0].entries[0].keys: Secret keys/cosign (cosign.pub): not a public key: no PEM block") {
		t.Errorf("garbage cosign.pub: %v", err)
	}
	delete(keys, "keys/att")
	keys["keys/cosign"] = k1
	_, err = v.ResolveSecretKeys(context.Background(), read, "")
	if err == nil || errors.Is(err, ErrSecretKey) || !strings.Contains(err.Error(), ".attestations[0].attestors[0].entries[0].attestor.entries[0].keys: Secret keys/att (cosign.pub): not found") {
		t.Errorf("missing Secret: %v", err)
	}

	// A namespaced Policy naming another namespace's Secret is refused at load; one whose
	// Secret comes from a variable is refused when the Secret is read.
	err = loadErr(t, secretKeysPolicy("Policy", "{secret: {name: cosign, namespace: team-a}}"))
	if want := `Policy/p: spec.rules[0].verifyImages[0].attestations[0].attestors[0].entries[0].attestor.entries[0].keys: Invalid value: "Secret keys/att": a namespaced Policy reads Secrets in its own namespace (team-a) only`; !strings.Contains(err.Error(), want) {
		t.Errorf("namespaced Policy naming keys/att: %v\nwant %s", err, want)
	}
	asked = nil
	_, err = v.ResolveSecretKeys(context.Background(), read, "team-a")
	if err == nil || !strings.Contains(err.Error(), "Secret keys/att (cosign.pub): a namespaced Policy reads Secrets in its own namespace (team-a) only") {
		t.Errorf("namespaced Policy naming another namespace: %v", err)
	}
	if len(asked) != 0 {
		t.Errorf("Secrets read for it: %v", asked)
	}
}
