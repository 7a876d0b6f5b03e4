package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/vouchproject/vouch/internal/fixture"
)

// confRegistry is a case's registry set-up: an in-process go-containerregistry registry on
// 127.0.0.1 holding the case's images and their signatures.
type confRegistry struct {
	Referrers bool `json:"referrers,omitempty"` // serve the OCI 1.1 referrers API
	Down      bool `json:"down,omitempty"`      // stop the registry before evaluating: unreachable
}

// confImage is one image pushed to the case's registry as $(registry)/<name>.
type confImage struct {
	Name       string          `json:"name"` // repository:tag
	Signatures []confSignature `json:"signatures,omitempty"`
}

// confSignature is one cosign signature of an image (legacy .sig tag layout, no tlog).
type confSignature struct {
	Key         string            `json:"key"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Repository  string            `json:"repository,omitempty"` // store in $(registry)/<repository> (COSIGN_REPOSITORY)
}

// env is what a case's placeholders expand to.
type env struct {
	registry string
	digests  map[string]string
	keys     map[string]string // name -> PEM public key
}

var placeholder = regexp.MustCompile(`\$\((registry|digest|key)(?: ([^)]+))?\)`)

// expand replaces $(registry), $(digest <image>) and $(key <name>) in s. A $(key) standing
// alone on a line becomes the PEM block, each line indented like the placeholder.
func (e *env) expand(t *testing.T, s string) string {
	t.Helper()
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if m := placeholder.FindStringSubmatch(trimmed); m != nil && m[0] == trimmed && m[1] == "key" {
			pemText, ok := e.keys[m[2]]
			if !ok {
				t.Fatalf("unknown key %q", m[2])
			}
			indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
			lines[i] = indent + strings.ReplaceAll(strings.TrimSpace(pemText), "\n", "\n"+indent)
		}
	}
	return placeholder.ReplaceAllStringFunc(strings.Join(lines, "\n"), func(m string) string {
		parts := placeholder.FindStringSubmatch(m)
		switch parts[1] {
		case "registry":
			return e.registry
		case "digest":
			d, ok := e.digests[parts[2]]
			if !ok {
				t.Fatalf("unknown image %q in %s", parts[2], m)
			}
			return d
		}
		t.Fatalf("$(key) must stand alone on its line: %s", m)
		return ""
	})
}

// setUp starts the case's registry, pushes and signs its images and returns the placeholder
// environment. Without a registry section the environment is empty.
func setUp(t *testing.T, c *confCase) *env {
	t.Helper()
	e := &env{digests: map[string]string{}, keys: map[string]string{}}
	signers := map[string]*fixture.Key{}
	for _, k := range c.Keys {
		key, err := fixture.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		signers[k], e.keys[k] = key, key.PEM
	}
	if c.Registry == nil {
		if len(c.Images) > 0 {
			t.Fatal("a case with images needs a registry section")
		}
		return e
	}
	reg := fixture.StartRegistry(c.Registry.Referrers, nil)
	t.Cleanup(reg.Close)
	e.registry = reg.Host
	ctx := context.Background()
	for _, im := range c.Images {
		d, err := reg.Push(ctx, im.Name)
		if err != nil {
			t.Fatal(err)
		}
		e.digests[im.Name] = d
	}
	for _, im := range c.Images {
		for _, sig := range im.Signatures {
			key, ok := signers[sig.Key]
			if !ok {
				t.Fatalf("image %s: unknown key %q", im.Name, sig.Key)
			}
			if err := reg.Sign(ctx, fixture.Repository(im.Name), e.digests[im.Name], key.Private, sig.Annotations, sig.Repository); err != nil {
				t.Fatalf("signing %s: %v", im.Name, err)
			}
		}
	}
	if c.Registry.Down {
		reg.Close()
	}
	return e
}
