// Package commandable serves the Pip.Services commandable HTTP API of the
// sessions service (SPEC section 3): POST /v1/sessions/<command> with a
// JSON object of parameters, answered with a SessionV1, a page of them, no
// content, or a Pip.Services ErrorDescription. It must keep working with
// that ecosystem's existing clients, so it is lenient about parameter
// types ("skip": "20") and strict about everything else.
package commandable

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"sessiond"
	"sessiond/internal/httpx"
	"sessiond/internal/piperr"
	"sessiond/internal/wire"
)

// Prefix is the path under which the commands are served. The handler
// matches full paths: mount it at Prefix without stripping it.
const Prefix = "/v1/sessions/"

// Options configure the API.
type Options struct {
	// BodyLimit is the largest accepted request body in bytes; larger ones
	// get 413. 0 means httpx.DefaultBodyLimit.
	BodyLimit int64
}

type handler struct {
	svc   *sessiond.Service
	limit int64
}

// command runs one command on its raw parameters. A nil result with a nil
// error is answered with 204 No Content.
type command func(h *handler, ctx context.Context, body []byte) (any, error)

// New returns the handler of the commandable API over svc.
func New(svc *sessiond.Service, opts Options) http.Handler {
	h := &handler{svc: svc, limit: opts.BodyLimit}
	if h.limit <= 0 {
		h.limit = httpx.DefaultBodyLimit
	}
	// Routed by hand rather than by a ServeMux, which would answer a path
	// holding "//", "." or ".." with a redirect: every path gets this
	// dialect's answer, and every method the command's (a 405 for all but
	// POST).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok || name == "" || strings.Contains(name, "/") {
			piperr.NoRoute(w, r)
			return
		}
		h.serveCommand(w, r, name)
	})
}

// lookup returns the command with the given name, or nil.
func lookup(name string) command {
	switch name {
	case "get_session_by_id":
		return (*handler).getSessionByID
	case "get_sessions":
		return (*handler).getSessions
	case "open_session":
		return (*handler).openSession
	case "store_session_data":
		return (*handler).storeSessionData
	case "update_session_user":
		return (*handler).updateSessionUser
	case "close_session":
		return (*handler).closeSession
	case "close_expired_sessions":
		return (*handler).closeExpiredSessions
	case "delete_session_by_id":
		return (*handler).deleteSessionByID
	}
	return nil
}

func (h *handler) serveCommand(w http.ResponseWriter, r *http.Request, name string) {
	cmd := lookup(name)
	if cmd == nil {
		name = piperr.Clip(name)
		piperr.Write(w, r, &piperr.Error{Code: piperr.CodeUnknownCommand, Err: &sessiond.Error{
			Code: sessiond.ENOTFOUND, Message: "unknown command " + name, Details: map[string]any{"command": name}}})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		piperr.Write(w, r, piperr.MethodNotAllowed(r.Method))
		return
	}
	body, err := httpx.ReadBody(r, h.limit)
	if err != nil {
		piperr.Write(w, r, err)
		return
	}
	result, err := cmd(h, r.Context(), body)
	switch {
	case err != nil:
		piperr.Write(w, r, err)
	case result == nil:
		w.WriteHeader(http.StatusNoContent)
	case isStream(result):
		result.(*pageStream).stream(w, r)
	default:
		httpx.WriteJSON(w, http.StatusOK, "", result)
	}
}

func isStream(v any) bool { _, ok := v.(*pageStream); return ok }

// ---- parameters ----

type sessionIDParams struct {
	SessionID string `json:"session_id"`
}

// requireID refuses an absent, null or empty session id.
func requireID(id string) (string, error) {
	if id == "" {
		return "", piperr.Invalid(piperr.CodeMissingParameter, "session_id", "session_id is required")
	}
	return id, nil
}

// decodeID decodes parameters that are only a session id.
func decodeID(body []byte) (string, error) {
	if id, ok := fastID(body); ok {
		return id, nil
	}
	var p sessionIDParams
	if err := piperr.DecodeObject(body, &p); err != nil {
		return "", err
	}
	return requireID(p.SessionID)
}

// fastID reads the body every client sends to get_session_by_id,
// close_session and delete_session_by_id, {"session_id":"<id>"}, without
// the general decoder: get_session_by_id is the hottest command. It takes
// only that exact shape (whitespace allowed between tokens) with a
// non-empty id of printable ASCII other than '"' and '\'; for anything
// else ok is false and the general decoder, which gives the same answer
// for what fastID takes, reads the body.
func fastID(b []byte) (id string, ok bool) {
	const key = `"session_id"`
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i = skipSpace(b, i+1)
	if len(b)-i < len(key) || string(b[i:i+len(key)]) != key {
		return "", false
	}
	i = skipSpace(b, i+len(key))
	if i >= len(b) || b[i] != ':' {
		return "", false
	}
	i = skipSpace(b, i+1)
	if i >= len(b) || b[i] != '"' {
		return "", false
	}
	start := i + 1
	for i = start; i < len(b) && b[i] != '"'; i++ {
		if c := b[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return "", false
		}
	}
	if i >= len(b) || i == start {
		return "", false
	}
	end := i
	i = skipSpace(b, i+1)
	if i >= len(b) || b[i] != '}' {
		return "", false
	}
	if skipSpace(b, i+1) != len(b) {
		return "", false
	}
	return string(b[start:end]), true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// filterParams are the keys of get_sessions' filter that sessiond knows;
// others are ignored, as Pip.Services services do.
type filterParams struct {
	UserID   string  `json:"user_id"`
	Active   optBool `json:"active"`
	Address  string  `json:"address"`
	Client   string  `json:"client"`
	Search   string  `json:"search"`
	FromTime optTime `json:"from_time"`
	ToTime   optTime `json:"to_time"`
}

type pagingParams struct {
	Skip  optInt  `json:"skip"`
	Take  optInt  `json:"take"`
	Total optBool `json:"total"`
}

type getSessionsParams struct {
	Filter filterParams `json:"filter"`
	Paging pagingParams `json:"paging"`
}

type openParams struct {
	UserID    string          `json:"user_id"`
	UserName  string          `json:"user_name"`
	Address   string          `json:"address"`
	Client    string          `json:"client"`
	User      json.RawMessage `json:"user"`
	Data      json.RawMessage `json:"data"`
	ExpiresIn optInt          `json:"expires_in"` // seconds
}

// The session id is not embedded as sessionIDParams: encoding/json would
// name it "sessionIDParams.session_id" in type errors.
type storeDataParams struct {
	SessionID string          `json:"session_id"`
	Data      json.RawMessage `json:"data"`
}

type updateUserParams struct {
	SessionID string          `json:"session_id"`
	User      json.RawMessage `json:"user"`
}

// ---- results ----

// openResult is a SessionV1 with the session token, shown this once.
type openResult struct {
	*wire.SessionV1
	AccessToken string `json:"access_token"`
}

// AppendJSON writes the session document with access_token added. It (and
// MarshalJSON) must be defined here: the embedded SessionV1's would
// otherwise be promoted and drop the token.
func (o *openResult) AppendJSON(b []byte) []byte {
	b = o.SessionV1.AppendJSON(b)
	b = append(b[:len(b)-1], `,"access_token":`...)
	b = httpx.AppendString(b, o.AccessToken)
	return append(b, '}')
}

func (o *openResult) MarshalJSON() ([]byte, error) { return o.AppendJSON(nil), nil }

// ---- commands ----

func (h *handler) getSessionByID(ctx context.Context, body []byte) (any, error) {
	id, err := decodeID(body)
	if err != nil {
		return nil, err
	}
	sess, err := h.svc.Get(ctx, id)
	if sessiond.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return wire.NewSessionV1(sess), nil
}

func (h *handler) getSessions(ctx context.Context, body []byte) (any, error) {
	var p getSessionsParams
	if err := piperr.DecodeObject(body, &p); err != nil {
		return nil, err
	}
	if p.Paging.Skip.V < 0 {
		return nil, piperr.Invalid(piperr.CodeInvalidParameter, "paging.skip", "paging.skip must not be negative")
	}
	if p.Paging.Take.V < 0 {
		return nil, piperr.Invalid(piperr.CodeInvalidParameter, "paging.take", "paging.take must not be negative")
	}
	f := sessiond.Filter{
		UserID:   p.Filter.UserID,
		Address:  p.Filter.Address,
		Client:   p.Filter.Client,
		Search:   p.Filter.Search,
		FromTime: p.Filter.FromTime.V,
		ToTime:   p.Filter.ToTime.V,
	}
	if p.Filter.Active.Set {
		f.Active = &p.Filter.Active.V
	}
	// take 0 means the default; a take beyond the maximum is cut to it.
	// Both are the Service's rules, so only the int conversion is bounded
	// here.
	paging := sessiond.Paging{
		Skip:  clampInt(p.Paging.Skip.V),
		Take:  clampInt(p.Paging.Take.V),
		Total: p.Paging.Total.V,
	}
	return &pageStream{svc: h.svc, f: f, p: paging}, nil
}

// pageStream answers get_sessions: a page of up to MaxTake sessions, each
// of which may hold the data limit, read in chunks and written out chunk
// by chunk (httpx.Stream), so that the page never sits whole in memory.
type pageStream struct {
	svc *sessiond.Service
	f   sessiond.Filter
	p   sessiond.Paging
}

// stream writes the page, or the error that stopped it.
func (ps *pageStream) stream(w http.ResponseWriter, r *http.Request) {
	out := httpx.NewStream(w, http.StatusOK, "")
	head, n := false, 0
	err := ps.svc.ListChunks(r.Context(), ps.f, ps.p, func(page *sessiond.Page) error {
		if !head {
			head = true
			out.Append(func(b []byte) []byte {
				b = append(b, `{"total":`...)
				if page.Total == nil {
					b = append(b, "null"...)
				} else {
					b = strconv.AppendInt(b, *page.Total, 10)
				}
				return append(b, `,"data":[`...)
			})
		}
		for _, s := range page.Data {
			out.Append(func(b []byte) []byte {
				if n++; n > 1 {
					b = append(b, ',')
				}
				return wire.NewSessionV1(s).AppendJSON(b)
			})
		}
		return nil
	})
	if err != nil {
		out.Abort() // panics if part of the page went out
		piperr.Write(w, r, err)
		return
	}
	out.Append(func(b []byte) []byte { return append(b, "]}\n"...) })
	out.Close()
}

func (h *handler) openSession(ctx context.Context, body []byte) (any, error) {
	var p openParams
	if err := piperr.DecodeObject(body, &p); err != nil {
		return nil, err
	}
	if p.ExpiresIn.V < 0 {
		return nil, piperr.Invalid(piperr.CodeInvalidParameter, "expires_in", "expires_in must not be negative")
	}
	// The address is the one given: the caller is an application server
	// opening a session for its end user, whose address it knows and we
	// do not.
	sess, token, err := h.svc.Open(ctx, sessiond.OpenRequest{
		UserID:    p.UserID,
		UserName:  p.UserName,
		Address:   p.Address,
		Client:    p.Client,
		User:      p.User,
		Data:      p.Data,
		ExpiresIn: seconds(p.ExpiresIn.V),
	})
	if err != nil {
		return nil, err
	}
	return &openResult{SessionV1: wire.NewSessionV1(sess), AccessToken: token}, nil
}

func (h *handler) storeSessionData(ctx context.Context, body []byte) (any, error) {
	var p storeDataParams
	if err := piperr.DecodeObject(body, &p); err != nil {
		return nil, err
	}
	id, err := requireID(p.SessionID)
	if err != nil {
		return nil, err
	}
	sess, err := h.svc.StoreData(ctx, id, p.Data)
	if err != nil {
		return nil, err
	}
	return wire.NewSessionV1(sess), nil
}

func (h *handler) updateSessionUser(ctx context.Context, body []byte) (any, error) {
	var p updateUserParams
	if err := piperr.DecodeObject(body, &p); err != nil {
		return nil, err
	}
	id, err := requireID(p.SessionID)
	if err != nil {
		return nil, err
	}
	sess, err := h.svc.UpdateUser(ctx, id, p.User)
	if err != nil {
		return nil, err
	}
	return wire.NewSessionV1(sess), nil
}

func (h *handler) closeSession(ctx context.Context, body []byte) (any, error) {
	id, err := decodeID(body)
	if err != nil {
		return nil, err
	}
	sess, err := h.svc.CloseSession(ctx, id, sessiond.ReasonClosed)
	if sessiond.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return wire.NewSessionV1(sess), nil
}

func (h *handler) closeExpiredSessions(ctx context.Context, body []byte) (any, error) {
	// No parameters, but the body must still be a JSON object (or empty).
	var p struct{}
	if err := piperr.DecodeObject(body, &p); err != nil {
		return nil, err
	}
	return nil, h.svc.CloseExpired(ctx)
}

func (h *handler) deleteSessionByID(ctx context.Context, body []byte) (any, error) {
	id, err := decodeID(body)
	if err != nil {
		return nil, err
	}
	sess, err := h.svc.Delete(ctx, id)
	if sessiond.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return wire.NewSessionV1(sess), nil
}

// clampInt converts a non-negative int64 to int without overflow.
func clampInt(v int64) int {
	const maxInt = int64(^uint(0) >> 1)
	if v > maxInt {
		return int(maxInt)
	}
	return int(v)
}
