// Package registry owns every conversation vouch has with an OCI registry.
//
// A Client wraps go-containerregistry (ggcr) with the limits an admission controller needs
// when the registry may be slow, broken or hostile (DESIGN §6, landscape §4.2–4.4):
//
//   - One http.RoundTripper carries all traffic — vouch's own calls and those of the cosign and
//     notation libraries, which receive it through RemoteOptions or Transport. It caps every
//     response body by the kind of request (manifest, blob, everything else), by Content-Length
//     before reading and while streaming, so a registry that claims or serves gigabytes costs
//     kilobytes; it verifies manifest and blob bodies against the digest they were asked for
//     (or, for a manifest fetched by tag, the Docker-Content-Digest the registry announced); it
//     ends redirect chains after MaxRedirects hops, refuses HTTPS-to-HTTP redirects and drops an
//     Authorization header sent to another host:port earlier in the chain; it removes the
//     credentials it just sent (the Authorization header, the identity token or password of an
//     OAuth2 token form) from error bodies before anyone can print them; and it counts requests
//     (Counter).
//   - It decides where credentials may go in the Docker token flow (realm.go): a Bearer realm
//     on the registry's own host and port, or an HTTPS realm allowed by DefaultTokenRealms and
//     Options.TokenRealms; any other realm only ever gets anonymous token requests, and a token
//     request carrying credentials to it is an auth error naming the realm and the registry.
//   - It owns the one retry policy (retry.go; ggcr's is disabled): GET and HEAD answered 408,
//     429, 502, 503, 504 or cut by a reset are retried at most MaxRetries times, jittered,
//     honouring Retry-After, and only when the wait fits in the context's deadline. Per
//     registry host (hosts.go) it bounds the requests in flight (MaxInFlightPerRegistry) and
//     keeps a circuit breaker: BreakerThreshold consecutive failing requests (5xx, 429, network
//     errors, deadlines) make requests fail at once, unavailable, for BreakerCooldown, then one
//     probe at a time goes (only its own outcome ends it; it is never retried); a request that
//     waited for a slot looks at the circuit again before it is sent, and a request is retried
//     only while the circuit is closed.
//   - Resolve, Manifest, Blob and Referrers are the engine's calls: tag or digest to descriptor
//     (HEAD first, verified GET as fallback), capped and verified manifests and blobs, and OCI 1.1
//     referrers with ggcr's fallback to the "sha256-<hex>" tag schema, limited to MaxReferrers
//     descriptors as Kyverno does (spec §3.11, §4). Pair.Resolve, the digest the engine verifies
//     and pins, also reads the manifest it names once per digest and requires it to be what its
//     media type says (CheckManifest, manifest.go): bytes that do not parse are never pinned.
//     Pair.Resolve calls in flight at the same time for the same reference, credentials and
//     insecure setting share one resolution (flight.go), each caller within its own deadline;
//     nothing is kept after it.
//   - Credentials come from an authn.Keychain: Options.Keychain, or the Scope a call's context
//     carries (WithScope) — one verifyImages entry's credentials for one object, built by
//     internal/credentials from Kyverno's pull secrets and helpers (spec §7). Each Scope gets a
//     client of its own sharing the transport, so pings and tokens are reused per Scope and
//     never across them. Insecure is Kyverno's allowInsecureRegistry.
//     Loopback and RFC 1918 registries are spoken to over plain HTTP without it, as ggcr does.
//   - Failures are *Error values with a stable Code (auth, not-found, unavailable, timeout,
//     too-large, invalid) so the engine can tell "the image failed" from "vouch could not decide";
//     Classify gives the same codes for errors returned by other libraries' ggcr calls.
//
// Every call honours its context — headers and body reads alike; the caller gives each one a
// deadline inside the admission budget. docs/SECURITY.md states these rules and their values.
// The package knows nothing about policies, signatures or Kubernetes.
package registry
