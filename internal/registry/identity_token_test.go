package registry_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/vouchproject/vouch/internal/registry"
)

// TestIdentityTokenScrubbed: an identity token (ACR's refresh token, docker login's identity
// token) travels in the body of an OAuth2 token POST, not in a header; a token server that
// echoes it in its error gets an error without it, whatever the realm's path.
func TestIdentityTokenScrubbed(t *testing.T) {
	t.Parallel()
	const identityToken = "canary-identity-token-0c9d2e"
	for _, realm := range []string{"/token", "/oauth2/exchange"} {
		t.Run(realm, func(t *testing.T) {
			t.Parallel()
			var posted string
			host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == realm {
					if err := r.ParseForm(); err != nil {
						t.Error(err)
					}
					posted = r.PostForm.Get("refresh_token")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusUnauthorized)
					msg := fmt.Sprintf("refresh token %s (%s) is not valid", posted, url.QueryEscape(posted))
					json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": msg}}})
					return
				}
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s%s",service="vouch-test"`, r.Host, realm))
				w.WriteHeader(http.StatusUnauthorized)
			}))
			kc := staticKeychain{host: authn.FromConfig(authn.AuthConfig{Username: "<token>", IdentityToken: identityToken})}
			c := newClient(t, registry.Options{Keychain: kc})
			_, err := c.Resolve(ctxTimeout(t, 10*time.Second), mustTag(t, host+"/app:v1"))
			if posted != identityToken {
				t.Fatalf("the token server got %q, not the identity token", posted)
			}
			if registry.Classify(err) != registry.CodeAuth || strings.Contains(err.Error(), identityToken) || !strings.Contains(err.Error(), "REDACTED") {
				t.Errorf("error %v: want auth, scrubbed", err)
			}
		})
	}
}
