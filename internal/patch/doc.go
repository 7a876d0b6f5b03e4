// Package patch builds the RFC 6902 JSON patch operations vouch returns and applies them:
// digest pinning (<registry>/<path>:<tag>@<digest> at each image's JSON pointer, spec §2.7)
// and Kyverno's verification annotations kyverno.io/verify-images and
// kyverno.io/verify-images-scoped in exactly Kyverno's formats (spec §2.8).
package patch
