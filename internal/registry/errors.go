package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Code is the stable classification of a registry failure. The engine maps codes to its two
// channels: what the registry proved about the image, and what kept vouch from deciding.
type Code string

// The codes an *Error carries.
const (
	// CodeAuth: the registry refused the credentials, or there were none (401, 403).
	CodeAuth Code = "auth"
	// CodeNotFound: the repository, manifest or blob does not exist (404, MANIFEST_UNKNOWN…).
	CodeNotFound Code = "not-found"
	// CodeUnavailable: the registry could not be reached or failed (connection errors, TLS, EOF,
	// 429, 5xx, redirect loops, any failure not otherwise classified).
	CodeUnavailable Code = "unavailable"
	// CodeTimeout: the context's deadline passed or it was cancelled.
	CodeTimeout Code = "timeout"
	// CodeTooLarge: a response body or a referrer list exceeded its cap.
	CodeTooLarge Code = "too-large"
	// CodeInvalid: the registry answered with content that cannot be right: bytes that do not
	// hash to their digest, malformed JSON or headers.
	CodeInvalid Code = "invalid"
)

// Error is the one error type of the package. Op names the Client call ("resolve", "manifest",
// "blob", "referrers"; empty for errors raised inside the transport), Ref the reference it was
// given, Status the HTTP status when the registry sent one, and Err the cause. Error strings
// never contain credentials.
type Error struct {
	Code   Code
	Op     string
	Ref    string
	Status int
	Err    error
}

// Sentinels for errors.Is: errors.Is(err, ErrAuth) holds for any *Error in err's chain whose
// Code is CodeAuth, and so on.
var (
	ErrAuth        = &Error{Code: CodeAuth}
	ErrNotFound    = &Error{Code: CodeNotFound}
	ErrUnavailable = &Error{Code: CodeUnavailable}
	ErrTimeout     = &Error{Code: CodeTimeout}
	ErrTooLarge    = &Error{Code: CodeTooLarge}
	ErrInvalid     = &Error{Code: CodeInvalid}
)

var opVerbs = map[string]string{
	"resolve":   "resolving",
	"manifest":  "fetching manifest",
	"blob":      "fetching blob",
	"referrers": "listing referrers of",
}

// Error formats "<verb> <ref>: <cause>", e.g. "resolving example.com/app:1: unauthorized".
func (e *Error) Error() string {
	cause := "registry error: " + string(e.Code)
	if e.Err != nil {
		cause = e.Err.Error()
	}
	verb, ok := opVerbs[e.Op]
	if !ok {
		verb = e.Op
	}
	switch {
	case verb != "" && e.Ref != "":
		return verb + " " + e.Ref + ": " + cause
	case verb != "":
		return verb + ": " + cause
	}
	return cause
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's code (see ErrAuth).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Err == nil && t.Op == "" && t.Ref == "" && t.Status == 0 && t.Code == e.Code
}

// wrapErr turns any error from a ggcr call into an *Error for op and ref. When the transport
// raised the error (a cap, a redirect rule, a refused realm, an open circuit…), that error is
// the cause: it says what happened without the *url.Error around it, whose URL may be a
// storage URL with credentials in its query.
func wrapErr(op, ref string, err error) error {
	if err == nil {
		return nil
	}
	var raised *Error
	if errors.As(err, &raised) && raised.Op == "" {
		err = raised
	}
	e := &Error{Code: Classify(err), Op: op, Ref: ref, Err: err}
	var te *transport.Error
	var re *Error
	switch {
	case errors.As(err, &re) && re.Status != 0:
		e.Status = re.Status
	case errors.As(err, &te):
		e.Status = te.StatusCode
	}
	return e
}

// Classify returns the Code of any error coming back from a ggcr call made with this package's
// RemoteOptions or Transport, including calls made by other libraries (cosign, notation-go):
//   - an *Error in the chain keeps its code (caps, digest checks, redirect limit, deadlines
//     noticed by the transport);
//   - context deadline or cancellation, and net errors with Timeout(): timeout;
//   - *transport.Error: 401/403 or UNAUTHORIZED/DENIED: auth; 404 or MANIFEST_UNKNOWN,
//     NAME_UNKNOWN, BLOB_UNKNOWN: not-found; 408, 429, 5xx: unavailable; other 4xx with an
//     *_INVALID code: invalid;
//   - JSON syntax and type errors, digest and checksum mismatches, malformed descriptors
//     reported by ggcr: invalid; so is an EOF or unexpected EOF that no transport or network
//     error carries — a JSON decoder's, on a body that arrived whole (this package's transport
//     marks a body cut in transit as unavailable);
//   - everything else (connection refused, DNS, TLS, EOF, unknown): unavailable.
//
// Classify(nil) is "".
func Classify(err error) Code {
	if err == nil {
		return ""
	}
	var re *Error
	if errors.As(err, &re) {
		return re.Code
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeTimeout
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return classifyStatus(te)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return CodeTimeout
	}
	if isInvalid(err) {
		return CodeInvalid
	}
	return CodeUnavailable
}

func classifyStatus(te *transport.Error) Code {
	switch s := te.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return CodeAuth
	case s == http.StatusNotFound:
		return CodeNotFound
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return CodeUnavailable
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return CodeAuth
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return CodeNotFound
		case transport.ManifestInvalidErrorCode, transport.DigestInvalidErrorCode, transport.NameInvalidErrorCode,
			transport.TagInvalidErrorCode, transport.SizeInvalidErrorCode, transport.ManifestUnverifiedErrorCode:
			return CodeInvalid
		}
	}
	return CodeUnavailable
}

// invalidMarkers are fragments of the untyped errors ggcr returns when a registry's content or
// headers are wrong (pkg/v1/remote/fetcher.go, internal/verify, pkg/v1/hash.go).
var invalidMarkers = []string{
	"does not match requested digest",
	"error verifying",
	"checksum",
	"did not include docker-content-digest",
	"did not include content-type",
	"did not include content-length",
	"does not match expected size",
	"cannot parse hash",
	"unsupported hash",
	"wrong number of hex digits",
}

func isInvalid(err error) bool {
	var se *json.SyntaxError
	var ue *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &ue) || name.IsErrBadName(err) {
		return true
	}
	var urlErr *url.Error
	var ne net.Error
	if (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) && !errors.As(err, &urlErr) && !errors.As(err, &ne) {
		return true // a decoder's: see Classify
	}
	msg := strings.ToLower(err.Error())
	for _, m := range invalidMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// tooLarge is the transport's error for a body beyond its cap.
func tooLarge(what string, limit int64, detail string) *Error {
	return &Error{Code: CodeTooLarge, Err: fmt.Errorf("%s exceeds the %d-byte limit%s", what, limit, detail)}
}
