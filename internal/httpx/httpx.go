// Package httpx holds what every HTTP edge of sessiond shares: the body
// limit, the correlation id, the wire time format, JSON writing and the
// request logger. It knows no dialect's error format.
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"sessiond"
)

// DefaultBodyLimit is the default maximum request body size.
const DefaultBodyLimit = 1 << 20

// MaxJSONDepth is the deepest nesting accepted in a JSON body.
const MaxJSONDepth = 64

// TimeFormat is the wire format of every time: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime formats t for the wire.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Time is a time that marshals in the wire format, and as null when zero.
type Time time.Time

func (t Time) MarshalJSON() ([]byte, error) {
	if time.Time(t).IsZero() {
		return []byte("null"), nil
	}
	b := make([]byte, 0, len(TimeFormat)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, TimeFormat)
	return append(b, '"'), nil
}

func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" || string(b) == `""` {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = Time(v)
	return nil
}

// ParseTime accepts any RFC 3339 time (whole or fractional seconds, any
// offset) and returns it in UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil && strings.ContainsAny(s, "tz") {
		// RFC 3339 allows a lowercase t and z (section 5.6, NOTE), which
		// time.Parse does not.
		t, err = time.Parse(time.RFC3339Nano, strings.Map(func(r rune) rune {
			switch r {
			case 't':
				return 'T'
			case 'z':
				return 'Z'
			}
			return r
		}, s))
	}
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// ReadBody reads the whole request body up to limit bytes. A larger body is
// an ETOOLARGE error; a failed read is EINVALID.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	return ReadBodyInto(r, limit, nil)
}

// ReadBodyInto is ReadBody reading into buf's storage (which callers may
// pool): it returns buf[:0] with the body appended, grown only when needed.
// With a known Content-Length it reads with at most one allocation.
func ReadBodyInto(r *http.Request, limit int64, buf []byte) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	buf = buf[:0]
	if r.ContentLength > limit {
		return buf, tooLarge(limit)
	}
	if r.ContentLength >= int64(cap(buf)) {
		buf = make([]byte, 0, r.ContentLength+1) // +1: room to see the EOF
	} else if cap(buf) == 0 {
		buf = make([]byte, 0, 512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		room := buf[len(buf):min(int64(cap(buf)), limit+1)]
		n, err := r.Body.Read(room)
		buf = buf[:len(buf)+n]
		switch {
		case int64(len(buf)) > limit:
			return buf, tooLarge(limit)
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf, sessiond.Errorf(sessiond.EINVALID, "reading the request body: %v", err)
		}
	}
}

func tooLarge(limit int64) error {
	return &sessiond.Error{Code: sessiond.ETOOLARGE, Message: "request body is larger than " + strconv.FormatInt(limit, 10) + " bytes",
		Details: map[string]any{"limit": limit}}
}

// CheckDepth returns an EINVALID error if the JSON text nests deeper than
// MaxJSONDepth. It assumes nothing about validity; it only counts brackets
// outside strings.
func CheckDepth(b []byte) error {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			if depth > MaxJSONDepth {
				return sessiond.Errorf(sessiond.EINVALID, "JSON nests deeper than %d levels", MaxJSONDepth)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}

// DecodeError turns a JSON decoding error into a clear EINVALID error.
func DecodeError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return sessiond.Errorf(sessiond.EINVALID, "invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return sessiond.Errorf(sessiond.EINVALID, "expected a JSON %s, got %s", te.Type.Kind(), te.Value)
		}
		return sessiond.Errorf(sessiond.EINVALID, "%s: expected %s, got %s", field, te.Type.Kind(), te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return sessiond.Errorf(sessiond.EINVALID, "invalid JSON: unexpected end of input")
	default:
		return sessiond.Errorf(sessiond.EINVALID, "invalid JSON: %v", err)
	}
}

// CorrelationID returns the request's correlation id: the correlation_id
// query parameter, else the correlation_id or X-Correlation-Id header,
// the first that is a valid id (ValidCorrelationID). Behind Middleware
// every request has one: Middleware generates one when the client sent
// none.
func CorrelationID(r *http.Request) string {
	if r.URL.RawQuery != "" {
		if v := r.URL.Query().Get("correlation_id"); ValidCorrelationID(v) {
			return v
		}
	}
	// The canonical names, read from the map: Header.Get would
	// canonicalize "correlation_id" into a new string on every request.
	if v := HeaderValue(r.Header, "Correlation_id"); ValidCorrelationID(v) {
		return v
	}
	if v := HeaderValue(r.Header, CorrelationHeader); ValidCorrelationID(v) {
		return v
	}
	return ""
}

// headerValue is h.Get(name) for a name already in canonical form.
func HeaderValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// CorrelationHeader is the header that carries a correlation id, in
// requests and in every response.
const CorrelationHeader = "X-Correlation-Id"

// MaxCorrelationID is the longest correlation id kept from a client.
const MaxCorrelationID = 128

// ValidCorrelationID reports whether a client's correlation id is kept:
// 1 to MaxCorrelationID printable ASCII characters (spaces included, as
// Pip.Services clients may send them). Others are replaced, so that no id
// can forge a log line or bloat every one.
func ValidCorrelationID(id string) bool {
	if id == "" || len(id) > MaxCorrelationID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// correlate makes sure r has a correlation id, generating one (16 random
// hex digits) when the client sent no valid one, and returns it as a
// header value. The generated id is set as r's X-Correlation-Id, so that
// CorrelationID (and error bodies) and the gateway's upstreams see it.
func correlate(r *http.Request) []string {
	if id := CorrelationID(r); id != "" {
		if v := r.Header[CorrelationHeader]; len(v) == 1 && v[0] == id {
			return v
		}
		return []string{id}
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	var b [16]byte
	const digits = "0123456789abcdef"
	n := mrand.Uint64()
	for i := range b {
		b[i] = digits[n>>(4*i)&15]
	}
	v := []string{string(b[:])}
	r.Header[CorrelationHeader] = v
	return v
}

// bufPool and appendPool keep the buffers responses are encoded in, up to
// maxPooledBuffer bytes each, so that a response of the usual size is
// encoded without allocating (ResponseWriter.Write does not keep its
// argument).
var (
	bufPool    = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	appendPool = sync.Pool{New: func() any { return new([]byte) }}
)

const maxPooledBuffer = 64 << 10

// WriteJSON writes v as JSON with the given status and content type
// (application/json when empty).
func WriteJSON(w http.ResponseWriter, status int, contentType string, v any) {
	if a, ok := v.(JSONAppender); ok {
		bp := appendPool.Get().(*[]byte)
		b := append(a.AppendJSON((*bp)[:0]), '\n')
		WriteRaw(w, status, contentType, b)
		if cap(b) <= maxPooledBuffer {
			*bp = b
		}
		appendPool.Put(bp)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		buf.Reset()
		buf.WriteString(`{"message":"Internal error"}` + "\n")
		status = http.StatusInternalServerError
	}
	WriteRaw(w, status, contentType, buf.Bytes())
	if buf.Cap() <= maxPooledBuffer {
		bufPool.Put(buf)
	}
}

// WriteRaw writes an already encoded JSON body.
func WriteRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	if contentType == "" {
		contentType = "application/json"
	}
	h := w.Header()
	vals := []string{contentType, strconv.Itoa(len(body))} // one allocation for both
	h["Content-Type"] = vals[0:1:1]
	h["Content-Length"] = vals[1:2:2]
	w.WriteHeader(status)
	w.Write(body)
}

type ctxKey int

const loggerKey ctxKey = 0

// WithLogger returns ctx carrying log.
func WithLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey, log)
}

// Logger returns the request logger carried by ctx, or slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// LogError logs an error once, at the edge that answers it: internal
// errors at Error level with their cause, others at Debug.
func LogError(r *http.Request, err error) {
	log := Logger(r.Context())
	if sessiond.ErrorCode(err) == sessiond.EINTERNAL {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "correlation_id", CorrelationID(r), "err", err)
		return
	}
	if log.Enabled(r.Context(), slog.LevelDebug) {
		log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "correlation_id", CorrelationID(r), "err", err)
	}
}

// Middleware is Wrap with only a logger: correlation ids, recovery, and
// request lines at Debug level.
func Middleware(log *slog.Logger, next http.Handler) http.Handler {
	return Wrap(next, Options{Log: log})
}

// Options configure Wrap.
type Options struct {
	// Log receives the access log and panics; nil discards them.
	Log *slog.Logger
	// API names the API that answers r: the api attribute of the access
	// log and the api Observe is told. Nil: "".
	API func(r *http.Request) string
	// AccessLog, when it holds true, logs one line per request at Info
	// level (it may be switched at run time). Otherwise a line per request
	// is logged only when Log is at Debug level.
	AccessLog *atomic.Bool
	// Observe, when set, is told of every request answered: its API, the
	// status and the time from its headers read to its handler's return.
	Observe func(api string, status int, d time.Duration)
	// Client, when set, tells the client address the access log shows
	// besides the direct peer (remote): behind trusted proxies, the
	// address they forwarded for.
	Client func(r *http.Request) string
}

// Wrap is the one place every request of every listener passes. It gives
// each request a correlation id (CorrelationID: the client's, or a
// generated one), returned in the X-Correlation-Id response header;
// recovers panics into a 500; tells o.Observe (metrics) of each request;
// and writes the access log: one line per request (AccessLog), with its
// API, method, path, query without secrets (RedactQuery), status,
// duration, bytes written, correlation id, remote address and client. Per-request
// lines cost throughput (docs/operations.md, "Access log"), so they are
// off unless asked for, or at Debug level.
//
// It puts the logger in the request's context unless the server already
// did once for all requests (BaseContext), which saves a copy of every
// request. A Wrap inside another (the admin handler has its own) passes
// requests straight through: the outer one did all of it.
func Wrap(next http.Handler, o Options) http.Handler {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Durations are read as time.Since(base): the monotonic clock alone,
	// half the cost of time.Now.
	base := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, inner := w.(*statusWriter); inner {
			next.ServeHTTP(w, r)
			return
		}
		id := correlate(r)
		w.Header()[CorrelationHeader] = id
		if _, ok := r.Context().Value(loggerKey).(*slog.Logger); !ok {
			r = r.WithContext(WithLogger(r.Context(), log))
		}
		level := slog.LevelInfo
		logged := o.AccessLog != nil && o.AccessLog.Load()
		if !logged && log.Enabled(r.Context(), slog.LevelDebug) {
			level, logged = slog.LevelDebug, true
		}
		if !logged && o.Observe == nil {
			serve(log, next, w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, start: time.Since(base)}
		// Deferred, so that a request whose handler aborts (panics with
		// http.ErrAbortHandler, as the gateway does when an upstream
		// breaks off) is still counted and logged.
		defer func() {
			d := time.Since(base) - sw.start
			status := sw.status
			if status == 0 {
				status = http.StatusOK // nothing written: the server answers 200
			}
			api := ""
			if o.API != nil {
				api = o.API(r)
			}
			if o.Observe != nil {
				o.Observe(api, status, d)
			}
			if logged {
				accessLog(r.Context(), log, level, r, o.Client, api, status, d, sw.bytes, id[0])
			}
		}()
		serve(log, next, sw, r)
	})
}

// serve calls next, recovering a panic into a 500 (http.ErrAbortHandler
// goes on: it means the response is to be cut off).
func serve(log *slog.Logger, next http.Handler, w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.Error("panic serving request", "method", r.Method, "path", Clip(r.URL.Path, maxLoggedPath), "correlation_id", CorrelationID(r), "panic", v)
			http.Error(w, `{"message":"Internal error"}`, http.StatusInternalServerError)
		}
	}()
	next.ServeHTTP(w, r)
}

// maxLoggedPath and maxLoggedQuery bound what a log line quotes of a
// client's path and query.
const (
	maxLoggedPath  = 256
	maxLoggedQuery = 256
)

// accessLog writes the line of one request. The path is the URL path
// (never carrying a secret: tokens travel in headers and bodies), the
// query has the values of credential-like parameters replaced
// (RedactQuery), and no header or body is logged.
func accessLog(ctx context.Context, log *slog.Logger, level slog.Level, r *http.Request, client func(*http.Request) string,
	api string, status int, d time.Duration, bytes int64, id string) {
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs, slog.String("api", api), slog.String("method", Clip(r.Method, 16)),
		slog.String("path", Clip(r.URL.Path, maxLoggedPath)))
	if r.URL.RawQuery != "" {
		attrs = append(attrs, slog.String("query", Clip(RedactQuery(r.URL.RawQuery), maxLoggedQuery)))
	}
	attrs = append(attrs, slog.Int("status", status), slog.Duration("duration", d), slog.Int64("bytes", bytes),
		slog.String("correlation_id", id), slog.String("remote", r.RemoteAddr))
	if client != nil {
		attrs = append(attrs, slog.String("client", client(r)))
	}
	log.LogAttrs(ctx, level, "request", attrs...)
}

// RedactQuery returns the raw query q with the value of every parameter
// whose name looks like it carries a credential (it holds "token",
// "secret", "passw", "key", "auth", "sig", "credential" or "cookie", in
// any case and escaping) replaced by "REDACTED". Other parameters are
// kept as sent.
func RedactQuery(q string) string {
	var b strings.Builder
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(part, "=")
		if hasValue && sensitiveParam(name) {
			b.WriteString(name)
			b.WriteString("=REDACTED")
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

func sensitiveParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	name = strings.ToLower(name)
	for _, s := range []string{"token", "secret", "passw", "key", "auth", "sig", "credential", "cookie"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// BaseContext returns an http.Server BaseContext that carries log into
// every request's context, once per listener rather than once per request.
func BaseContext(log *slog.Logger) func(net.Listener) context.Context {
	ctx := WithLogger(context.Background(), log)
	return func(net.Listener) context.Context { return ctx }
}

// statusWriter records the status and the body bytes of a response.
// Unwrap lets http.ResponseController reach the server's writer (to
// flush, hijack, set deadlines), and ReadFrom keeps the server's sendfile
// path for files.
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until a final status is written
	bytes  int64
	start  time.Duration // since Wrap's base
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(onlyWriter{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// onlyWriter hides every method but Write (so io.Copy does not loop back
// into ReadFrom).
type onlyWriter struct{ io.Writer }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Clip shortens s to at most n bytes, on a rune boundary, marking a cut
// with "...", and replaces invalid UTF-8 with U+FFFD: a client's text made
// safe to quote in a message or a log line.
func Clip(s string, n int) string {
	if len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
