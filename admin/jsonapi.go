package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"sessiond"
	"sessiond/internal/httpx"
)

// MediaType is the content type of every JSON:API answer.
const MediaType = "application/vnd.api+json"

// document is a JSON:API top-level document. Data is a *resource, a
// []resource (never nil for a collection, so that it encodes as []) or nil.
type document struct {
	Links  *links         `json:"links,omitempty"`
	Data   any            `json:"data,omitempty"`
	Meta   map[string]any `json:"meta,omitempty"`
	Errors []errorObject  `json:"errors,omitempty"`
}

// resource is a JSON:API resource object.
type resource struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	Attributes    any    `json:"attributes"`
	Relationships any    `json:"relationships,omitempty"`
	Links         *links `json:"links,omitempty"`
}

// links are JSON:API links: absolute URLs, always with the version prefix.
type links struct {
	Self  string `json:"self,omitempty"`
	First string `json:"first,omitempty"`
	Prev  string `json:"prev,omitempty"`
	Next  string `json:"next,omitempty"`
	Last  string `json:"last,omitempty"`
}

// errorObject is a JSON:API error object. Status is the HTTP status as a
// string, Code the sessiond error code.
type errorObject struct {
	Status string         `json:"status"`
	Code   string         `json:"code,omitempty"`
	Title  string         `json:"title"`
	Detail string         `json:"detail"`
	Meta   map[string]any `json:"meta,omitempty"`
}

// statusError is an error that only this HTTP edge knows, with its status
// (405, 415, ...).
type statusError struct {
	status int
	detail string
}

func (e *statusError) Error() string { return e.detail }

// selfURL returns the absolute URL of path (given without the version
// prefix) on the server that received r.
func selfURL(r *http.Request, path string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + APIPrefix + path
}

// isPretty reports whether the client asked for indented JSON.
// ServeHTTP has already refused a malformed value.
func isPretty(r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return false
	}
	v, _ := strconv.ParseBool(r.URL.Query().Get("pretty"))
	return v
}

// checkQuery refuses query parameters shared by every route that are
// malformed.
func checkQuery(r *http.Request) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	q := r.URL.Query()
	if v, ok := q["pretty"]; ok {
		if _, err := strconv.ParseBool(v[0]); err != nil {
			return sessiond.Errorf(sessiond.EINVALID, "pretty: expected true or false, got %q", v[0])
		}
	}
	return nil
}

// writeDoc writes doc with the given status, indented when ?pretty=true.
// Admin answers may hold secrets, so none is cached.
func writeDoc(w http.ResponseWriter, r *http.Request, status int, doc *document) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // links hold & and are not HTML
	if isPretty(r) {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(doc); err != nil {
		httpx.LogError(r, sessiond.Internal(err))
		buf.Reset()
		json.NewEncoder(&buf).Encode(errorDoc(http.StatusInternalServerError, sessiond.EINTERNAL, "Internal error", nil))
		status = http.StatusInternalServerError
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept")
	httpx.WriteRaw(w, status, contentType(r), buf.Bytes())
}

// contentType is the media type of an answer to r: JSON:API, or plain
// application/json when the client's Accept asks only for that (no
// JSON:API, no wildcard).
func contentType(r *http.Request) string {
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return MediaType
	}
	plain := false
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || params["q"] == "0" {
				continue
			}
			switch mt {
			case MediaType, "*/*", "application/*":
				return MediaType
			case "application/json":
				plain = true
			}
		}
	}
	if plain {
		return "application/json"
	}
	return MediaType
}

func errorDoc(status int, code, detail string, meta map[string]any) *document {
	return &document{Errors: []errorObject{{
		Status: strconv.Itoa(status),
		Code:   code,
		Title:  http.StatusText(status),
		Detail: detail,
		Meta:   meta,
	}}}
}

// writeError answers err as a JSON:API error document with the matching
// HTTP status, and logs it once. Internal errors show only a generic
// message; their cause goes to the log. A 401 carries the Basic challenge.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if errors.As(err, &se) {
		writeStatusError(w, r, se.status, se.detail)
		return
	}
	httpx.LogError(r, err)
	code := sessiond.ErrorCode(err)
	status := httpx.StatusOf(code)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	}
	httpx.SetRetryAfter(w, err)
	writeDoc(w, r, status, errorDoc(status, code, sessiond.ErrorMessage(err), sessiond.ErrorDetails(err)))
}

// writeStatusError answers an error that has no sessiond code (405, 415).
func writeStatusError(w http.ResponseWriter, r *http.Request, status int, detail string) {
	writeDoc(w, r, status, errorDoc(status, "", detail, nil))
}

// resourceIn is the resource object of a request body.
type resourceIn struct {
	// Attributes holds each attribute's raw JSON value.
	Attributes map[string]json.RawMessage
}

// decodeResource reads a request body holding a JSON:API document whose
// data is a resource object of type typ, and returns its attributes. The
// body is optional: an empty one means no attributes. A document whose
// type is another resource's is a 409 (JSON:API); a client-chosen id is a
// 403, since every id here is made by the server.
func (s *server) decodeResource(r *http.Request, typ string) (*resourceIn, error) {
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	body, err := httpx.ReadBody(r, s.bodyLimit)
	if err != nil {
		return nil, err
	}
	in := &resourceIn{Attributes: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(body)) == 0 {
		return in, nil
	}
	if err := httpx.CheckDepth(body); err != nil {
		return nil, err
	}
	top, err := decodeObject(body, "the body")
	if err != nil {
		return nil, err
	}
	if err := onlyMembers(top, "the document", "data", "meta", "jsonapi", "links"); err != nil {
		return nil, err
	}
	raw, ok := top["data"]
	if !ok || isNull(raw) {
		return nil, sessiond.Errorf(sessiond.EINVALID, `the document must have a "data" member holding a %s resource object`, typ)
	}
	data, err := decodeObject(raw, "data")
	if err != nil {
		return nil, err
	}
	if err := onlyMembers(data, "data", "type", "id", "attributes", "relationships", "links", "meta"); err != nil {
		return nil, err
	}
	if t, ok := data["type"]; ok && !isNull(t) {
		var got string
		if err := json.Unmarshal(t, &got); err != nil {
			return nil, sessiond.Errorf(sessiond.EINVALID, "data.type: expected a string, got %s", httpx.JSONKind(t))
		}
		if got != typ {
			return nil, sessiond.Errorf(sessiond.ECONFLICT, "data.type: this collection holds %q resources, not %q", typ, got)
		}
	}
	if id, ok := data["id"]; ok && !isNull(id) {
		return nil, sessiond.Errorf(sessiond.EFORBIDDEN, "data.id: the server chooses %s ids; leave id out", typ)
	}
	if a, ok := data["attributes"]; ok && !isNull(a) {
		if in.Attributes, err = decodeObject(a, "data.attributes"); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// allow refuses attributes other than names.
func (in *resourceIn) allow(names ...string) error {
	return onlyMembers(in.Attributes, "data.attributes", names...)
}

// string returns the string attribute name; absent or null is "".
func (in *resourceIn) string(name string) (string, error) {
	raw, ok := in.Attributes[name]
	if !ok || isNull(raw) {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", sessiond.Errorf(sessiond.EINVALID, "data.attributes.%s: expected a string, got %s", name, httpx.JSONKind(raw))
	}
	return v, nil
}

// checkContentType accepts a request body declared as JSON or JSON:API, or
// not declared at all.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == MediaType) {
		return nil
	}
	return &statusError{status: http.StatusUnsupportedMediaType,
		detail: "Content-Type must be application/json or " + MediaType + ", not " + strconv.Quote(ct)}
}

// decodeObject decodes b, which must be a JSON object, into its members.
func decodeObject(b []byte, what string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, sessiond.Errorf(sessiond.EINVALID, "%s: expected a JSON object, got %s", what, httpx.JSONKind(b))
		}
		return nil, httpx.DecodeError(err)
	}
	if m == nil { // the literal null
		return nil, sessiond.Errorf(sessiond.EINVALID, "%s: expected a JSON object, got null", what)
	}
	return m, nil
}

// onlyMembers refuses members of m other than allowed, naming them.
func onlyMembers(m map[string]json.RawMessage, what string, allowed ...string) error {
	var unknown []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return &sessiond.Error{Code: sessiond.EINVALID,
		Message: what + ": unknown member " + strings.Join(unknown, ", ") + "; allowed: " + strings.Join(allowed, ", ")}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
