// Package jsonrpc serves the Session API of SPEC section 5: JSON-RPC 2.0
// over HTTP POST, single requests and batches, authenticated with a session
// token or an API key and secret, issuing and managing session tokens.
//
// # Wire behaviour
//
//   - Only POST is served; any other HTTP method gets 405 with a JSON-RPC
//     error body (-32600) and `Allow: POST`.
//   - Authentication happens once per HTTP request, before the body is
//     read: the token header (or `Authorization: Bearer`) first, else the
//     APIKey and Secret headers. Failure is HTTP 401 with one error object,
//     code -32001 and id null, for single requests and batches alike, so
//     nothing of an unauthenticated body is ever parsed. A token of a
//     session that belongs to no API key (opened through the trusted
//     commandable or REST APIs) is refused with HTTP 403 and -32003.
//   - A body over the limit is HTTP 413 with -32600. A body that is not
//     JSON is -32700; JSON nested deeper than httpx.MaxJSONDepth, a JSON
//     value that is neither an object nor an array, an empty batch and a
//     batch over the limit are one -32600 error. These answer with id null
//     and, as every error inside a JSON-RPC exchange, HTTP 200.
//   - Each request of a batch is answered independently, in order; invalid
//     entries get their own error. Notifications (no "id" member) are
//     executed and get no response; a request with nothing to answer (a
//     notification, or a batch of them) gets HTTP 204 and no body.
//   - Envelope members other than jsonrpc, method, params and id are
//     ignored; a repeated member is -32600. `"params": null` is taken as
//     absent. Params are by name, or by position in the order the method
//     table lists them; unknown, repeated and wrongly typed params are
//     -32602, and the message names the param and says why.
//   - get_session and store_session_data answer a token that names no
//     active session of the caller's key (unknown, closed, expired or
//     another key's: indistinguishable on purpose) with -32602 and
//     data {"param": "token"}.
//   - -32603 carries the generic message "Internal error"; the cause is
//     logged once, here. When authentication itself fails that way (the
//     store is down), the answer is HTTP 500 (503, 504 for an unavailable
//     or slow store). Tokens and secrets are never logged.
//   - A source (client address) that keeps failing authentication is
//     slowed down (Options.Limiter): once over its budget, its requests
//     are answered HTTP 429 with `Retry-After` and one error object, code
//     -32029 (CodeTooManyRequests), data {"retry_after": seconds}, id
//     null, before its credentials are checked.
package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"sessiond"
	"sessiond/internal/auth"
	"sessiond/internal/clientip"
	"sessiond/internal/httpx"
)

// DefaultMaxBatch is the default largest number of requests in a batch.
const DefaultMaxBatch = 100

// Options configure the handler. Zero values take the defaults.
type Options struct {
	// BodyLimit is the largest request body, in bytes. Default
	// httpx.DefaultBodyLimit (1 MiB).
	BodyLimit int64
	// Headers names the credential headers. Empty names take
	// auth.DefaultHeaders.
	Headers auth.Headers
	// MaxBatch is the largest number of requests in one batch. Default 100.
	MaxBatch int
	// Clients tells the client address a session records (the same
	// address the gateway sends on). Default: the direct peer.
	Clients *clientip.Resolver
	// Limiter slows down repeated authentication failures per source
	// (HTTP 429, CodeTooManyRequests); nil limits nothing.
	Limiter *auth.Limiter
}

type handler struct {
	svc      *sessiond.Service
	limit    int64
	headers  auth.Headers
	maxBatch int
	clients  *clientip.Resolver
	limiter  *auth.Limiter
}

// New returns the Session API handler. It answers every path it is mounted
// on (the daemon mounts it on /api/v1/session/jsonrpc and
// /api/v2/session/jsonrpc); mount it without a method in the pattern so
// that it answers other HTTP methods with its own 405.
func New(svc *sessiond.Service, opts Options) http.Handler {
	hdr := opts.Headers.WithDefaults() // canonical names: Header.Get allocates nothing
	h := &handler{svc: svc, limit: opts.BodyLimit, headers: hdr, maxBatch: opts.MaxBatch, clients: opts.Clients, limiter: opts.Limiter}
	if h.limit <= 0 {
		h.limit = httpx.DefaultBodyLimit
	}
	if h.maxBatch <= 0 {
		h.maxBatch = DefaultMaxBatch
	}
	return h
}

var nullID = []byte("null")

// NoRoute answers a path under the Session API's prefix that it does not
// serve (/api/v1/session/jsonrpc/, say): 404 with a JSON-RPC error.
func NoRoute(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if len(path) > 100 {
		path = path[:100] + "..."
	}
	writeError(w, http.StatusNotFound, invalidRequest("no such route: "+path+"; the Session API is POST /api/v1/session/jsonrpc"))
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, invalidRequest("HTTP method "+r.Method+" is not allowed; use POST"))
		return
	}
	ctx := r.Context()
	caller, err := h.limiter.Authenticate(r, h.svc, h.headers.Credentials(r))
	if err != nil {
		h.failHTTP(w, r, err)
		return
	}
	if caller.APIKeyID == "" {
		h.failHTTP(w, r, sessiond.Errorf(sessiond.EFORBIDDEN,
			"this session token belongs to no API key; the Session API needs a token it issued, or an APIKey and Secret"))
		return
	}
	bufs := bufPool.Get().(*buffers)
	defer bufs.release()
	body, err := httpx.ReadBodyInto(r, h.limit, bufs.body)
	bufs.body = body
	if err != nil {
		h.failHTTP(w, r, err)
		return
	}
	out, answered, status := h.serveBody(ctx, r, caller, body, bufs.out[:0])
	bufs.out = out
	if answered {
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		httpx.WriteRaw(w, status, "", out)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
}

// buffers hold a request's body and its response. They are pooled: nothing
// of a body outlives its request (params are copied out of it, ids into the
// response), and the response is copied by the ResponseWriter.
type buffers struct{ body, out []byte }

var bufPool = sync.Pool{New: func() any { return &buffers{body: make([]byte, 0, 1024), out: make([]byte, 0, 1024)} }}

// maxPooled bounds the buffers kept for reuse; a rare huge one is left to
// the collector.
const maxPooled = 64 << 10

func (b *buffers) release() {
	if cap(b.body) <= maxPooled && cap(b.out) <= maxPooled {
		b.body, b.out = b.body[:0], b.out[:0]
		bufPool.Put(b)
	}
}

// serveBody answers a whole body, appending the response to out. It
// reports false when there is nothing to answer (notifications only), and
// the HTTP status of a single request's error that has its own (0: 200).
func (h *handler) serveBody(ctx context.Context, r *http.Request, c *sessiond.Caller, body []byte, out []byte) ([]byte, bool, int) {
	if !httpx.WellFormed(body) {
		return appendErrorResponse(out, nullID, bodyProblem(body)), true, 0
	}
	i := skipSpace(body, 0)
	v := body[i:valueEnd(body, i)]
	switch first(v) {
	case '{':
		return h.serveOne(ctx, r, c, v, out)
	case '[':
		out, answered := h.serveBatch(ctx, r, c, v, out)
		return out, answered, 0
	default:
		return appendErrorResponse(out, nullID,
			invalidRequest("the body must be a request object or an array of them (a batch), not "+httpx.JSONKind(v))), true, 0
	}
}

// bodyProblem says why httpx.WellFormed refused body, with the checks it
// does in one pass.
func bodyProblem(body []byte) *Error {
	switch {
	case skipSpace(body, 0) == len(body):
		return &Error{Code: CodeParseError, Message: "Parse error: the body is empty"}
	case !json.Valid(body):
		var v any
		return &Error{Code: CodeParseError, Message: "Parse error: " + sessiond.ErrorMessage(httpx.DecodeError(json.Unmarshal(body, &v)))}
	case !sessiond.ValidText(body):
		// JSON text is UTF-8 (RFC 8259), and encoding/json would turn
		// invalid bytes and escaped lone surrogates into U+FFFD silently:
		// such a body is not JSON a strict client could read back.
		return &Error{Code: CodeParseError, Message: "Parse error: the body is not valid UTF-8 text (or escapes a lone UTF-16 surrogate)"}
	}
	if err := httpx.CheckDepth(body); err != nil {
		return invalidRequest(sessiond.ErrorMessage(err))
	}
	return &Error{Code: CodeParseError, Message: "Parse error: the body is not JSON text"} // WellFormed and the three disagree: FuzzWellFormed says never
}

func (h *handler) serveBatch(ctx context.Context, r *http.Request, c *sessiond.Caller, v []byte, out []byte) ([]byte, bool) {
	switch n := count(v); {
	case n == 0:
		return appendErrorResponse(out, nullID, invalidRequest("the batch is empty")), true
	case n > h.maxBatch:
		e := invalidRequest(fmt.Sprintf("the batch holds %d requests, more than the limit of %d", n, h.maxBatch))
		e.Data = map[string]any{"max_batch": h.maxBatch}
		return appendErrorResponse(out, nullID, e), true
	}
	out = append(out, '[')
	start := len(out)
	for it := newIter(v); it.next(); {
		if ctx.Err() != nil { // the client is gone: stop working for it
			return out[:start-1], false
		}
		mark := len(out)
		if mark > start {
			out = append(out, ',')
		}
		var answered bool
		if out, answered, _ = h.serveOne(ctx, r, c, it.val, out); !answered {
			out = out[:mark]
		}
	}
	if len(out) == start {
		return out[:start-1], false
	}
	return append(out, ']'), true
}

// serveOne answers one request (or any value found in a batch), appending
// its response to out unless it is a notification.
func (h *handler) serveOne(ctx context.Context, r *http.Request, c *sessiond.Caller, v []byte, out []byte) ([]byte, bool, int) {
	req, e := parseRequest(v)
	if e != nil {
		h.logRefused(r, c, "", e)
		return appendErrorResponse(out, orNull(req.id), e), true, 0
	}
	name, m := lookup(req.method)
	var result []byte
	var err error
	if m == nil {
		err = &Error{Code: CodeMethodNotFound, Message: "Method not found: " + quote(name)}
	} else if p, e := bind(req.params, name, m.params); e != nil {
		err = e
	} else {
		result, err = m.call(h, ctx, r, c, p)
	}
	if req.id == nil { // a notification: executed, never answered
		if err != nil {
			h.logError(r, c, name, err)
		}
		return out, false, 0
	}
	if err != nil {
		e := h.logError(r, c, name, err)
		return appendErrorResponse(out, req.id, e), true, e.status
	}
	return appendResult(out, req.id, result), true, 0
}

// request is one parsed request object; every field is a raw sub-slice of
// the body.
type request struct {
	id     []byte // nil when absent (a notification)
	method []byte // a JSON string
	params []byte // an object or array; nil when absent or null
}

// parseRequest checks v against the JSON-RPC 2.0 request object. On error
// the returned request's id is the one to answer with (nil for null).
func parseRequest(v []byte) (request, *Error) {
	var req request
	if len(v) == 0 || v[0] != '{' {
		return req, invalidRequest("a request must be a JSON object, not " + httpx.JSONKind(v))
	}
	var vals [4][]byte
	var seen [4]bool
	dup := ""
	for it := newIter(v); it.next(); {
		m := memberIndex(it.key)
		if m < 0 {
			continue // unknown members are ignored
		}
		if seen[m] && dup == "" {
			dup = decodeString(it.key)
		}
		seen[m] = true
		vals[m] = it.val
	}

	// The id first, so that every later error can echo it.
	if id := vals[mID]; seen[mID] {
		switch first(id) {
		case '"':
			req.id = id
			if !validString(id) { // answer with valid UTF-8
				req.id, _ = json.Marshal(decodeString(id))
			}
		case 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			req.id = id
		default:
			return request{}, invalidRequest(`"id" must be a string, a number or null, not ` + httpx.JSONKind(id))
		}
		if dup == "id" {
			return request{}, invalidRequest(`member "id" appears more than once`)
		}
	}
	if dup != "" {
		return req, invalidRequest("member " + quote(dup) + " appears more than once")
	}
	if !seen[mJSONRPC] {
		return req, invalidRequest(`member "jsonrpc" is missing; it must be "2.0"`)
	}
	if !stringIs(vals[mJSONRPC], "2.0") {
		return req, invalidRequest(`member "jsonrpc" must be the string "2.0"`)
	}
	if !seen[mMethod] {
		return req, invalidRequest(`member "method" is missing`)
	}
	if !isString(vals[mMethod]) {
		return req, invalidRequest(`member "method" must be a string, not ` + httpx.JSONKind(vals[mMethod]))
	}
	req.method = vals[mMethod]
	if p := vals[mParams]; seen[mParams] && !isNull(p) {
		if c := first(p); c != '{' && c != '[' {
			return req, invalidRequest(`member "params" must be an object or an array, not ` + httpx.JSONKind(p))
		}
		req.params = p
	}
	return req, nil
}

// The members of a request object, as memberIndex numbers them.
const (
	mJSONRPC = iota
	mMethod
	mParams
	mID
)

// memberIndex returns the member of a request object that the raw JSON
// string key names, or -1.
func memberIndex(key []byte) int {
	// A key without escapes is its raw bytes (the body is valid UTF-8):
	// one string switch, with no decoding and no allocation.
	switch string(key) {
	case `"jsonrpc"`:
		return mJSONRPC
	case `"method"`:
		return mMethod
	case `"params"`:
		return mParams
	case `"id"`:
		return mID
	}
	if bytes.IndexByte(key, '\\') < 0 {
		return -1
	}
	switch decodeString(key) { // an escaped spelling of a name
	case "jsonrpc":
		return mJSONRPC
	case "method":
		return mMethod
	case "params":
		return mParams
	case "id":
		return mID
	}
	return -1
}

func orNull(id []byte) []byte {
	if id == nil {
		return nullID
	}
	return id
}

// appendResult appends a success response. id and result are JSON texts.
func appendResult(b, id, result []byte) []byte {
	b = append(b, `{"jsonrpc":"2.0","result":`...)
	b = append(b, result...)
	b = append(b, `,"id":`...)
	b = append(b, id...)
	return append(b, '}')
}

// appendErrorResponse appends an error response.
func appendErrorResponse(b, id []byte, e *Error) []byte {
	b = append(b, `{"jsonrpc":"2.0","error":`...)
	b = appendError(b, e)
	b = append(b, `,"id":`...)
	b = append(b, id...)
	return append(b, '}')
}

// writeError answers the whole HTTP request with one error response.
func writeError(w http.ResponseWriter, status int, e *Error) {
	httpx.WriteRaw(w, status, "", appendErrorResponse(nil, nullID, e))
}

// failHTTP answers an error that concerns the whole HTTP request
// (authentication, the body as a whole) with its HTTP status.
func (h *handler) failHTTP(w http.ResponseWriter, r *http.Request, err error) {
	status := httpStatus(err)
	var e *Error
	switch sessiond.ErrorCode(err) {
	case sessiond.EINVALID: // the body could not be read
		e = invalidRequest(sessiond.ErrorMessage(err))
	default:
		var internal bool
		if e, internal = toError(err); internal {
			httpx.Logger(r.Context()).Error("session api: request failed", "correlation_id", httpx.CorrelationID(r), "err", err)
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
	}
	httpx.SetRetryAfter(w, err)
	if log := httpx.Logger(r.Context()); log.Enabled(r.Context(), slog.LevelDebug) && status < 500 {
		log.Debug("session api: request refused", "status", status, "correlation_id", httpx.CorrelationID(r), "err", err)
	}
	writeError(w, status, e)
}

// logError maps err to its JSON-RPC error and logs it once: internal
// errors with their cause at Error level, the client's at Debug level.
func (h *handler) logError(r *http.Request, c *sessiond.Caller, method string, err error) *Error {
	e, internal := toError(err)
	if internal {
		httpx.Logger(r.Context()).Error("session api: call failed", "rpc_method", method, "api_key_id", c.APIKeyID,
			"correlation_id", httpx.CorrelationID(r), "err", err)
		return e
	}
	h.logRefused(r, c, method, e)
	return e
}

func (h *handler) logRefused(r *http.Request, c *sessiond.Caller, method string, e *Error) {
	if log := httpx.Logger(r.Context()); log.Enabled(r.Context(), slog.LevelDebug) {
		log.Debug("session api: call refused", "rpc_method", method, "api_key_id", c.APIKeyID,
			"correlation_id", httpx.CorrelationID(r), "code", e.Code, "message", e.Message)
	}
}

// quote returns s as a JSON string, for names echoed in messages.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
