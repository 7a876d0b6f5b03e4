package imageref

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
)

const (
	hex64  = "dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f"
	sha256 = "sha256:" + hex64
	sha512 = "sha512:" + hex64 + hex64
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		want     Ref
		str      string // String()
		withTag  string // WithTag()
		ggcrName string // Reference().Name()
	}{
		// Kyverno's own cases (pkg/utils/image/infos_test.go).
		{
			in:       "nginx",
			want:     Ref{Original: "nginx", Registry: "docker.io", Path: "nginx", Name: "nginx", Tag: "latest"},
			str:      "docker.io/nginx:latest",
			withTag:  "docker.io/nginx:latest",
			ggcrName: "index.docker.io/library/nginx:latest",
		},
		{
			in:       "nginx:v10.3",
			want:     Ref{Original: "nginx:v10.3", Registry: "docker.io", Path: "nginx", Name: "nginx", Tag: "v10.3"},
			str:      "docker.io/nginx:v10.3",
			withTag:  "docker.io/nginx:v10.3",
			ggcrName: "index.docker.io/library/nginx:v10.3",
		},
		{
			in:       "docker.io/test/nginx:v10.3",
			want:     Ref{Original: "docker.io/test/nginx:v10.3", Registry: "docker.io", Path: "test/nginx", Name: "nginx", Tag: "v10.3"},
			str:      "docker.io/test/nginx:v10.3",
			withTag:  "docker.io/test/nginx:v10.3",
			ggcrName: "index.docker.io/test/nginx:v10.3",
		},
		{
			in:       "test/nginx",
			want:     Ref{Original: "test/nginx", Registry: "docker.io", Path: "test/nginx", Name: "nginx", Tag: "latest"},
			str:      "docker.io/test/nginx:latest",
			withTag:  "docker.io/test/nginx:latest",
			ggcrName: "index.docker.io/test/nginx:latest",
		},
		{
			in:       "localhost:4443/test/nginx",
			want:     Ref{Original: "localhost:4443/test/nginx", Registry: "localhost:4443", Path: "test/nginx", Name: "nginx", Tag: "latest"},
			str:      "localhost:4443/test/nginx:latest",
			withTag:  "localhost:4443/test/nginx:latest",
			ggcrName: "localhost:4443/test/nginx:latest",
		},
		{
			in:       "docker.io/test/centos@" + sha256,
			want:     Ref{Original: "docker.io/test/centos@" + sha256, Registry: "docker.io", Path: "test/centos", Name: "centos", Digest: sha256},
			str:      "docker.io/test/centos@" + sha256,
			withTag:  "docker.io/test/centos:latest",
			ggcrName: "index.docker.io/test/centos@" + sha256,
		},
		// Spec §2.4 examples: tag and digest, the tag is dropped from the canonical form.
		{
			in:       "ghcr.io/kyverno/zulu:v0.0.14@" + sha256,
			want:     Ref{Original: "ghcr.io/kyverno/zulu:v0.0.14@" + sha256, Registry: "ghcr.io", Path: "kyverno/zulu", Name: "zulu", Tag: "v0.0.14", Digest: sha256},
			str:      "ghcr.io/kyverno/zulu@" + sha256,
			withTag:  "ghcr.io/kyverno/zulu:v0.0.14",
			ggcrName: "ghcr.io/kyverno/zulu@" + sha256,
		},
		{
			in:       "nginx@" + sha512,
			want:     Ref{Original: "nginx@" + sha512, Registry: "docker.io", Path: "nginx", Name: "nginx", Digest: sha512},
			str:      "docker.io/nginx@" + sha512,
			withTag:  "docker.io/nginx:latest",
			ggcrName: "index.docker.io/library/nginx@" + sha512,
		},
		// Default registry rules.
		{
			in:       "library/nginx",
			want:     Ref{Original: "library/nginx", Registry: "docker.io", Path: "library/nginx", Name: "nginx", Tag: "latest"},
			str:      "docker.io/library/nginx:latest",
			withTag:  "docker.io/library/nginx:latest",
			ggcrName: "index.docker.io/library/nginx:latest",
		},
		{
			in:       "localhost/foo",
			want:     Ref{Original: "localhost/foo", Registry: "localhost", Path: "foo", Name: "foo", Tag: "latest"},
			str:      "localhost/foo:latest",
			withTag:  "localhost/foo:latest",
			ggcrName: "localhost/foo:latest",
		},
		{
			in:       "localhost",
			want:     Ref{Original: "localhost", Registry: "docker.io", Path: "localhost", Name: "localhost", Tag: "latest"},
			str:      "docker.io/localhost:latest",
			withTag:  "docker.io/localhost:latest",
			ggcrName: "index.docker.io/library/localhost:latest",
		},
		{
			// Not lowercase: not prefixed, and distribution's grammar takes "Foo" as the domain.
			in:       "Foo/bar",
			want:     Ref{Original: "Foo/bar", Registry: "Foo", Path: "bar", Name: "bar", Tag: "latest"},
			str:      "Foo/bar:latest",
			withTag:  "Foo/bar:latest",
			ggcrName: "Foo/bar:latest",
		},
		{
			in:       "a.b/c",
			want:     Ref{Original: "a.b/c", Registry: "a.b", Path: "c", Name: "c", Tag: "latest"},
			str:      "a.b/c:latest",
			withTag:  "a.b/c:latest",
			ggcrName: "a.b/c:latest",
		},
		{
			in:       "a:5000/c",
			want:     Ref{Original: "a:5000/c", Registry: "a:5000", Path: "c", Name: "c", Tag: "latest"},
			str:      "a:5000/c:latest",
			withTag:  "a:5000/c:latest",
			ggcrName: "a:5000/c:latest",
		},
		{
			in:       "FOO.io/bar",
			want:     Ref{Original: "FOO.io/bar", Registry: "FOO.io", Path: "bar", Name: "bar", Tag: "latest"},
			str:      "FOO.io/bar:latest",
			withTag:  "FOO.io/bar:latest",
			ggcrName: "FOO.io/bar:latest",
		},
		{
			// A bare digest is a Docker Hub repository "sha256" with the hex as its tag.
			in:       sha256,
			want:     Ref{Original: sha256, Registry: "docker.io", Path: "sha256", Name: "sha256", Tag: hex64},
			str:      "docker.io/" + sha256,
			withTag:  "docker.io/" + sha256,
			ggcrName: "index.docker.io/library/" + sha256,
		},
		// Kyverno quirk: a first component with '_' is no domain, yet becomes the registry.
		{
			in:       "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/my-repository:v1",
			want:     Ref{Original: "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/my-repository:v1", Registry: "aws_account_id.dkr.ecr.us-west-2.amazonaws.com", Path: "my-repository", Name: "my-repository", Tag: "v1"},
			str:      "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/my-repository:v1",
			withTag:  "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/my-repository:v1",
			ggcrName: "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/my-repository:v1",
		},
		// Hosts with ports, IPv4, IPv6.
		{
			in:       "localhost:5000/a/b:1",
			want:     Ref{Original: "localhost:5000/a/b:1", Registry: "localhost:5000", Path: "a/b", Name: "b", Tag: "1"},
			str:      "localhost:5000/a/b:1",
			withTag:  "localhost:5000/a/b:1",
			ggcrName: "localhost:5000/a/b:1",
		},
		{
			in:       "127.0.0.1:5000/x",
			want:     Ref{Original: "127.0.0.1:5000/x", Registry: "127.0.0.1:5000", Path: "x", Name: "x", Tag: "latest"},
			str:      "127.0.0.1:5000/x:latest",
			withTag:  "127.0.0.1:5000/x:latest",
			ggcrName: "127.0.0.1:5000/x:latest",
		},
		{
			in:       "[::1]:5000/foo:bar",
			want:     Ref{Original: "[::1]:5000/foo:bar", Registry: "[::1]:5000", Path: "foo", Name: "foo", Tag: "bar"},
			str:      "[::1]:5000/foo:bar",
			withTag:  "[::1]:5000/foo:bar",
			ggcrName: "[::1]:5000/foo:bar",
		},
		{
			in:       "[2001:db8::1]/foo@" + sha256,
			want:     Ref{Original: "[2001:db8::1]/foo@" + sha256, Registry: "[2001:db8::1]", Path: "foo", Name: "foo", Digest: sha256},
			str:      "[2001:db8::1]/foo@" + sha256,
			withTag:  "[2001:db8::1]/foo:latest",
			ggcrName: "[2001:db8::1]/foo@" + sha256,
		},
		// Grammar corners.
		{
			in:       "  registry.k8s.io/pause:3.9\n",
			want:     Ref{Original: "registry.k8s.io/pause:3.9", Registry: "registry.k8s.io", Path: "pause", Name: "pause", Tag: "3.9"},
			str:      "registry.k8s.io/pause:3.9",
			withTag:  "registry.k8s.io/pause:3.9",
			ggcrName: "registry.k8s.io/pause:3.9",
		},
		{
			in:       "x.io/a__b/c--d/e.f_g:_T.a-G",
			want:     Ref{Original: "x.io/a__b/c--d/e.f_g:_T.a-G", Registry: "x.io", Path: "a__b/c--d/e.f_g", Name: "e.f_g", Tag: "_T.a-G"},
			str:      "x.io/a__b/c--d/e.f_g:_T.a-G",
			withTag:  "x.io/a__b/c--d/e.f_g:_T.a-G",
			ggcrName: "x.io/a__b/c--d/e.f_g:_T.a-G",
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			if s := got.WithTag(); s != tt.withTag {
				t.Errorf("WithTag() = %q, want %q", s, tt.withTag)
			}
			if got.HasDigest() != (tt.want.Digest != "") {
				t.Errorf("HasDigest() = %v", got.HasDigest())
			}
			ref, err := got.Reference()
			if err != nil {
				t.Fatalf("Reference(): %v", err)
			}
			if ref.Name() != tt.ggcrName {
				t.Errorf("Reference().Name() = %q, want %q", ref.Name(), tt.ggcrName)
			}
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(String()): %v", err)
			}
			if again.String() != got.String() {
				t.Errorf("round trip: %q -> %q", got.String(), again.String())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		cause error  // errors.Is target, or nil
		msg   string // substring of the message
	}{
		{in: "", cause: ErrEmpty},
		{in: " \t\n", cause: ErrEmpty},
		{in: "Nginx", cause: ErrUppercase},
		{in: "docker.io/Nginx:1", cause: ErrUppercase},
		{in: "Foo/Bar", cause: ErrUppercase},
		{in: "ghcr.io/Kyverno/zulu", cause: ErrUppercase},
		{in: "nginx:", cause: ErrInvalidFormat},
		{in: "nginx@", cause: ErrInvalidFormat},
		{in: "nginx:.tag", cause: ErrInvalidFormat},
		{in: "nginx:-tag", cause: ErrInvalidFormat},
		{in: "nginx:" + strings.Repeat("t", 129), cause: ErrInvalidFormat},
		{in: "nginx@sha256:abc", cause: ErrInvalidFormat},
		{in: "nginx@@" + sha256, cause: ErrInvalidFormat},
		{in: "nginx:1@" + sha256 + "@" + sha256, cause: ErrInvalidFormat},
		{in: "x.io/a//b", cause: ErrInvalidFormat},
		{in: "x.io/-a", cause: ErrInvalidFormat},
		{in: "x.io/a-", cause: ErrInvalidFormat},
		{in: "x.io/a/", cause: ErrInvalidFormat},
		{in: "a:/b", cause: ErrInvalidFormat},
		{in: "a..b/c", cause: ErrInvalidFormat},
		{in: "-a.io/c", cause: ErrInvalidFormat},
		{in: "http://x.io/a", cause: ErrInvalidFormat},
		{in: "[zz]:5000/foo", cause: ErrInvalidFormat},
		{in: "[::1]:port/foo", cause: ErrInvalidFormat},
		{in: "nginx latest", cause: ErrInvalidFormat},
		{in: "x.io/" + strings.Repeat("a", 256), cause: ErrNameTooLong},
		{in: "x.io/" + strings.Repeat("a/", 2048) + "a", cause: ErrTooLong},
		// The grammar accepts these digests; go-digest (through ggcr) rejects them, as it does
		// inside distribution/reference.Parse.
		{in: "nginx@sha256:" + hex64[:63], msg: "invalid checksum digest length"},
		{in: "nginx@sha256:" + strings.ToUpper(hex64), msg: "invalid checksum digest format"},
		{in: "nginx@md5:" + hex64[:32], msg: "unsupported digest algorithm"},
		// The grammar accepts any bracketed hex; Go's URL parser (ggcr) wants a real IPv6 address.
		{in: "[1:2:3]:5000/foo", msg: "RFC 3986"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error", tt.in, got)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != tt.in {
				t.Errorf("error %v is not a *ParseError for the input", err)
			}
			if want := "invalid image reference \"" + strings.ReplaceAll(strings.ReplaceAll(tt.in, "\n", `\n`), "\t", `\t`) + "\": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("error %q is not %q", err, tt.cause)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if diff := cmp.Diff(Ref{}, got); diff != "" {
				t.Errorf("Ref not zero on error:\n%s", diff)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse("Nginx")
	if got, want := err.Error(), `invalid image reference "Nginx": repository name must be lowercase`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// TestReference pins how go-containerregistry sees our references.
func TestReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		opts     []name.Option
		wantType string // "tag" or "digest"
		registry string // RegistryStr
		repo     string // RepositoryStr
		id       string // Identifier
		scheme   string
	}{
		{in: "nginx", wantType: "tag", registry: "index.docker.io", repo: "library/nginx", id: "latest", scheme: "https"},
		{in: "ghcr.io/kyverno/zulu:v0.0.14@" + sha256, wantType: "digest", registry: "ghcr.io", repo: "kyverno/zulu", id: sha256, scheme: "https"},
		{in: "[::1]:5000/foo:bar", wantType: "tag", registry: "[::1]:5000", repo: "foo", id: "bar", scheme: "http"},
		{in: "127.0.0.1:5000/x", wantType: "tag", registry: "127.0.0.1:5000", repo: "x", id: "latest", scheme: "http"},
		{in: "localhost:5000/a/b:1", wantType: "tag", registry: "localhost:5000", repo: "a/b", id: "1", scheme: "http"},
		{in: "x.io/a:1", opts: []name.Option{name.Insecure}, wantType: "tag", registry: "x.io", repo: "a", id: "1", scheme: "http"},
		{in: "Foo/bar", wantType: "tag", registry: "Foo", repo: "bar", id: "latest", scheme: "https"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := r.Reference(tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			typ := "tag"
			if _, ok := ref.(name.Digest); ok {
				typ = "digest"
			}
			got := []string{typ, ref.Context().RegistryStr(), ref.Context().RepositoryStr(), ref.Identifier(), ref.Context().Scheme()}
			want := []string{tt.wantType, tt.registry, tt.repo, tt.id, tt.scheme}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Reference() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReferenceInvalid(t *testing.T) {
	t.Parallel()
	for _, r := range []Ref{
		{},
		{Registry: "x.io"},
		{Path: "a"},
		{Registry: "x.io", Path: "A", Tag: "1"},
		{Registry: "x.io", Path: "a", Digest: "sha256:zz"},
	} {
		if ref, err := r.Reference(); err == nil {
			t.Errorf("Reference() of %+v = %v, want error", r, ref)
		}
	}
}

// TestGGCRParsing pins go-containerregistry's own string parsing, which differs from
// Kyverno's and is why Parse does not hand the written string to ggcr.
func TestGGCRParsing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // Name(), or "error"
	}{
		// docker.io is rewritten and library/ inserted.
		{in: "docker.io/nginx:latest", want: "index.docker.io/library/nginx:latest"},
		// repo:tag@digest parses as a digest reference; the tag is silently dropped.
		{in: "ghcr.io/kyverno/zulu:v0.0.14@" + sha256, want: "ghcr.io/kyverno/zulu@" + sha256},
		// IPv6 registries work, with and without a port.
		{in: "[::1]:5000/foo:bar", want: "[::1]:5000/foo:bar"},
		{in: "[::1]/foo", want: "[::1]/foo:latest"},
		// ggcr cannot see "Foo" as a registry and rejects the uppercase repository.
		{in: "Foo/bar", want: "error"},
		// ggcr only checks the character set of repositories and tags; Kyverno rejects these.
		{in: "x.io/a//b", want: "x.io/a//b:latest"},
		{in: "x.io/-a", want: "x.io/-a:latest"},
		{in: "x.io/a:.tag", want: "x.io/a:.tag"},
		{in: "a:/b", want: "a:/b:latest"},
	}
	for _, tt := range tests {
		ref, err := name.ParseReference(tt.in)
		got := "error"
		if err == nil {
			got = ref.Name()
		}
		if got != tt.want {
			t.Errorf("name.ParseReference(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Strict validation rejects Kyverno's canonical Docker Hub form (no library/).
	if _, err := name.ParseReference("docker.io/nginx:latest", name.StrictValidation); err == nil {
		t.Error("strict ggcr accepted docker.io/nginx:latest")
	}
}

// FuzzParse checks that Parse never panics and that accepted references round-trip through
// their canonical form and are usable by go-containerregistry.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"nginx", "ghcr.io/kyverno/zulu:v0.0.14@" + sha256, "[::1]:5000/foo:bar", "Foo/bar", "a_b.io/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		if r.Path == "" || r.Name == "" || r.Registry == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("Parse(%q) = %+v: missing field", s, r)
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok, Parse(String() = %q): %v", s, r.String(), err)
		}
		if again.String() != r.String() || again.Repository() != r.Repository() {
			t.Fatalf("round trip %q -> %q -> %q", s, r.String(), again.String())
		}
		if _, err := Parse(r.WithTag()); err != nil {
			t.Fatalf("Parse(WithTag() = %q): %v", r.WithTag(), err)
		}
		ref, err := r.Reference()
		if err != nil {
			t.Fatalf("Parse(%q) ok, Reference(): %v", s, err)
		}
		if want := r.Digest; want != "" && ref.Identifier() != want {
			t.Fatalf("Reference().Identifier() = %q, want %q", ref.Identifier(), want)
		}
	})
}
