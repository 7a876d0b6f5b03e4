package source

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

// maxAPICallBytes caps one apiCall answer (Kyverno caps the whole rule context at 2 MiB).
const maxAPICallBytes = 2 << 20

// APICalls answers rule apiCall context entries with a urlPath (Kyverno's Kubernetes API
// call): a GET of the path on the API server, with vouch's own credentials (its RBAC decides
// what policies can read), the decoded JSON reused for ConfigMapTTL (a 404 too) with one GET
// in flight per path, and answers over 2 MiB refused.
type APICalls struct {
	client rest.Interface
	cache  *fetchCache
}

// NewAPICalls returns a reader on a REST client of the API server (any typed client's: the
// path given is absolute).
func NewAPICalls(client rest.Interface) *APICalls {
	return &APICalls{client: client, cache: newFetchCache(ConfigMapTTL)}
}

// Get returns the decoded JSON at path, which the caller must not modify.
func (a *APICalls) Get(ctx context.Context, path string) (any, error) {
	return a.cache.get(ctx, "GET "+path, func(ctx context.Context) (fetched, error) {
		body, err := a.client.Get().AbsPath(path).Stream(ctx)
		switch {
		case apierrors.IsNotFound(err):
			return fetched{err: err}, nil
		case err != nil:
			return fetched{}, err
		}
		defer body.Close()
		b, err := io.ReadAll(io.LimitReader(body, maxAPICallBytes+1))
		if err != nil {
			return fetched{}, err
		}
		if len(b) > maxAPICallBytes {
			return fetched{err: fmt.Errorf("the answer is larger than %d bytes", maxAPICallBytes)}, nil
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return fetched{err: fmt.Errorf("the answer is not JSON: %w", err)}, nil
		}
		return fetched{value: v, size: int64(len(b))}, nil
	})
}
