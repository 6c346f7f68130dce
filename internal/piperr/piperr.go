// Package piperr writes errors in the Pip.Services ErrorDescription format,
// the error dialect of the commandable (SPEC section 3) and REST (SPEC
// section 4) APIs, which both belong to that ecosystem:
//
//	{"type": "BadRequestException", "category": "BadRequest", "code": "INVALID_PARAMETER",
//	 "status": 400, "message": "...", "correlation_id": "...", "details": {...}}
//
// The HTTP status and category follow from the domain code of the error
// (sessiond.ErrorCode); the Pip.Services code is a sensible default for
// that domain code unless the caller attached a more precise one with Wrap.
package piperr

import (
	"errors"
	"net/http"

	"sessiond"
	"sessiond/internal/httpx"
)

// Categories of the Pip.Services error model used by sessiond.
const (
	CategoryBadRequest   = "BadRequest"
	CategoryNotFound     = "NotFound"
	CategoryUnauthorized = "Unauthorized"
	CategoryConflict     = "Conflict"
	CategoryUnsupported  = "Unsupported"
	CategoryNoResponse   = "NoResponse"
	CategoryInternal     = "Internal"
)

// Codes sessiond answers with. Clients match on these, never on messages.
const (
	CodeInvalidJSON      = "INVALID_JSON"       // body is not valid UTF-8 JSON, or nests too deep
	CodeBadRequest       = "BAD_REQUEST"        // body is valid JSON but not what the operation takes
	CodeInvalidParameter = "INVALID_PARAMETER"  // a parameter has the wrong type or value
	CodeMissingParameter = "MISSING_PARAMETER"  // a required parameter is absent or empty
	CodeSessionNotFound  = "SESSION_NOT_FOUND"  // no such session (or not the user's)
	CodeSessionClosed    = "SESSION_CLOSED"     // the session is closed or dead
	CodeBodyTooLarge     = "BODY_TOO_LARGE"     // body exceeds the configured limit
	CodeUnknownCommand   = "UNKNOWN_COMMAND"    // commandable API: no such command
	CodeNotFound         = "NOT_FOUND"          // no such route
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED" // route exists, method does not
	CodeConflict         = "CONFLICT"
	CodeUnauthorized     = "UNAUTHORIZED"
	CodeForbidden        = "FORBIDDEN"
	CodeTooManyRequests  = "TOO_MANY_REQUESTS"
	CodeUnavailable      = "SERVICE_UNAVAILABLE"
	CodeTimeout          = "TIMEOUT"
	CodeInternal         = "INTERNAL"
)

// Description is the Pip.Services ErrorDescription document.
type Description struct {
	Type          string         `json:"type"`
	Category      string         `json:"category"`
	Code          string         `json:"code"`
	Status        int            `json:"status"`
	Message       string         `json:"message"`
	CorrelationID string         `json:"correlation_id,omitempty"`
	Details       map[string]any `json:"details,omitempty"`
}

// Error attaches a Pip.Services code, and in rare cases an HTTP status that
// no domain code expresses (405), to a domain error. The domain error (Err)
// keeps deciding everything else: category, status, message and details.
type Error struct {
	Code   string // Pip.Services code; empty: the default for the domain code
	Status int    // HTTP status override; 0: the status of the domain code
	Err    error  // the domain error, normally a *sessiond.Error
}

func (e *Error) Error() string { return e.Code + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err with the Pip.Services code attached. A nil err stays nil.
func Wrap(code string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// New returns a domain error with the given domain code (sessiond.EINVALID,
// ...), Pip.Services code and message.
func New(domainCode, code, message string) error {
	return &Error{Code: code, Err: &sessiond.Error{Code: domainCode, Message: message}}
}

// Invalid returns a BadRequest error about one parameter, naming it in the
// details.
func Invalid(code, param, message string) error {
	return &Error{Code: code, Err: &sessiond.Error{Code: sessiond.EINVALID, Message: message,
		Details: map[string]any{"parameter": param}}}
}

// NoRoute answers a request for a path the API does not serve: 404 with
// code NOT_FOUND.
func NoRoute(w http.ResponseWriter, r *http.Request) {
	Write(w, r, New(sessiond.ENOTFOUND, CodeNotFound, "no such route: "+Clip(r.URL.Path)))
}

// MethodNotAllowedHandler answers every request with 405 and the given
// Allow header ("GET, POST").
func MethodNotAllowedHandler(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		Write(w, r, MethodNotAllowed(r.Method))
	}
}

// Clip shortens client input quoted in a message to at most 100 bytes, so
// that an error never echoes a large input back.
func Clip(s string) string { return httpx.Clip(s, 100) }

// maxMessage bounds every message: some quote ids that come from the
// client and may be long.
const maxMessage = 500

// MethodNotAllowed is the 405 answer to a method the route does not take.
// The caller sets the Allow header.
func MethodNotAllowed(method string) error {
	return &Error{Code: CodeMethodNotAllowed, Status: http.StatusMethodNotAllowed,
		Err: &sessiond.Error{Code: sessiond.EINVALID, Message: "method " + Clip(method) + " is not allowed here",
			Details: map[string]any{"method": method}}}
}

// Describe returns the ErrorDescription of err. Internal errors get a
// generic message and no details: their cause is for the log only.
func Describe(err error, correlationID string) Description {
	var status int
	var category, code string
	switch sessiond.ErrorCode(err) {
	case sessiond.EINVALID:
		status, category, code = http.StatusBadRequest, CategoryBadRequest, CodeBadRequest
	case sessiond.ENOTFOUND:
		// The only things these APIs look up are sessions; routes and
		// commands that do not exist attach their own code.
		status, category, code = http.StatusNotFound, CategoryNotFound, CodeSessionNotFound
	case sessiond.ECLOSED:
		status, category, code = http.StatusBadRequest, CategoryBadRequest, CodeSessionClosed
	case sessiond.ECONFLICT:
		status, category, code = http.StatusConflict, CategoryConflict, CodeConflict
	case sessiond.EUNAUTHORIZED:
		status, category, code = http.StatusUnauthorized, CategoryUnauthorized, CodeUnauthorized
	case sessiond.EFORBIDDEN:
		status, category, code = http.StatusForbidden, CategoryUnauthorized, CodeForbidden
	case sessiond.ETOOLARGE:
		status, category, code = http.StatusRequestEntityTooLarge, CategoryBadRequest, CodeBodyTooLarge
	case sessiond.ETOOMANY:
		status, category, code = http.StatusTooManyRequests, CategoryBadRequest, CodeTooManyRequests
	case sessiond.EUNAVAILABLE:
		status, category, code = http.StatusServiceUnavailable, CategoryNoResponse, CodeUnavailable
	case sessiond.ETIMEOUT:
		status, category, code = http.StatusGatewayTimeout, CategoryNoResponse, CodeTimeout
	default:
		return Description{
			Type:          typeOf(CategoryInternal),
			Category:      CategoryInternal,
			Code:          CodeInternal,
			Status:        http.StatusInternalServerError,
			Message:       "Internal error",
			CorrelationID: correlationID,
		}
	}
	var pe *Error
	if errors.As(err, &pe) {
		if pe.Code != "" {
			code = pe.Code
		}
		if pe.Status != 0 {
			status = pe.Status
			if status == http.StatusMethodNotAllowed {
				category = CategoryUnsupported
			}
		}
	}
	return Description{
		Type:          typeOf(category),
		Category:      category,
		Code:          code,
		Status:        status,
		Message:       httpx.Clip(sessiond.ErrorMessage(err), maxMessage),
		CorrelationID: correlationID,
		Details:       sessiond.ErrorDetails(err),
	}
}

// typeOf names the exception type of a category, as Pip.Services services
// written in other languages do ("BadRequestException").
func typeOf(category string) string {
	switch category {
	case CategoryNoResponse:
		return "ConnectionException"
	default:
		return category + "Exception"
	}
}

// Write answers r with the ErrorDescription of err and its HTTP status, and
// logs err once (internal errors at Error level with their cause, others at
// Debug), with the request's correlation id.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	httpx.LogError(r, err)
	httpx.SetRetryAfter(w, err)
	d := Describe(err, httpx.CorrelationID(r))
	httpx.WriteJSON(w, d.Status, "", &d)
}
