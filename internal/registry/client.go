package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Resolve returns the descriptor (digest, media type, size) that ref — a tag or a digest —
// names. It asks with HEAD and falls back to GET when the registry does not support HEAD or
// answers it without a usable Docker-Content-Digest; a GET body is capped and its digest is
// computed from the bytes and checked against the digest asked for or announced. A manifest
// larger than MaxManifestBytes is refused even when HEAD reports it.
func (c *Client) Resolve(ctx context.Context, ref name.Reference) (v1.Descriptor, error) {
	const op = "resolve"
	c = c.scoped(ctx)
	r, err := c.reparse(ref)
	if err != nil {
		return v1.Descriptor{}, wrapErr(op, ref.String(), err)
	}
	p, err := c.sharedPuller()
	if err != nil {
		return v1.Descriptor{}, wrapErr(op, ref.String(), err)
	}
	desc, err := p.Head(ctx, r)
	if err == nil {
		if desc.Size > c.opts.MaxManifestBytes {
			return v1.Descriptor{}, wrapErr(op, ref.String(), tooLarge("manifest "+desc.Digest.String(), c.opts.MaxManifestBytes, fmt.Sprintf(" (size %d)", desc.Size)))
		}
		return *desc, nil
	}
	if !headFallback(ctx, err) {
		return v1.Descriptor{}, wrapErr(op, ref.String(), err)
	}
	d, err := p.Get(ctx, r)
	if err != nil {
		return v1.Descriptor{}, wrapErr(op, ref.String(), err)
	}
	return d.Descriptor, nil
}

// headFallback reports whether a failed HEAD should be retried as GET: when the registry
// rejects the method (400, 405, 406, 501) or answers without usable headers, which ggcr reports
// as plain errors. Authentication, absence, rate limits, network failures, deadlines and caps
// are final: a GET would only repeat them.
func headFallback(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotAcceptable, http.StatusNotImplemented:
			return true
		}
		return false
	}
	var ue *url.Error
	var re *Error
	return !errors.As(err, &ue) && !errors.As(err, &re)
}

// Manifest fetches the manifest ref names. Its bytes are capped at MaxManifestBytes and hash to
// the digest asked for (ref is a digest) or announced by the registry (ref is a tag). The
// returned Descriptor keeps ctx and this Client's transport for calls made through it (Image,
// ImageIndex…).
func (c *Client) Manifest(ctx context.Context, ref name.Reference) (*remote.Descriptor, error) {
	const op = "manifest"
	c = c.scoped(ctx)
	r, err := c.reparse(ref)
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	p, err := c.sharedPuller()
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	d, err := p.Get(ctx, r)
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	return d, nil
}

// Blob fetches the blob ref names, at most MaxBlobBytes, verified against its digest.
func (c *Client) Blob(ctx context.Context, ref name.Digest) ([]byte, error) {
	const op = "blob"
	c = c.scoped(ctx)
	r, err := c.reparse(ref)
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	p, err := c.sharedPuller()
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	l, err := p.Layer(ctx, r.(name.Digest))
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, c.opts.MaxBlobBytes+1))
	if err == nil && int64(len(b)) > c.opts.MaxBlobBytes {
		err = tooLarge("blob "+r.Identifier(), c.opts.MaxBlobBytes, "")
	}
	if err != nil {
		return nil, wrapErr(op, ref.String(), err)
	}
	return b, nil
}

// Referrers lists the manifests whose subject is d: the OCI 1.1 referrers API, or, when the
// registry lacks it, the index under the "sha256-<hex>" tag (ggcr's remote.Referrers). More than
// MaxReferrers descriptors in the list is a too-large error, as in Kyverno, whatever
// artifactType filters out. artifactType, when not empty, keeps the descriptors of that type.
// No referrers is an empty list, not an error.
func (c *Client) Referrers(ctx context.Context, d name.Digest, artifactType string) ([]v1.Descriptor, error) {
	const op = "referrers"
	c = c.scoped(ctx)
	r, err := c.reparse(d)
	if err != nil {
		return nil, wrapErr(op, d.String(), err)
	}
	idx, err := remote.Referrers(r.(name.Digest), c.RemoteOptions(ctx)...)
	if err != nil {
		return nil, wrapErr(op, d.String(), err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, wrapErr(op, d.String(), err)
	}
	if n := len(im.Manifests); n > c.opts.MaxReferrers {
		return nil, wrapErr(op, d.String(), &Error{Code: CodeTooLarge, Err: fmt.Errorf("too many referrers found (%d), max limit is %d", n, c.opts.MaxReferrers)})
	}
	out := []v1.Descriptor{}
	for _, m := range im.Manifests {
		if artifactType == "" || m.ArtifactType == artifactType {
			out = append(out, m)
		}
	}
	return out, nil
}

// sharedPuller returns the shared Puller.
func (c *Client) sharedPuller() (*remote.Puller, error) {
	if p := c.pullerNow(); p != nil {
		return p, nil
	}
	return nil, errors.New("creating registry puller failed")
}

// reparse rebuilds ref from its fully qualified name with the Client's name options, so that the
// Client's Insecure setting, not the caller's parsing, decides whether plain HTTP is allowed.
func (c *Client) reparse(ref name.Reference) (name.Reference, error) {
	switch r := ref.(type) {
	case name.Digest:
		return name.NewDigest(r.Name(), c.nameOpts...)
	case name.Tag:
		return name.NewTag(r.Name(), c.nameOpts...)
	case nil:
		return nil, &Error{Code: CodeInvalid, Err: errors.New("no reference")}
	}
	return name.ParseReference(ref.Name(), c.nameOpts...)
}
