// Package extract owns finding the container images in a Kubernetes object (spec §2.4): the
// built-in extractors for Pods and pod controllers, a rule's custom imageExtractors, the JSON
// pointer of every image string (where a digest is later pinned) and the imagePullSecrets
// seen on the way down.
//
// It follows Kyverno's pkg/utils/api/image.go with these deliberate differences, each safer
// or more predictable than the original:
//   - the result is a list in a fixed order (group order initContainers, containers,
//     ephemeralContainers or the configuration order, then array index order, then sorted
//     map keys), not a map keyed by container name, so two containers with the same name are
//     both verified;
//   - an image field holding a non-string value is an error instead of being skipped, and the
//     built-in extractors require initContainers/containers/ephemeralContainers to be arrays;
//   - JSON pointers escape '~' and '/' (RFC 6901);
//   - at most MaxImages images are extracted from one object.
//
// Custom jmesPath expressions run on github.com/jmespath-community/go-jmespath with Kyverno's
// trim_prefix function added per compiled expression (no global function table).
package extract
