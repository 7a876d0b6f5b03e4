package manifest

import (
	"strings"
	"testing"
)

// TestSecretData: one data key of the Secrets among the objects, from data (base64) or
// stringData (which wins); other kinds and Secrets without the key are left out; a data value
// that is not base64 is an error naming the document and the field.
func TestSecretData(t *testing.T) {
	objs := func(y string) []Object {
		t.Helper()
		docs, err := Split("resources.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		out, err := Objects(docs)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, err := SecretData(objs(`apiVersion: v1
kind: Secret
metadata: {name: a, namespace: keys}
data: {cosign.pub: azE=, cosign.key: c2VjcmV0}
---
apiVersion: v1
kind: Secret
metadata: {name: b}
data: {cosign.pub: azE=}
stringData: {cosign.pub: k2}
---
apiVersion: v1
kind: Secret
metadata: {name: c, namespace: keys}
data: {token: dA==}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d, namespace: keys}
data: {cosign.pub: k3}
`), "cosign.pub")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["keys/a"] != "k1" || got["default/b"] != "k2" {
		t.Errorf("SecretData = %q, want keys/a k1 and default/b k2", got)
	}
	_, err = SecretData(objs("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {cosign.pub: \"not base64!\"}\n"), "cosign.pub")
	if err == nil || !strings.Contains(err.Error(), "resources.yaml") || !strings.Contains(err.Error(), "document 2") || !strings.Contains(err.Error(), `data["cosign.pub"]: not base64`) {
		t.Errorf("bad base64: %v", err)
	}
}
