// Package rest serves the older resource-style REST API of the sessions
// service (SPEC section 4):
//
//	GET    /sessions/{user_id}[?session_id=]   the user's open sessions, or one
//	POST   /sessions                           open a session (201)
//	POST   /sessions/{user_id}?session_id=     store data into it (204)
//	DELETE /sessions/{user_id}[?session_id=]   close it, or all matching (204)
//
// Its session document has its own names ({id, opened, last_request,
// address, client, user, data}); errors are Pip.Services ErrorDescriptions
// like those of the commandable API, the same ecosystem's newer protocol.
package rest

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"sessiond"
	"sessiond/internal/httpx"
	"sessiond/internal/piperr"
)

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

// New returns the handler of the REST API over svc. It matches full paths
// (/sessions, /sessions/{user_id}): mount it at /sessions and /sessions/
// without stripping the prefix.
func New(svc *sessiond.Service, opts Options) http.Handler {
	h := &handler{svc: svc, limit: opts.BodyLimit}
	if h.limit <= 0 {
		h.limit = httpx.DefaultBodyLimit
	}
	notAllowedAll := piperr.MethodNotAllowedHandler("POST")
	notAllowedUser := piperr.MethodNotAllowedHandler("GET, HEAD, POST, DELETE")
	// Routed by hand rather than by a ServeMux, which would answer a path
	// holding "//", "." or ".." with a redirect: every path gets this
	// dialect's answer. The user_id is one escaped path segment, unescaped.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if p == "/sessions" {
			if r.Method != http.MethodPost {
				notAllowedAll(w, r)
				return
			}
			h.open(w, r)
			return
		}
		seg, ok := strings.CutPrefix(p, "/sessions/")
		if !ok || seg == "" || strings.Contains(seg, "/") {
			piperr.NoRoute(w, r)
			return
		}
		userID, err := url.PathUnescape(seg)
		if err != nil {
			piperr.NoRoute(w, r)
			return
		}
		r.SetPathValue("user_id", userID)
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.get(w, r)
		case http.MethodPost:
			h.storeData(w, r)
		case http.MethodDelete:
			h.close(w, r)
		default:
			notAllowedUser(w, r)
		}
	})
}

// ---- documents ----

// sessionDoc is the session document of this protocol.
type sessionDoc struct {
	ID          string          `json:"id"`
	Opened      httpx.Time      `json:"opened"`
	LastRequest httpx.Time      `json:"last_request"`
	Address     string          `json:"address"`
	Client      string          `json:"client"`
	User        json.RawMessage `json:"user"`
	Data        json.RawMessage `json:"data"`
}

var null = json.RawMessage("null")

func newSessionDoc(s *sessiond.Session) sessionDoc {
	d := sessionDoc{
		ID:          s.ID,
		Opened:      httpx.Time(s.OpenTime),
		LastRequest: httpx.Time(s.RequestTime),
		Address:     s.Address,
		Client:      s.Client,
		User:        s.User,
		Data:        s.Data,
	}
	if d.User == nil {
		d.User = null
	}
	if d.Data == nil {
		d.Data = null
	}
	return d
}

// openedDoc is the answer to POST /sessions: the session and its token,
// shown this once.
type openedDoc struct {
	sessionDoc
	AccessToken string `json:"access_token"`
}

// ---- request parts ----

// request holds what every route reads from the URL.
type request struct {
	userID    string
	sessionID string // "" when absent
	hasID     bool   // session_id was given
	query     url.Values
}

// parseRequest reads the path's user_id and the query. A query that does
// not parse, or a value that is not UTF-8, is refused rather than ignored:
// a DELETE must never close more than was asked for because its
// session_id was lost.
func parseRequest(r *http.Request) (*request, error) {
	req := &request{userID: r.PathValue("user_id")}
	if !utf8.ValidString(req.userID) {
		return nil, piperr.Invalid(piperr.CodeInvalidParameter, "user_id", "user_id is not valid UTF-8")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, piperr.Invalid(piperr.CodeInvalidParameter, "query", "invalid query string: "+err.Error())
	}
	for k, vs := range q {
		for _, v := range vs {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, piperr.Invalid(piperr.CodeInvalidParameter, "query", "query string is not valid UTF-8")
			}
		}
	}
	req.query = q
	if vs, ok := q["session_id"]; ok {
		if len(vs) != 1 || vs[0] == "" {
			return nil, piperr.Invalid(piperr.CodeInvalidParameter, "session_id", "session_id must be given once and not be empty")
		}
		req.sessionID, req.hasID = vs[0], true
	}
	return req, nil
}

// owned returns the session if it exists and belongs to userID. A session
// of another user is "not found", exactly like an unknown one.
func (h *handler) owned(ctx context.Context, userID, sessionID string) (*sessiond.Session, error) {
	sess, err := h.svc.Get(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if sess.UserID != userID {
		return nil, notFound(sessionID)
	}
	return sess, nil
}

func notFound(sessionID string) error {
	sessionID = piperr.Clip(sessionID)
	return &sessiond.Error{Code: sessiond.ENOTFOUND, Message: "session " + sessionID + " not found",
		Details: map[string]any{"session_id": sessionID}}
}

// aliveSessions returns every alive session of the user matching address
// and client ("" matches any), reading the store page by page.
func (h *handler) aliveSessions(ctx context.Context, userID, address, client string) ([]*sessiond.Session, error) {
	alive := true
	f := sessiond.Filter{UserID: userID, Address: address, Client: client, Active: &alive}
	take := h.svc.Config().MaxTake
	var all []*sessiond.Session
	for {
		page, err := h.svc.List(ctx, f, sessiond.Paging{Skip: len(all), Take: take})
		if err != nil {
			return nil, err
		}
		all = append(all, page.Data...)
		if len(page.Data) < take {
			return all, nil
		}
	}
}

// ---- routes ----

// get answers GET /sessions/{user_id}: the user's open sessions, or with
// ?session_id= that one session if it is the user's and still open.
func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	req, err := parseRequest(r)
	if err != nil {
		piperr.Write(w, r, err)
		return
	}
	ctx := r.Context()
	if req.hasID {
		sess, err := h.owned(ctx, req.userID, req.sessionID)
		if err != nil {
			piperr.Write(w, r, err)
			return
		}
		// This protocol's document cannot say "closed", and the list only
		// shows open sessions: a closed or expired one is not found here.
		if !sess.Active {
			piperr.Write(w, r, &sessiond.Error{Code: sessiond.ENOTFOUND,
				Message: "session " + sess.ID + " is closed or expired", Details: map[string]any{"session_id": sess.ID}})
			return
		}
		httpx.WriteJSON(w, http.StatusOK, "", newSessionDoc(sess))
		return
	}
	h.streamList(w, r, req.userID)
}

// streamList writes the user's open sessions as a JSON array, read
// sessiond.ListChunk at a time and written out as it goes (httpx.Stream):
// the per-user limit bounds the list, and streaming bounds the memory
// one answer takes (each session may hold the data limit).
func (h *handler) streamList(w http.ResponseWriter, r *http.Request, userID string) {
	alive := true
	f := sessiond.Filter{UserID: userID, Active: &alive}
	out := httpx.NewStream(w, http.StatusOK, "")
	out.Append(func(b []byte) []byte { return append(b, '[') })
	n := 0
	take := h.svc.Config().MaxTake
	var err error
	for {
		var page *sessiond.Page
		if page, err = h.svc.List(r.Context(), f, sessiond.Paging{Skip: n, Take: min(take, sessiond.ListChunk)}); err != nil {
			break
		}
		for _, s := range page.Data {
			out.Append(func(b []byte) []byte {
				if n++; n > 1 {
					b = append(b, ',')
				}
				enc, _ := json.Marshal(newSessionDoc(s)) // cannot fail: RawMessages are valid JSON
				return append(b, enc...)
			})
		}
		if len(page.Data) < min(take, sessiond.ListChunk) {
			break
		}
	}
	if err != nil {
		out.Abort() // panics if part of the list went out
		piperr.Write(w, r, err)
		return
	}
	out.Append(func(b []byte) []byte { return append(b, "]\n"...) })
	out.Close()
}

// openBody is the body of POST /sessions.
type openBody struct {
	User    json.RawMessage `json:"user"`
	Address string          `json:"address"`
	Client  string          `json:"client"`
	Data    json.RawMessage `json:"data"`
}

// userRef is what sessiond reads of the user object; the whole object is
// kept as the session's user.
type userRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// open answers POST /sessions.
func (h *handler) open(w http.ResponseWriter, r *http.Request) {
	var b openBody
	if err := h.decodeBody(r, &b); err != nil {
		piperr.Write(w, r, err)
		return
	}
	if len(b.User) == 0 || string(b.User) == "null" {
		piperr.Write(w, r, piperr.Invalid(piperr.CodeMissingParameter, "user", "user is required"))
		return
	}
	if b.User[0] != '{' {
		piperr.Write(w, r, piperr.Invalid(piperr.CodeInvalidParameter, "user", "user must be an object with id and name"))
		return
	}
	var u userRef
	if err := json.Unmarshal(b.User, &u); err != nil {
		piperr.Write(w, r, piperr.Invalid(piperr.CodeInvalidParameter, "user", "user.id and user.name must be strings"))
		return
	}
	if u.ID == "" {
		piperr.Write(w, r, piperr.Invalid(piperr.CodeMissingParameter, "user.id", "user.id is required"))
		return
	}
	sess, token, err := h.svc.Open(r.Context(), sessiond.OpenRequest{
		UserID:   u.ID,
		UserName: u.Name,
		Address:  b.Address,
		Client:   b.Client,
		User:     b.User,
		Data:     b.Data,
	})
	if err != nil {
		piperr.Write(w, r, err)
		return
	}
	w.Header().Set("Location", "/sessions/"+url.PathEscape(sess.UserID)+"?session_id="+url.QueryEscape(sess.ID))
	httpx.WriteJSON(w, http.StatusCreated, "", &openedDoc{sessionDoc: newSessionDoc(sess), AccessToken: token})
}

// storeBody is the body of POST /sessions/{user_id}.
type storeBody struct {
	Data json.RawMessage `json:"data"`
}

// storeData answers POST /sessions/{user_id}?session_id=.
func (h *handler) storeData(w http.ResponseWriter, r *http.Request) {
	req, err := parseRequest(r)
	if err != nil {
		piperr.Write(w, r, err)
		return
	}
	if !req.hasID {
		piperr.Write(w, r, piperr.Invalid(piperr.CodeMissingParameter, "session_id", "session_id is required"))
		return
	}
	var b storeBody
	if err := h.decodeBody(r, &b); err != nil {
		piperr.Write(w, r, err)
		return
	}
	// An empty body, or one without data, is a mistake, not a request to
	// clear the data: that takes {"data": null}.
	if b.Data == nil {
		piperr.Write(w, r, piperr.Invalid(piperr.CodeMissingParameter, "data", `data is required (send {"data": null} to clear it)`))
		return
	}
	ctx := r.Context()
	if _, err := h.owned(ctx, req.userID, req.sessionID); err != nil {
		piperr.Write(w, r, err)
		return
	}
	// A session's owner never changes, so the check above still holds;
	// StoreData refuses a session that closed in between.
	if _, err := h.svc.StoreData(ctx, req.sessionID, b.Data); err != nil {
		piperr.Write(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// close answers DELETE /sessions/{user_id}: with ?session_id= it closes
// that session (closing a closed one is not an error); without, it closes
// every open session of the user matching the optional address and client
// query parameters.
func (h *handler) close(w http.ResponseWriter, r *http.Request) {
	req, err := parseRequest(r)
	if err != nil {
		piperr.Write(w, r, err)
		return
	}
	ctx := r.Context()
	if req.hasID {
		if _, err := h.owned(ctx, req.userID, req.sessionID); err != nil {
			piperr.Write(w, r, err)
			return
		}
		if _, err := h.svc.CloseSession(ctx, req.sessionID, sessiond.ReasonClosed); err != nil {
			piperr.Write(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	list, err := h.aliveSessions(ctx, req.userID, req.query.Get("address"), req.query.Get("client"))
	if err != nil {
		piperr.Write(w, r, err)
		return
	}
	for _, s := range list {
		// One deleted or closed meanwhile is already what was asked for.
		if _, err := h.svc.CloseSession(ctx, s.ID, sessiond.ReasonClosed); err != nil && !sessiond.IsNotFound(err) {
			piperr.Write(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeBody reads and decodes a JSON object body; empty means {}. A body
// declared as anything but JSON (text/plain, a form) is refused; one
// without a Content-Type is read as JSON.
func (h *handler) decodeBody(r *http.Request, v any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, h.limit)
	if err != nil {
		return err
	}
	return piperr.DecodeObject(body, v)
}

// checkContentType refuses a request whose Content-Type is not JSON:
// application/json or a +json type, with any parameters.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &piperr.Error{Code: piperr.CodeBadRequest, Err: &sessiond.Error{Code: sessiond.EINVALID,
		Message: "the body must be JSON (Content-Type application/json), not " + piperr.Clip(ct),
		Details: map[string]any{"content_type": piperr.Clip(ct)}}}
}
