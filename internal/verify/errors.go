package verify

import (
	"errors"
	"strings"
)

// Code classifies a verification problem. Codes are stable: tests, metrics and callers match
// them with errors.Is against the sentinels below.
type Code string

// Codes on the "failed" channel: the image does not satisfy the policy.
const (
	CodeNoSignatures   Code = "no-signatures"         // nothing signed this digest
	CodeNoMatch        Code = "no-matching-signature" // signatures exist, none verifies
	CodeAnnotations    Code = "annotation-mismatch"   // no verified payload carries the required annotations
	CodeDigestMismatch Code = "digest-mismatch"       // a payload names another digest
	CodeNotFound       Code = "image-not-found"       // the image (tag or digest) does not exist
	CodeInvalid        Code = "invalid-signature"     // malformed signature material
	CodeTooLarge       Code = "too-large"             // a response exceeded a cap
	CodeIdentity       Code = "identity-mismatch"     // verified signatures, none by the identity the policy names
)

// Codes on the "could not decide" channel: failurePolicy decides.
const (
	CodeUnavailable Code = "registry-unavailable" // 5xx, 429, network errors
	CodeAuth        Code = "registry-auth"        // 401, 403
	CodeTimeout     Code = "timeout"              // the admission budget ran out
	CodeUnsupported Code = "unsupported"          // configuration vouch cannot evaluate (yet)
)

// Undecided reports whether the code means vouch could not decide.
func (c Code) Undecided() bool {
	switch c {
	case CodeUnavailable, CodeAuth, CodeTimeout, CodeUnsupported:
		return true
	}
	return false
}

// Error is a verification problem with a stable code. Msg is the human cause in Kyverno's
// wording where Kyverno has one; Err keeps the underlying cause (e.g. cosign's).
type Error struct {
	Code Code
	Msg  string
	Err  error
}

// Error returns the message, followed by the cause when it adds information.
func (e *Error) Error() string {
	switch {
	case e.Err == nil:
		return e.Msg
	case e.Msg == "":
		return e.Err.Error()
	case strings.Contains(e.Msg, e.Err.Error()):
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches sentinels by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Msg == "" && t.Err == nil && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrNoSignatures   = &Error{Code: CodeNoSignatures}
	ErrNoMatch        = &Error{Code: CodeNoMatch}
	ErrAnnotations    = &Error{Code: CodeAnnotations}
	ErrDigestMismatch = &Error{Code: CodeDigestMismatch}
	ErrNotFound       = &Error{Code: CodeNotFound}
	ErrInvalid        = &Error{Code: CodeInvalid}
	ErrUnavailable    = &Error{Code: CodeUnavailable}
	ErrAuth           = &Error{Code: CodeAuth}
	ErrTimeout        = &Error{Code: CodeTimeout}
	ErrTooLarge       = &Error{Code: CodeTooLarge}
	ErrIdentity       = &Error{Code: CodeIdentity}
	ErrUnsupported    = &Error{Code: CodeUnsupported}
)

// Errorf builds an *Error.
func Errorf(code Code, msg string, cause error) *Error {
	return &Error{Code: code, Msg: msg, Err: cause}
}

// Undecided reports whether err, or any error joined into it, could not be decided. An error
// that carries no *Error counts as undecided, so an unexpected error never passes or fails.
func Undecided(err error) bool {
	if err == nil {
		return false
	}
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range multi.Unwrap() {
			if Undecided(e) {
				return true
			}
		}
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code.Undecided()
	}
	return true
}

// CodeOf returns the code of the first *Error in err's chain; errors without one are
// treated as undecided (unavailable), so an unexpected error never passes or fails an image.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeUnavailable
}

// FromRegistry wraps a registry error given its registry classification (the code strings of
// internal/registry: auth, not-found, unavailable, timeout, too-large, invalid) into an
// *Error on the right channel. Unknown codes are unavailable: undecided, never a verdict.
// An authentication failure's message starts with "registry authentication failed".
func FromRegistry(registryCode, msg string, err error) *Error {
	code := map[string]Code{
		"auth": CodeAuth, "not-found": CodeNotFound, "timeout": CodeTimeout,
		"too-large": CodeTooLarge, "invalid": CodeInvalid,
	}[registryCode]
	if code == "" {
		code = CodeUnavailable
	}
	if code == CodeAuth {
		// Say so in words: the registry's own text varies (UNAUTHORIZED, DENIED, a 403 page).
		if msg == "" {
			msg = "registry authentication failed"
		} else {
			msg = "registry authentication failed: " + msg
		}
	}
	return Errorf(code, msg, err)
}
