package credentials

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"

	ecr "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	ecrapi "github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	acr "github.com/chrismellard/docker-credential-acr-env/pkg/credhelper"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/authn/github"
	"github.com/google/go-containerregistry/pkg/v1/google"
)

// The credential helpers (Kyverno's --registryCredentialHelpers values and the providers of
// imageRegistryCredentials).
const (
	HelperDefault = "default"
	HelperGoogle  = "google"
	HelperAmazon  = "amazon"
	HelperAzure   = "azure"
	HelperGitHub  = "github"
)

// AllHelpers are every helper, in the order they are consulted; what Kyverno's Helm chart
// enables by default.
var AllHelpers = []string{HelperDefault, HelperGoogle, HelperAmazon, HelperAzure, HelperGitHub}

// ParseHelpers checks a list of helper names (a comma-separated flag already split) and
// returns it without duplicates and empty names, in the given order.
func ParseHelpers(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		switch {
		case n == "" || slices.Contains(out, n):
		case slices.Contains(AllHelpers, n):
			out = append(out, n)
		default:
			return nil, fmt.Errorf("unknown registry credential helper %q (want some of %s)", n, strings.Join(AllHelpers, ","))
		}
	}
	return out, nil
}

// helperKeychain returns the keychain of one helper. The cloud helpers are guarded by the
// exact host names they serve, so that no other registry ever reaches their libraries.
func helperKeychain(name string) authn.Keychain {
	switch name {
	case HelperDefault:
		return authn.DefaultKeychain
	case HelperGoogle:
		return guarded{match: isGoogleHost, inner: google.Keychain}
	case HelperAmazon:
		return guarded{match: isECRHost, inner: authn.NewKeychainFromHelper(ecr.NewECRHelper(ecr.WithLogger(io.Discard)))}
	case HelperAzure:
		return guarded{match: isACRHost, inner: authn.NewKeychainFromHelper(acr.NewACRCredentialsHelper())}
	case HelperGitHub:
		return guarded{match: isGitHubHost, inner: github.Keychain}
	}
	return nil
}

// helpersKeychain is the keychain of several helpers, consulted in order.
func helpersKeychain(names []string) authn.Keychain {
	kcs := make([]authn.Keychain, 0, len(names))
	for _, n := range names {
		if kc := helperKeychain(n); kc != nil {
			kcs = append(kcs, kc)
		}
	}
	return authn.NewMultiKeychain(kcs...)
}

// guarded consults inner only for registries whose host name match accepts; any other
// registry is anonymous for it, without calling it.
type guarded struct {
	match func(host string) bool
	inner authn.Keychain
}

func (g guarded) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return g.ResolveContext(context.Background(), r)
}

func (g guarded) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if !g.match(hostName(r.RegistryStr())) {
		return authn.Anonymous, nil
	}
	return authn.Resolve(ctx, g.inner, r)
}

// hostName returns the lower-cased host name of a registry ("host", "host:port", "[v6]:port").
func hostName(registry string) string {
	h := registry
	if host, _, err := net.SplitHostPort(registry); err == nil {
		h = host
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

// isGoogleHost: Container Registry and Artifact Registry (go-containerregistry's own rule).
func isGoogleHost(h string) bool {
	return h == "gcr.io" || strings.HasSuffix(h, ".gcr.io") || strings.HasSuffix(h, ".pkg.dev") || strings.HasSuffix(h, ".google.com")
}

// isECRHost: private ECR endpoints (<12 digits>.dkr.ecr[-fips].<region>.amazonaws.com and the
// partitions' domains) and public.ecr.aws, by the ECR helper's own anchored pattern.
func isECRHost(h string) bool {
	_, err := ecrapi.ExtractRegistry(h)
	return err == nil
}

// acrHost is anchored: the ACR helper's own pattern is not, and would exchange an Azure token
// with any host containing ".azurecr.io" (e.g. "x.azurecr.io.example.com").
var acrHost = regexp.MustCompile(`^([a-z0-9-]+\.)+azurecr\.(io|cn|de|us)$`)

func isACRHost(h string) bool { return acrHost.MatchString(h) }

func isGitHubHost(h string) bool { return h == "ghcr.io" }
