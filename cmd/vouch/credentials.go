package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/vouchproject/vouch/internal/credentials"
	"github.com/vouchproject/vouch/internal/policy"
)

// credentialFlags are the registry credential flags (docs/CREDENTIALS.md): Kyverno's
// --imagePullSecrets and --registryCredentialHelpers, vouch's --namespace (where plain Secret
// names live) and --registry-credentials (docker config files, for use without a cluster).
type credentialFlags struct {
	namespace        string
	imagePullSecrets []string
	helpers          []string
	files            []string
	podSecrets       bool
}

// register adds the flags of `vouch serve`.
func (c *credentialFlags) register(f *pflag.FlagSet) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = credentials.DefaultNamespace
	}
	f.StringVar(&c.namespace, "namespace", ns,
		"vouch's namespace, where plain Secret names of --imagePullSecrets and of policies' imageRegistryCredentials.secrets are read ($POD_NAMESPACE when set)")
	f.StringSliceVar(&c.imagePullSecrets, "imagePullSecrets", nil,
		"image pull secrets used for every registry call, NAME (in --namespace) or NAMESPACE/NAME, comma-separated (needs a cluster)")
	f.StringSliceVar(&c.helpers, "registryCredentialHelpers", credentials.AllHelpers,
		"credential helpers consulted after every pull secret: some of default,google,amazon,azure,github (\"\" for none); an entry's imageRegistryCredentials.providers replace them")
	f.StringArrayVar(&c.files, "registry-credentials", nil,
		"docker config file ({\"auths\": {...}}, the content of a dockerconfigjson Secret) used for every registry call after the pull secrets (repeatable)")
	f.BoolVar(&c.podSecrets, "pod-image-pull-secrets", true,
		"also use the admitted Pod's own imagePullSecrets, read in its namespace")
}

// registerApply adds the flags of `vouch apply`, which has no cluster: credentials come from
// docker config files and the helpers (by default the docker config of the user running it).
func (c *credentialFlags) registerApply(f *pflag.FlagSet) {
	f.StringSliceVar(&c.helpers, "registryCredentialHelpers", []string{credentials.HelperDefault},
		"credential helpers: some of default,google,amazon,azure,github (\"\" for none); default is the docker config ($DOCKER_CONFIG, ~/.docker/config.json) and the credential helpers it names")
	f.StringArrayVar(&c.files, "registry-credentials", nil,
		"docker config file ({\"auths\": {...}}, the content of a dockerconfigjson Secret) consulted before the helpers (repeatable)")
}

// resolver builds the credentials of the engine; kube is nil without a cluster.
func (c *credentialFlags) resolver(kube kubernetes.Interface) (*credentials.Resolver, error) {
	r, err := credentials.New(credentials.Options{
		Kube:             kube,
		Namespace:        c.namespace,
		ImagePullSecrets: c.imagePullSecrets,
		ConfigFiles:      c.files,
		Helpers:          c.helpers,
		IgnorePodSecrets: !c.podSecrets,
	})
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	return r, nil
}

// warnUnreadSecrets says, once per policy, that the Secrets an offline run cannot read are not
// used (as in the Kyverno CLI).
func warnUnreadSecrets(set *policy.Set, stderr io.Writer) {
	for _, p := range set.Policies() {
		var names []string
		for _, r := range p.Rules {
			for _, v := range r.Verifications {
				if v.Credentials == nil {
					continue
				}
				for _, s := range v.Credentials.Secrets {
					if !slices.Contains(names, s) {
						names = append(names, s)
					}
				}
			}
		}
		if len(names) > 0 {
			fmt.Fprintf(stderr, "warning: policy %s: imageRegistryCredentials.secrets %s are not read without a cluster; give their docker config with --registry-credentials FILE\n",
				p.ReportName(), strings.Join(names, ","))
		}
	}
}
