// Package background re-verifies the images of stored Pods on an interval, as Kyverno's
// background scan does for policies with `background: true`: a signature removed, a key
// rotated or a policy created after a Pod was admitted shows in the Pod's PolicyReport at the
// next scan. A scan verifies afresh (a cache of its own, never the admission cache) and its
// results go to the recorder. One replica scans: the holder of a Lease (client-go leader
// election). Admission is never affected.
package background
