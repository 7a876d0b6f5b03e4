package registry

import (
	"maps"
	"net/url"
	"strings"
	"sync"
)

// Kind is what a registry request is for, judged from the URL of the first request of its
// redirect chain (a blob redirected to object storage is still a blob).
type Kind string

// The kinds of requests.
const (
	KindManifest  Kind = "manifest"  // /v2/<name>/manifests/<reference>
	KindBlob      Kind = "blob"      // /v2/<name>/blobs/<digest>
	KindReferrers Kind = "referrers" // /v2/<name>/referrers/<digest>
	KindPing      Kind = "ping"      // /v2/
	KindToken     Kind = "token"     // a token endpoint (a request carrying scope= or service=)
	KindOther     Kind = "other"     // tag lists, catalog, uploads, anything else
)

// RequestKey identifies a group of counted requests. Status is the HTTP status code, or 0 when
// no response arrived (connection refused, TLS failure, deadline, redirect limit).
type RequestKey struct {
	Host   string
	Method string
	Kind   Kind
	Status int
}

// Counter counts the requests a Client's transport sends, by host, method, kind and status.
// Each hop of a redirect and each retry counts as one request. The zero value is ready to use
// and it is safe for concurrent use; a nil *Counter counts nothing.
type Counter struct {
	mu sync.Mutex
	m  map[RequestKey]int
}

func (c *Counter) add(k RequestKey) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[RequestKey]int{}
	}
	c.m[k]++
}

// Snapshot returns a copy of the counts so far.
func (c *Counter) Snapshot() map[RequestKey]int {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// Total returns the number of requests counted so far.
func (c *Counter) Total() int {
	n := 0
	for _, v := range c.Snapshot() {
		n += v
	}
	return n
}

// kindOf classifies a request URL. Repository names may contain "manifests" or "blobs" as a
// component, so the kind is taken from the component just before the last one.
func kindOf(method string, u *url.URL) Kind {
	p := u.Path
	if p == "/v2/" || p == "/v2" {
		return KindPing
	}
	if rest, ok := strings.CutPrefix(p, "/v2/"); ok {
		if i := strings.LastIndexByte(rest, '/'); i > 0 {
			switch dir := rest[:i]; {
			case strings.HasSuffix(dir, "/manifests"):
				return KindManifest
			case strings.HasSuffix(dir, "/blobs"):
				return KindBlob
			case strings.HasSuffix(dir, "/referrers"):
				return KindReferrers
			}
		}
	}
	if q := u.Query(); q.Has("scope") || q.Has("service") || (method == "POST" && strings.HasSuffix(p, "/token")) {
		return KindToken
	}
	return KindOther
}
