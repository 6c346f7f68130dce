package sessiond

import (
	"errors"
	"fmt"
)

// Error codes. Every error that crosses a package boundary carries one of
// these; each API dialect maps them to its own wire format at the edge.
const (
	EINVALID      = "invalid"      // malformed or wrongly typed input
	ENOTFOUND     = "not_found"    // no such session, key or file
	ECLOSED       = "closed"       // the session is closed or dead
	ECONFLICT     = "conflict"     // a unique value already exists
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials
	EFORBIDDEN    = "forbidden"    // credentials valid, access denied
	ETOOLARGE     = "too_large"    // body or quota limit exceeded
	EUNAVAILABLE  = "unavailable"  // upstream or store unreachable
	ETIMEOUT      = "timeout"      // upstream or store timed out
	ETOOMANY      = "too_many"     // too many failures or requests; Details["retry_after"] is whole seconds
	EINTERNAL     = "internal"     // anything else; message is generic
)

// Error is the one error type of the domain. Code is machine-readable,
// Message is safe to show to the caller, Details adds structured context,
// and Err is the cause (for logs only, never shown to callers).
type Error struct {
	Code    string
	Message string
	Details map[string]any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected failure. Its message is generic so that no
// detail of the cause reaches a client; the cause is kept for the log.
func Internal(err error) *Error {
	return &Error{Code: EINTERNAL, Message: "Internal error", Err: err}
}

// ErrorCode returns the code of err, EINTERNAL for any error that is not an
// *Error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error"
}

// ErrorDetails returns the details of err, if any.
func ErrorDetails(err error) map[string]any {
	var e *Error
	if errors.As(err, &e) {
		return e.Details
	}
	return nil
}
