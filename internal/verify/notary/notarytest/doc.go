// Package notarytest builds Notary test material in process, for vouch's tests: a PKI whose
// code-signing certificates meet the Notary Project's requirements (root → intermediate →
// leaf with the codeSigning extended key usage, optionally with CRL and OCSP endpoints), a
// revocation responder on 127.0.0.1 serving CRLs and OCSP answers for those certificates,
// and an RFC 3161 timestamp authority that answers tspclient requests at a chosen time.
// Nothing here reaches the network beyond 127.0.0.1.
package notarytest
