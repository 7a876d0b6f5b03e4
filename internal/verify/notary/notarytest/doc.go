// Package notarytest builds Notary test material in process, for vouch's tests, on fixture's
// test PKI: code-signing certificates that meet the Notary Project's requirements (root →
// intermediate → leaf with the codeSigning extended key usage and a subject, optionally with
// CRL and OCSP endpoints), a revocation responder on 127.0.0.1 serving CRLs and OCSP answers
// for those certificates, and fixture's RFC 3161 timestamp authority answering tspclient
// requests at a chosen time. Nothing here reaches the network beyond 127.0.0.1.
package notarytest
