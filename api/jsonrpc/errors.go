package jsonrpc

import (
	"encoding/json"
	"net/http"
	"sessiond/internal/httpx"

	"sessiond"
)

// JSON-RPC error codes of SPEC section 5. The first five are the JSON-RPC
// 2.0 specification's; the others are this service's, in the range the
// specification reserves for implementation-defined server errors.
const (
	CodeParseError      = -32700 // the body is not valid JSON
	CodeInvalidRequest  = -32600 // not a valid request object (or batch)
	CodeMethodNotFound  = -32601 // no such method
	CodeInvalidParams   = -32602 // missing, unknown or wrongly typed params
	CodeInternalError   = -32603 // the service failed; details only in the log
	CodeUnauthenticated = -32001 // missing or invalid credentials (HTTP 401)
	CodeForbidden       = -32003 // valid credentials, access denied (HTTP 403)
	// CodeUnavailable: sessiond cannot serve the call now (its store is
	// unreachable, its disk full); nothing was stored. Try again later.
	// A single request answers it with HTTP 503 and Retry-After.
	CodeUnavailable = -32005
	// CodeTooManyRequests: too many failed authentications from the
	// client's address (HTTP 429 with Retry-After; data.retry_after holds
	// the seconds to wait).
	CodeTooManyRequests = -32029
)

// Error is a JSON-RPC error object. It implements error so that method
// implementations can return it directly.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	// Data adds structured context, e.g. {"param": "token"}. It only ever
	// holds maps of strings and numbers, so it always marshals.
	Data map[string]any `json:"data,omitempty"`
	// status is the HTTP status a single (not batched) request answered
	// with this error gets; 0 means 200, as JSON-RPC over HTTP answers.
	status int
}

func (e *Error) Error() string { return e.Message }

func invalidRequest(msg string) *Error {
	return &Error{Code: CodeInvalidRequest, Message: "Invalid Request: " + msg}
}

// paramError names the offending parameter in the message and in data.
func paramError(param, why string) *Error {
	return &Error{Code: CodeInvalidParams, Message: "Invalid params: " + param + " " + why,
		Data: map[string]any{"param": param}}
}

func paramsError(why string) *Error {
	return &Error{Code: CodeInvalidParams, Message: "Invalid params: " + why}
}

// noSession is the answer of get_session and store_session_data for a
// token that does not name an active session of the caller's API key. It
// is the same whether the token is unknown, closed, expired or another
// key's, so that a key learns nothing about other keys' tokens.
func noSession() *Error {
	return paramError("token", "does not name an active session of this API key")
}

// toError maps any error of a method to its JSON-RPC error, and tells
// whether it is internal (to be logged with its cause).
func toError(err error) (e *Error, internal bool) {
	if e, ok := err.(*Error); ok {
		return e, false
	}
	msg := sessiond.ErrorMessage(err)
	switch sessiond.ErrorCode(err) {
	case sessiond.EINVALID:
		return &Error{Code: CodeInvalidParams, Message: "Invalid params: " + msg}, false
	case sessiond.ENOTFOUND, sessiond.ECLOSED:
		return noSession(), false
	case sessiond.EUNAUTHORIZED:
		return &Error{Code: CodeUnauthenticated, Message: "Unauthenticated: " + msg}, false
	case sessiond.EFORBIDDEN:
		return &Error{Code: CodeForbidden, Message: "Forbidden: " + msg}, false
	case sessiond.ETOOLARGE:
		return &Error{Code: CodeInvalidRequest, Message: "Invalid Request: " + msg, Data: sessiond.ErrorDetails(err), status: http.StatusRequestEntityTooLarge}, false
	case sessiond.ETOOMANY:
		return &Error{Code: CodeTooManyRequests, Message: "Too many requests: " + msg, Data: sessiond.ErrorDetails(err)}, false
	case sessiond.EUNAVAILABLE, sessiond.ETIMEOUT:
		// Their messages are written to be shown ("its disk is full").
		return &Error{Code: CodeUnavailable, Message: "Service unavailable: " + msg,
			Data: map[string]any{"code": sessiond.EUNAVAILABLE}, status: http.StatusServiceUnavailable}, true
	default: // EINTERNAL, ECONFLICT (a token or id collision) and the unknown
		return &Error{Code: CodeInternalError, Message: "Internal error"}, true
	}
}

// httpStatus is the HTTP status of an error that answers the whole HTTP
// request (authentication, transport). Errors inside a JSON-RPC exchange
// are answered with 200, as JSON-RPC over HTTP does.
func httpStatus(err error) int { return httpx.StatusOf(sessiond.ErrorCode(err)) }

// appendError appends the JSON text of e.
func appendError(b []byte, e *Error) []byte {
	enc, err := json.Marshal(e)
	if err != nil { // cannot happen: Data holds only strings and numbers
		return append(b, `{"code":-32603,"message":"Internal error"}`...)
	}
	return append(b, enc...)
}
