package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sessiond"
	"sessiond/internal/httpx"
	"sessiond/internal/wire"
)

// method is one Session API method: its params, in positional order, and
// its implementation, which returns the JSON text of its result.
type method struct {
	name   string
	params []string
	// p is passed by value: a pointer would escape through this indirect
	// call and cost an allocation per request.
	call func(h *handler, ctx context.Context, r *http.Request, c *sessiond.Caller, p params) ([]byte, error)
}

// maxParams is the most params any method takes.
const maxParams = 4

var methods = map[string]*method{
	"session.open_session":         {params: []string{"expires_in", "user_id", "user_name", "data"}, call: (*handler).openSession},
	"session.verify_session_token": {params: []string{"token"}, call: (*handler).verifySessionToken},
	"session.close_session":        {params: []string{"token"}, call: (*handler).closeSession},
	"session.get_session":          {params: []string{"token"}, call: (*handler).getSession},
	"session.store_session_data":   {params: []string{"token", "data"}, call: (*handler).storeSessionData},
}

func init() {
	for name, m := range methods {
		m.name = name
	}
}

// lookup returns the name of the raw JSON string method and its method,
// nil if there is none.
func lookup(raw []byte) (string, *method) {
	if len(raw) >= 2 {
		if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 {
			if m := methods[string(inner)]; m != nil { // no allocation
				return m.name, m
			}
		}
	}
	name := decodeString(raw)
	return name, methods[name]
}

// Pre-encoded results.
var (
	resultActive   = []byte(`{"active":true}`)
	resultInactive = []byte(`{"active":false}`)
	resultTrue     = []byte(`true`)
)

// openResult is the result of session.open_session.
type openResult struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	SessionID   string `json:"session_id"`
}

func (h *handler) openSession(ctx context.Context, r *http.Request, c *sessiond.Caller, p params) ([]byte, error) {
	cfg := h.svc.Config()
	expiresIn, e := p.seconds(0, cfg.DefaultExpiresIn, cfg.MaxExpiresIn)
	if e != nil {
		return nil, e
	}
	userID, e := p.str(1, false)
	if e != nil {
		return nil, e
	}
	userName, e := p.str(2, false)
	if e != nil {
		return nil, e
	}
	data, e := p.json(3, false)
	if e != nil {
		return nil, e
	}
	sess, token, err := h.svc.Open(ctx, sessiond.OpenRequest{
		UserID:    userID,
		UserName:  userName,
		Address:   h.clients.Client(r),
		Client:    clientName(r),
		Data:      data,
		ExpiresIn: expiresIn,
		APIKeyID:  c.APIKeyID,
	})
	if err != nil {
		return nil, err
	}
	if log := httpx.Logger(ctx); log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("session api: session opened", "session_id", sess.ID, "api_key_id", c.APIKeyID)
	}
	return json.Marshal(openResult{AccessToken: token, ExpiresIn: wire.Seconds(sess.ExpireTime.Sub(sess.OpenTime)), SessionID: sess.ID})
}

func (h *handler) verifySessionToken(ctx context.Context, r *http.Request, c *sessiond.Caller, p params) ([]byte, error) {
	token, e := p.str(0, true)
	if e != nil {
		return nil, e
	}
	ok, err := h.svc.VerifyToken(ctx, c, token)
	switch {
	case err != nil:
		return nil, err
	case ok:
		return resultActive, nil
	default:
		return resultInactive, nil
	}
}

func (h *handler) closeSession(ctx context.Context, r *http.Request, c *sessiond.Caller, p params) ([]byte, error) {
	token, e := p.str(0, true)
	if e != nil {
		return nil, e
	}
	if err := h.svc.CloseByToken(ctx, c, token); err != nil {
		return nil, err
	}
	return resultTrue, nil
}

func (h *handler) getSession(ctx context.Context, r *http.Request, c *sessiond.Caller, p params) ([]byte, error) {
	token, e := p.str(0, true)
	if e != nil {
		return nil, e
	}
	sess, err := h.svc.SessionByToken(ctx, c, token)
	if err != nil {
		return nil, err
	}
	return json.Marshal(wire.NewSessionV1(sess))
}

func (h *handler) storeSessionData(ctx context.Context, r *http.Request, c *sessiond.Caller, p params) ([]byte, error) {
	token, e := p.str(0, true)
	if e != nil {
		return nil, e
	}
	data, e := p.json(1, true)
	if e != nil {
		return nil, e
	}
	sess, err := h.svc.StoreDataByToken(ctx, c, token, data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(wire.NewSessionV1(sess))
}

// maxClientLen bounds the client name taken from User-Agent.
const maxClientLen = 200

// clientName names the client application: its User-Agent, cut to
// maxClientLen bytes of valid UTF-8.
func clientName(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > maxClientLen {
		ua = ua[:maxClientLen]
		for len(ua) > 0 && !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1]
		}
	}
	return strings.ToValidUTF8(ua, "\uFFFD")
}

// params are a request's params bound to a method's names; vals[i] is the
// raw value of names[i], nil when absent.
type params struct {
	names []string
	vals  [maxParams][]byte
}

// bind binds raw params (an object, an array or nil) to names. Unknown
// names, repeated names and surplus positions are errors.
func bind(raw []byte, method string, names []string) (params, *Error) {
	p := params{names: names}
	if raw == nil {
		return p, nil
	}
	if raw[0] == '[' {
		n := 0
		for it := newIter(raw); it.next(); n++ {
			if n < len(names) {
				p.vals[n] = it.val
			}
		}
		if n > len(names) {
			return p, paramsError(fmt.Sprintf("%s takes at most %d params (%s), got %d",
				method, len(names), strings.Join(names, ", "), n))
		}
		return p, nil
	}
	for it := newIter(raw); it.next(); {
		i := p.index(it.key)
		if i < 0 {
			name := decodeString(it.key)
			return p, &Error{Code: CodeInvalidParams,
				Message: fmt.Sprintf("Invalid params: %s is not a param of %s, which takes %s", quote(name), method, strings.Join(names, ", ")),
				Data:    map[string]any{"param": name}}
		}
		if p.vals[i] != nil {
			return p, paramError(names[i], "is given more than once")
		}
		p.vals[i] = it.val
	}
	return p, nil
}

func (p *params) index(key []byte) int {
	for i, n := range p.names {
		if stringIs(key, n) {
			return i
		}
	}
	return -1
}

// str returns param i as a string. An optional string may be absent or
// null (""); a required one must be a non-empty string.
func (p *params) str(i int, required bool) (string, *Error) {
	v, name := p.vals[i], p.names[i]
	switch {
	case v == nil && required:
		return "", paramError(name, "is required")
	case v == nil, !required && isNull(v):
		return "", nil
	case !isString(v):
		return "", paramError(name, "must be a string, not "+httpx.JSONKind(v))
	}
	s := decodeString(v)
	if required && s == "" {
		return "", paramError(name, "must not be empty")
	}
	return s, nil
}

// seconds returns param i, a whole number of seconds greater than 0, as a
// duration cut to max; absent or null gives def.
func (p *params) seconds(i int, def, max time.Duration) (time.Duration, *Error) {
	v, name := p.vals[i], p.names[i]
	if v == nil || isNull(v) {
		return min(def, max), nil
	}
	if c := first(v); c != '-' && (c < '0' || c > '9') {
		return 0, paramError(name, "must be a number of seconds, not "+httpx.JSONKind(v))
	}
	// json.Valid accepted the syntax; the only error left is range, where
	// f is ±Inf or 0, which the checks below handle.
	f, _ := strconv.ParseFloat(string(v), 64)
	switch {
	case f <= 0:
		return 0, paramError(name, "must be greater than 0")
	case f >= max.Seconds(): // also +Inf
		return max, nil
	case f != math.Trunc(f):
		return 0, paramError(name, "must be a whole number of seconds")
	}
	return time.Duration(f) * time.Second, nil
}

// json returns param i, any JSON value, compacted into its own memory; nil
// for null. A required one must be present (null is allowed).
func (p *params) json(i int, required bool) (json.RawMessage, *Error) {
	v, name := p.vals[i], p.names[i]
	if v == nil {
		if required {
			return nil, paramError(name, "is required (null clears it)")
		}
		return nil, nil
	}
	if isNull(v) {
		return nil, nil
	}
	var b bytes.Buffer
	b.Grow(len(v))
	if err := json.Compact(&b, v); err != nil { // cannot happen: the body is valid
		return nil, paramError(name, "is not valid JSON")
	}
	return b.Bytes(), nil
}
