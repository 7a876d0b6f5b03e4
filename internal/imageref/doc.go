// Package imageref owns container image references as Kyverno understands them: parsing and
// normalisation (spec §2.4) and Kyverno's wildcard matching (spec §2.5).
//
// Parse follows Kyverno's pkg/utils/image.GetImageInfo: the default registry docker.io is
// prepended when the first path component cannot be a registry, the result is parsed with the
// distribution/reference grammar (ported here as regular expressions) and Kyverno's fields are
// kept as Kyverno writes them — no "library/" insertion, tag "latest" only when neither tag nor
// digest was given. Every component is then validated again by go-containerregistry's
// pkg/name, which later talks to the registry (Ref.Reference), so an accepted reference is one
// both Kyverno and the registry client understand.
//
// Ref.String is Kyverno's canonical form used for matching, cache keys, annotations and
// messages: "<registry>/<path>@<digest>" when a digest is present (the tag is dropped), else
// "<registry>/<path>:<tag>".
//
// Match implements the semantics of github.com/IGLOU-EU/go-wildcard v1.0.3, which Kyverno
// uses, with a linear-space, O(len(pattern)·len(s)) matcher instead of the library's
// exponential backtracking, because image strings come from untrusted admission requests.
package imageref
