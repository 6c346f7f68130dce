// Package gwerr is the error dialect of SPEC section 6, spoken by the
// gateway and by the session files API: both answer refused requests with
// one JSON-RPC style body. It lives below both so that neither imports the
// other.
package gwerr

import (
	"errors"
	"net/http"

	"sessiond"
	"sessiond/internal/httpx"
)

// The error dialect of SPEC section 6 (gateway and session files).
//
// The gateway fronts JSON-RPC backends and must answer a refused request
// with a JSON-RPC style body (SPEC 6.1), so every error of section 6 (the
// gateway's own and the files API's) has that one shape:
//
//	{"jsonrpc":"2.0","error":{"code":-32001,"message":"...","data":{"code":"unauthorized"}},"id":null}
//
// error.code is a JSON-RPC error number, error.message says what was
// wrong, and error.data.code is the sessiond error code (a stable,
// machine-readable string), next to any structured details of the error
// (for instance "limit" for a quota). The HTTP status carries the same
// meaning; the table below is the whole mapping.
//
//	sessiond code   HTTP  JSON-RPC
//	invalid          400  -32602
//	unauthorized     401  -32001  (with WWW-Authenticate: Bearer)
//	closed           401  -32001
//	forbidden        403  -32003
//	not_found        404  -32004
//	(bad method)     405  -32601  (with Allow)
//	conflict         409  -32009
//	too_large        413  -32013
//	too_many         429  -32029  (with Retry-After; data.retry_after)
//	internal         500  -32603
//	unavailable      503  -32005  (sessiond itself: its store down, its disk full)
//	unavailable      502  -32002  (the gateway's upstream failed)
//	timeout          504  -32008

// JSON-RPC error numbers of the section 6 dialect.
const (
	CodeInvalidParams    = -32602
	CodeUnauthenticated  = -32001
	CodeForbidden        = -32003
	CodeNotFound         = -32004
	CodeMethodNotAllowed = -32601
	CodeConflict         = -32009
	CodeTooLarge         = -32013
	CodeTooMany          = -32029
	CodeInternal         = -32603
	CodeBadGateway       = -32002
	CodeUnavailable      = -32005
	CodeGatewayTimeout   = -32008
)

// CodeMethodNotAllowedName is error.data.code of a 405 answer; sessiond has
// no domain code for it because only HTTP edges know methods.
const CodeMethodNotAllowedName = "method_not_allowed"

// ErrorBody is the JSON body of every section 6 error.
type ErrorBody struct {
	JSONRPC string      `json:"jsonrpc"`
	Error   ErrorObject `json:"error"`
	ID      *struct{}   `json:"id"` // always null: there is no request id to echo
}

// ErrorObject is the "error" member of ErrorBody.
type ErrorObject struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

// Status returns the HTTP status and JSON-RPC error number of a sessiond
// error code.
func Status(code string) (status, rpcCode int) {
	switch code {
	case sessiond.EINVALID:
		return http.StatusBadRequest, CodeInvalidParams
	case sessiond.EUNAUTHORIZED, sessiond.ECLOSED:
		return http.StatusUnauthorized, CodeUnauthenticated
	case sessiond.EFORBIDDEN:
		return http.StatusForbidden, CodeForbidden
	case sessiond.ENOTFOUND:
		return http.StatusNotFound, CodeNotFound
	case sessiond.ECONFLICT:
		return http.StatusConflict, CodeConflict
	case sessiond.ETOOLARGE:
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case sessiond.ETOOMANY:
		return http.StatusTooManyRequests, CodeTooMany
	case sessiond.EUNAVAILABLE:
		return http.StatusServiceUnavailable, CodeUnavailable
	case sessiond.ETIMEOUT:
		return http.StatusGatewayTimeout, CodeGatewayTimeout
	default:
		return http.StatusInternalServerError, CodeInternal
	}
}

// Upstream marks e as a failure of the gateway's upstream: unavailable is
// then 502 (a bad gateway), not 503 (sessiond itself cannot serve).
func Upstream(e *sessiond.Error) error { return upstreamError{e} }

type upstreamError struct{ err *sessiond.Error }

func (u upstreamError) Error() string { return u.err.Error() }
func (u upstreamError) Unwrap() error { return u.err }

// WriteError answers err in the section 6 dialect. Internal errors are
// logged here (once, at the edge that answers them) and shown with a
// generic message; their cause never reaches the client.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.LogError(r, err)
	code := sessiond.ErrorCode(err)
	status, rpcCode := Status(code)
	if errors.As(err, new(upstreamError)) && code == sessiond.EUNAVAILABLE {
		status, rpcCode = http.StatusBadGateway, CodeBadGateway
	}
	data := map[string]any{}
	for k, v := range sessiond.ErrorDetails(err) {
		data[k] = v
	}
	data["code"] = code
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
	}
	httpx.SetRetryAfter(w, err)
	writeBody(w, status, rpcCode, sessiond.ErrorMessage(err), data)
}

// WriteMethodNotAllowed answers 405 in the section 6 dialect, listing the
// allowed methods.
func WriteMethodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeBody(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		"method not allowed; allowed: "+allow, map[string]any{"code": CodeMethodNotAllowedName})
}

func writeBody(w http.ResponseWriter, status, rpcCode int, msg string, data map[string]any) {
	// A body that was meant for a proxied response must not leak into ours.
	h := w.Header()
	h.Del("Content-Encoding")
	h.Del("Content-Range")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	httpx.WriteJSON(w, status, "", ErrorBody{
		JSONRPC: "2.0",
		Error:   ErrorObject{Code: rpcCode, Message: msg, Data: data},
	})
}
