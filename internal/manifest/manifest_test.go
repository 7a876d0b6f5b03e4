package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplit(t *testing.T) {
	in := `# leading comment
apiVersion: v1
kind: Pod
metadata: {name: a}
---
# only a comment
--- # separator with a comment
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: b}}
- {apiVersion: v1, kind: Pod, metadata: {name: c}}
---
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d"}}
`
	docs, err := Split("f.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	type loc struct{ Index, Line, Item int }
	var got []loc
	for _, d := range docs {
		got = append(got, loc{d.Index, d.Line, d.Item})
	}
	want := []loc{{1, 1, -1}, {3, 8, 0}, {3, 8, 1}, {4, 14, -1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("locations (-want +got):\n%s", diff)
	}
	if got := docs[1].Location(); got != "f.yaml (document 3, line 8, items[0])" {
		t.Errorf("Location() = %q", got)
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bad yaml", "a: [1,\n", "f.yaml (document 1, line 1): invalid YAML"},
		{"duplicate key", "apiVersion: v1\napiVersion: v2\n", "invalid YAML"},
		{"second document", "apiVersion: v1\nkind: Pod\n---\n- a\n- b\n", "f.yaml (document 2, line 4): document is not a YAML mapping"},
		{"scalar", "hello\n", "document is not a YAML mapping"},
		{"alias bomb", billionLaughs(), "excessive aliasing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Split("f.yaml", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestReadPathsAndObjects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {env: prod}}\n")
	write("a.yml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\n")
	write("ignored.txt", "not yaml")
	docs, err := ReadPaths([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || filepath.Base(docs[0].Source) != "a.yml" {
		t.Fatalf("docs = %+v", docs)
	}
	objs, err := Objects(docs)
	if err != nil {
		t.Fatal(err)
	}
	if got := NamespaceLabels(objs); got["prod"]["env"] != "prod" {
		t.Errorf("NamespaceLabels = %v", got)
	}
	if _, err := ReadPaths([]string{filepath.Join(dir, "missing.yaml")}); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
	bad, _ := Split("x.yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {}\n"))
	if _, err := Objects(bad); err == nil || !strings.Contains(err.Error(), "x.yaml (document 1, line 1): metadata.name: Required value") {
		t.Errorf("object without name: err = %v", err)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems: []\n"))
	f.Add([]byte("--- #x\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Split("fuzz.yaml", data)
		if err != nil {
			return
		}
		_, _ = Objects(docs)
	})
}

// billionLaughs is a YAML alias bomb: 9^9 strings if expanded.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, c := range "bcdefghi" {
		name := string(c)
		b.WriteString(name + ": &" + name + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",") + "]\n")
		prev = name
	}
	return b.String()
}
