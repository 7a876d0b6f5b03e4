package cosign

// The KMS providers Kyverno registers (spec §3.2): their URIs — awskms://, gcpkms://,
// azurekms://, hashivault:// — resolve through sigstore's kms.Get, with each provider's own
// credentials from the environment (IAM role, workload identity, VAULT_ADDR/VAULT_TOKEN).
// vouch's tests never call them; any other <name>:// reference goes to the CLI plugin
// sigstore-kms-<name> on PATH.
import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
