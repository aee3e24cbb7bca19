// Package errs is Latchkey's error vocabulary. Every package returns these
// codes; exactly one place (the HTTP error handler) maps them to a status and
// a page, logs internal errors and shows people only the public message.
package errs

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in handlers/errors.go.
const (
	Invalid         = "invalid"           // malformed input: 400
	Unauthorized    = "unauthorized"      // not signed in: 401
	Forbidden       = "forbidden"         // signed in, but not allowed: 403
	ReauthRequired  = "reauth_required"   // needs a recent sign-in: 403 or a redirect
	NotFound        = "not_found"         // no such thing, or not yours: 404
	Conflict        = "conflict"          // the request clashes with the current state: 409
	Gone            = "gone"              // a link or ceremony that was used, voided or expired: 410
	TooLarge        = "too_large"         // body over the limit: 413
	Unsupported     = "unsupported"       // wrong content type: 415
	TooManyRequests = "too_many_requests" // rate limited: 429
	Unavailable     = "unavailable"       // an outside service (mail) failed: 503
	Internal        = "internal"          // our fault: 500, logged, never shown
)

// Error is an error with a code and a message a person can act on.
// Message is the id of the message in the catalogs (package i18n), Data
// its template data as name, value pairs; the error handler writes it in
// the person's language. Err, when set, is the underlying cause; it is
// logged, never shown.
type Error struct {
	Code    string
	Message string
	Data    []any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// E returns an error with the given code and public message (an id).
func E(code, message string) *Error { return &Error{Code: code, Message: message} }

// EData is E for a message with template data (name, value pairs).
func EData(code, message string, data ...any) *Error {
	return &Error{Code: code, Message: message, Data: data}
}

// Wrap returns an error with the given code and public message that keeps err
// as its cause.
func Wrap(err error, code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// Code returns the code of the first *Error in err's chain, Internal for any
// other non-nil error, and "" for nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return Internal
}

// Message returns the id of the public message of err. Internal errors
// get a generic one so that nothing about our internals reaches a visitor.
func Message(err error) string {
	if e, ok := errors.AsType[*Error](err); ok && e.Code != Internal && e.Message != "" {
		return e.Message
	}
	return MessageInternal
}

// Data returns the template data of err's message.
func Data(err error) []any {
	if e, ok := errors.AsType[*Error](err); ok && e.Code != Internal {
		return e.Data
	}
	return nil
}

// MessageInternal is the message of every internal error.
const MessageInternal = "error.internal"
