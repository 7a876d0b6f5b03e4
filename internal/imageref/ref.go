package imageref

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultRegistry is the registry Kyverno prepends to references that name none (ConfigMap
// key defaultRegistry, default "docker.io").
const DefaultRegistry = "docker.io"

// DefaultTag is the tag of a reference written with neither tag nor digest.
const DefaultTag = "latest"

// MaxLength bounds the length in bytes of a reference accepted by Parse. Kyverno has no such
// bound; every reference it accepts in practice (path at most 255 bytes, tag at most 128,
// sha512 digest 135) fits with room to spare for the registry.
const MaxLength = 4096

// Causes reported inside a *ParseError; match them with errors.Is.
var (
	// ErrEmpty is returned for an empty or whitespace-only reference.
	ErrEmpty = errors.New("repository name must have at least one component")
	// ErrInvalidFormat is returned when the reference does not follow the grammar.
	ErrInvalidFormat = errors.New("invalid reference format")
	// ErrUppercase is returned when the repository path contains uppercase letters.
	ErrUppercase = errors.New("repository name must be lowercase")
	// ErrNameTooLong is returned when the repository path exceeds 255 characters.
	ErrNameTooLong = errors.New("repository name must not be more than 255 characters")
	// ErrTooLong is returned when the reference exceeds MaxLength bytes.
	ErrTooLong = fmt.Errorf("image reference must not be more than %d bytes", MaxLength)
)

// ParseError is the error returned by Parse; Err is the cause.
type ParseError struct {
	Input string // the string given to Parse
	Err   error
}

// Error returns `invalid image reference "<input>": <cause>`.
func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid image reference %q: %v", e.Input, e.Err)
}

// Unwrap returns the cause.
func (e *ParseError) Unwrap() error { return e.Err }

// Ref is a parsed, Kyverno-normalised image reference.
type Ref struct {
	Original string // as written in the resource, trimmed of surrounding whitespace
	Registry string // e.g. "docker.io", "ghcr.io", "localhost:5000", "[::1]:5000"
	Path     string // repository path without registry, e.g. "nginx", "kyverno/zulu" (no "library/" insertion)
	Name     string // last path component, e.g. "zulu"
	Tag      string // "latest" when neither tag nor digest was given; "" when only a digest was given
	Digest   string // "sha256:<hex>" or ""
}

// The grammar of github.com/distribution/reference v0.6.0, which Kyverno parses with:
//
//	reference      := name [":" tag] ["@" digest]
//	name           := [domain "/"] path-component ["/" path-component]*
//	domain         := (domain-name | "[" hex-and-colons "]") [":" port]
//	domain-name    := label ("." label)*   label := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//	path-component := [a-z0-9]+ (separator [a-z0-9]+)*   separator := [._] | "__" | "-"+
//	tag            := [\w][\w.-]{0,127}
//	digest         := algorithm ":" [0-9a-fA-F]{32,}   (then checked by go-digest)
//
// Go's regexp gives leftmost-first submatches, as in distribution/reference, so the optional
// domain is preferred whenever the first component can be one.
const (
	alphanumeric   = `[a-z0-9]+`
	separator      = `(?:[._]|__|[-]+)`
	pathComponent  = alphanumeric + `(?:` + separator + alphanumeric + `)*`
	remoteName     = pathComponent + `(?:/` + pathComponent + `)*`
	domainLabel    = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domainName     = domainLabel + `(?:\.` + domainLabel + `)*`
	ipv6Address    = `\[(?:[a-fA-F0-9:]+)\]`
	domainAndPort  = `(?:` + domainName + `|` + ipv6Address + `)(?::[0-9]+)?`
	tagPattern     = `[\w][\w.-]{0,127}`
	digestPattern  = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
	maxPathLength  = 255
	validationHost = "vouch.invalid" // RFC 2606 reserved name; see validate
)

var (
	referenceRE = regexp.MustCompile(`^((?:` + domainAndPort + `/)?` + remoteName + `)(?::(` + tagPattern + `))?(?:@(` + digestPattern + `))?$`)
	nameRE      = regexp.MustCompile(`^(?:(` + domainAndPort + `)/)?(` + remoteName + `)$`)
)

// Parse parses an image reference as Kyverno does (spec §2.4). Surrounding whitespace is
// trimmed. Errors are *ParseError values naming the input.
func Parse(s string) (Ref, error) {
	r, err := parse(s)
	if err != nil {
		return Ref{}, &ParseError{Input: s, Err: err}
	}
	return r, nil
}

func parse(s string) (Ref, error) {
	orig := strings.TrimSpace(s)
	switch {
	case orig == "":
		return Ref{}, ErrEmpty
	case len(orig) > MaxLength:
		return Ref{}, ErrTooLong
	}
	full := withDefaultRegistry(orig)
	m := referenceRE.FindStringSubmatch(full)
	if m == nil {
		if lower := strings.ToLower(full); lower != full && referenceRE.MatchString(lower) {
			return Ref{}, ErrUppercase
		}
		return Ref{}, ErrInvalidFormat
	}
	r := Ref{Original: orig, Tag: m[2], Digest: m[3]}
	if nm := nameRE.FindStringSubmatch(m[1]); nm != nil {
		r.Registry, r.Path = nm[1], nm[2]
	} else {
		r.Path = m[1] // unreachable: m[1] matched the same name grammar
	}
	if len(r.Path) > maxPathLength {
		return Ref{}, ErrNameTooLong
	}
	r.Name = r.Path[strings.LastIndexByte(r.Path, '/')+1:]
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	// Kyverno quirk (spec §2.4): a first component that is no valid domain but a valid path
	// component (it contains '_', e.g. "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/app")
	// leaves the domain empty; Kyverno then moves that component into Registry. An empty
	// registry that remains fails validation.
	if r.Registry == "" {
		if i := strings.IndexByte(r.Path, '/'); i > 0 && strings.Contains(r.Path[:i], "_") {
			r.Registry, r.Path = r.Path[:i], r.Path[i+1:]
		}
	}
	if err := validate(r); err != nil {
		return Ref{}, err
	}
	return r, nil
}

// withDefaultRegistry is Kyverno's addDefaultRegistry: the default registry is prepended
// unless the first '/'-separated component contains '.' or ':', is "localhost", or is not
// lowercase.
func withDefaultRegistry(s string) string {
	i := strings.IndexByte(s, '/')
	if i == -1 {
		return DefaultRegistry + "/" + s
	}
	first := s[:i]
	if !strings.ContainsAny(first, ".:") && first != "localhost" && strings.ToLower(first) == first {
		return DefaultRegistry + "/" + s
	}
	return s
}

// validate checks every component with go-containerregistry, the client that later talks to
// the registry. ggcr's string parser only recognises a first component as a registry when it
// contains '.' or ':' or is "localhost", while Kyverno also accepts e.g. "Foo/bar" (registry
// "Foo"), so the registry is checked on its own and the repository, tag and digest are checked
// under a fixed, reserved registry name.
func validate(r Ref) error {
	if _, err := name.NewRegistry(r.Registry, name.StrictValidation); err != nil {
		return err
	}
	if r.Digest != "" {
		_, err := name.NewDigest(validationHost+"/"+r.Path+"@"+r.Digest, name.StrictValidation)
		return err
	}
	_, err := name.NewTag(validationHost+"/"+r.Path+":"+r.tagOrDefault(), name.StrictValidation)
	return err
}

func (r Ref) tagOrDefault() string {
	if r.Tag == "" {
		return DefaultTag
	}
	return r.Tag
}

// String returns Kyverno's canonical form: "<registry>/<path>@<digest>" when a digest is
// present (the tag is dropped), else "<registry>/<path>:<tag>".
func (r Ref) String() string {
	if r.Digest != "" {
		return r.Repository() + "@" + r.Digest
	}
	return r.Repository() + ":" + r.Tag
}

// WithTag returns "<registry>/<path>:<tag>", with tag "latest" when the reference has none;
// a digest is pinned as WithTag()+"@"+digest.
func (r Ref) WithTag() string {
	return r.Repository() + ":" + r.tagOrDefault()
}

// Repository returns "<registry>/<path>" ("<path>" when the registry is empty).
func (r Ref) Repository() string {
	if r.Registry == "" {
		return r.Path
	}
	return r.Registry + "/" + r.Path
}

// HasDigest reports whether the reference carries a digest.
func (r Ref) HasDigest() bool { return r.Digest != "" }

// Reference returns the go-containerregistry reference used for registry calls: a name.Digest
// when the reference has a digest (any tag is ignored), else a name.Tag. ggcr rewrites
// docker.io to index.docker.io and adds "library/" to one-component Docker Hub paths.
func (r Ref) Reference(opts ...name.Option) (name.Reference, error) {
	if err := validate(r); err != nil {
		return nil, &ParseError{Input: r.String(), Err: err}
	}
	reg, err := name.NewRegistry(r.Registry, opts...)
	if err != nil {
		return nil, &ParseError{Input: r.String(), Err: err}
	}
	repo := reg.Repo(r.Path)
	if r.Digest != "" {
		return repo.Digest(r.Digest), nil
	}
	return repo.Tag(r.tagOrDefault()), nil
}
