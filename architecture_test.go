// Package architecture_test enforces the package layout and import rules of DESIGN §2.
package architecture_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/vouchproject/vouch"

type pkg struct {
	ImportPath string
	Dir        string
	Imports    []string
	Deps       []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// rule says what a package (by path prefix, relative to the module) must not import.
type rule struct {
	pkg       string   // package path prefix
	forbidden []string // import path prefixes (module-relative when they start without a dot)
	why       string
}

var rules = []rule{
	{"api/", []string{"internal/", "cmd/"}, "the API types depend on no vouch package"},
	{"internal/imageref", []string{"internal/", "cmd/", "k8s.io/"}, "image references are a leaf package"},
	{"internal/manifest", []string{"internal/", "cmd/", "api/"}, "manifest reading knows nothing of policies"},
	{"internal/verify", []string{"internal/verify/cosign", "internal/verify/notary", "k8s.io/", "cmd/"}, "verify never imports its adapters or k8s.io"},
	{"internal/", []string{"cmd/"}, "nothing imports the command"},
}

func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		r := rel(p.ImportPath)
		for _, ru := range rules {
			if !strings.HasPrefix(r, ru.pkg) || (ru.pkg == "internal/verify" && strings.HasPrefix(r, "internal/verify/")) {
				continue
			}
			for _, imp := range p.Imports {
				ir := imp
				if strings.HasPrefix(imp, module+"/") {
					ir = rel(imp)
				}
				for _, f := range ru.forbidden {
					if strings.HasPrefix(ir, f) && ir != r {
						t.Errorf("%s imports %s: %s (DESIGN §2)", r, imp, ru.why)
					}
				}
			}
		}
		// webhook sees only engine among vouch packages.
		if strings.HasPrefix(r, "internal/webhook") {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module+"/internal/") && !strings.HasPrefix(rel(imp), "internal/engine") && !strings.HasPrefix(rel(imp), "internal/webhook") {
					t.Errorf("%s imports %s: webhook sees only engine (DESIGN §2)", r, imp)
				}
			}
		}
		// Only cmd/vouch builds concrete verifier adapters (fixture only signs, for demo and tests).
		if !strings.HasPrefix(r, "cmd/") && !strings.HasPrefix(r, "internal/verify/") && r != "internal/fixture" {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module+"/internal/verify/") {
					t.Errorf("%s imports %s: only cmd/vouch wires concrete verifiers (DESIGN §2)", r, imp)
				}
			}
		}
	}
}

// TestEveryPackageHasDoc requires a doc.go saying what each package owns (STYLE rule 10).
func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t) {
		r := rel(p.ImportPath)
		if r == "" || strings.HasPrefix(r, "cmd/") || len(p.GoFiles) == 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join(p.Dir, "doc.go")); err != nil {
			t.Errorf("%s has no doc.go", r)
		}
	}
}

// TestLayoutExists pins the packages DESIGN §2 names that exist so far.
func TestLayoutExists(t *testing.T) {
	have := map[string]bool{}
	for _, p := range listPackages(t) {
		have[rel(p.ImportPath)] = true
	}
	for _, want := range []string{"cmd/vouch", "api/kyverno/v1", "internal/imageref", "internal/extract", "internal/policy", "internal/report", "internal/engine",
		"internal/registry", "internal/verify", "internal/verify/cosign", "internal/patch"} {
		if !have[want] {
			t.Errorf("package %s is missing", want)
		}
	}
}
