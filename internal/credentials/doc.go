// Package credentials turns the registry credentials Kyverno users configure (spec §7) into
// the registry.Scope each verifyImages entry's registry calls run with:
//
//   - the entry's imageRegistryCredentials.secrets (plain names in vouch's namespace, or
//     "namespace/name") and providers;
//   - the admitted Pod's own imagePullSecrets, read in the Pod's namespace;
//   - vouch's global --imagePullSecrets and docker config files (--registry-credentials);
//   - the credential helpers (--registryCredentialHelpers, or the entry's providers):
//     default (the docker config of vouch's process), google, amazon, azure, github.
//
// They are consulted in that order, first match per registry wins (docs/CREDENTIALS.md).
// kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg Secrets are parsed by
// go-containerregistry's pkg/authn/kubernetes, with the matching rules of the kubelet.
//
// Secrets are read by name through the Kubernetes API into a small TTL cache, so an admission
// reads at most the few Secrets it names, and usually none. A Secret that a policy or the
// global flag names but that is missing, unreadable or not a pull secret is an error naming
// it; a Pod's imagePullSecrets that do not exist are skipped, as the kubelet skips them.
// Nothing here logs, and no error carries a Secret's content.
//
// The cloud helpers are consulted only for the registry hosts they serve, matched exactly by
// host name (gcr.io and *.gcr.io, *.pkg.dev; <account>.dkr.ecr.<region>.amazonaws.com and
// the other ECR endpoints, public.ecr.aws; *.azurecr.io/.cn/.de/.us; ghcr.io): for any other
// registry — a loopback or in-cluster one among them — they make no call of any kind.
package credentials
