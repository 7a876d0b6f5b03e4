package notarytest

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Responder is a revocation responder on 127.0.0.1: for each CA registered with it, a CRL
// at CRL(name) and an OCSP service at OCSP(name), both reflecting Revoke.
type Responder struct {
	srv *httptest.Server

	mu      sync.Mutex
	cas     map[string]*CA
	revoked map[string]time.Time // serial -> revocation time
	hits    int
}

// NewResponder starts a responder; Close stops it.
func NewResponder() *Responder {
	r := &Responder{cas: map[string]*CA{}, revoked: map[string]time.Time{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// Close stops the responder: later requests are refused.
func (r *Responder) Close() { r.srv.Close() }

// AddCA makes the responder answer for certificates ca issues, under name.
func (r *Responder) AddCA(name string, ca *CA) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cas[name] = ca
}

// CRL is the CRL distribution point of the CA named name.
func (r *Responder) CRL(name string) string { return r.srv.URL + "/crl/" + name }

// OCSP is the OCSP server of the CA named name.
func (r *Responder) OCSP(name string) string { return r.srv.URL + "/ocsp/" + name }

// Revoke marks a certificate revoked from now on.
func (r *Responder) Revoke(cert *x509.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[cert.SerialNumber.String()] = time.Now().Add(-time.Minute)
}

// Hits returns how many requests the responder answered.
func (r *Responder) Hits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// Unreachable is a URL on 127.0.0.1 where nothing listens (port 1), for certificates whose
// revocation responder is down: connecting is refused at once.
func Unreachable() string { return "http://127.0.0.1:1/revocation" }

func (r *Responder) serve(w http.ResponseWriter, req *http.Request) {
	kind, name, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	name, rest, _ := strings.Cut(name, "/")
	r.mu.Lock()
	r.hits++
	ca := r.cas[name]
	revoked := make(map[string]time.Time, len(r.revoked))
	for k, v := range r.revoked {
		revoked[k] = v
	}
	r.mu.Unlock()
	if ca == nil {
		http.NotFound(w, req)
		return
	}
	switch kind {
	case "crl":
		r.serveCRL(w, ca, revoked)
	case "ocsp":
		r.serveOCSP(w, req, ca, revoked, rest)
	default:
		http.NotFound(w, req)
	}
}

func (r *Responder) serveCRL(w http.ResponseWriter, ca *CA, revoked map[string]time.Time) {
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(time.Now().UnixNano()),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour),
	}
	for s, at := range revoked {
		n, _ := new(big.Int).SetString(s, 10)
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: at})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(der)
}

func (r *Responder) serveOCSP(w http.ResponseWriter, req *http.Request, ca *CA, revoked map[string]time.Time, rest string) {
	var raw []byte
	var err error
	if req.Method == http.MethodPost {
		raw, err = io.ReadAll(io.LimitReader(req.Body, 1<<16))
	} else {
		raw, err = base64.StdEncoding.DecodeString(rest)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	oreq, err := ocsp.ParseRequest(raw)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tmpl := ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: oreq.SerialNumber,
		ThisUpdate:   time.Now().Add(-time.Minute),
		NextUpdate:   time.Now().Add(time.Hour),
	}
	if at, ok := revoked[oreq.SerialNumber.String()]; ok {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, at, ocsp.KeyCompromise
	}
	der, err := ocsp.CreateResponse(ca.Cert, ca.Cert, tmpl, crypto.Signer(ca.Key))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(der)
}
