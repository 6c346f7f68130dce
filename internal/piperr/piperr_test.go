package piperr_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"sessiond"
	"sessiond/internal/piperr"
)

func TestDescribe(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		status   int
		category string
		typ      string
		code     string
		message  string
	}{
		{"invalid", sessiond.Errorf(sessiond.EINVALID, "bad"), 400, "BadRequest", "BadRequestException", "BAD_REQUEST", "bad"},
		{"not found", sessiond.Errorf(sessiond.ENOTFOUND, "no session x"), 404, "NotFound", "NotFoundException", "SESSION_NOT_FOUND", "no session x"},
		{"closed", sessiond.Errorf(sessiond.ECLOSED, "closed"), 400, "BadRequest", "BadRequestException", "SESSION_CLOSED", "closed"},
		{"conflict", sessiond.Errorf(sessiond.ECONFLICT, "dup"), 409, "Conflict", "ConflictException", "CONFLICT", "dup"},
		{"unauthorized", sessiond.Errorf(sessiond.EUNAUTHORIZED, "who"), 401, "Unauthorized", "UnauthorizedException", "UNAUTHORIZED", "who"},
		{"forbidden", sessiond.Errorf(sessiond.EFORBIDDEN, "no"), 403, "Unauthorized", "UnauthorizedException", "FORBIDDEN", "no"},
		{"too large", sessiond.Errorf(sessiond.ETOOLARGE, "big"), 413, "BadRequest", "BadRequestException", "BODY_TOO_LARGE", "big"},
		{"too many", sessiond.Errorf(sessiond.ETOOMANY, "slow down"), 429, "BadRequest", "BadRequestException", "TOO_MANY_REQUESTS", "slow down"},
		{"unavailable", sessiond.Errorf(sessiond.EUNAVAILABLE, "down"), 503, "NoResponse", "ConnectionException", "SERVICE_UNAVAILABLE", "down"},
		{"timeout", sessiond.Errorf(sessiond.ETIMEOUT, "slow"), 504, "NoResponse", "ConnectionException", "TIMEOUT", "slow"},
		{"internal", sessiond.Internal(errors.New("disk full at /var")), 500, "Internal", "InternalException", "INTERNAL", "Internal error"},
		{"plain error", errors.New("secret detail"), 500, "Internal", "InternalException", "INTERNAL", "Internal error"},
		{"wrapped internal keeps generic message", piperr.Wrap("CUSTOM", sessiond.Internal(errors.New("x"))), 500, "Internal", "InternalException", "INTERNAL", "Internal error"},
		{"code attached", piperr.Wrap(piperr.CodeInvalidJSON, sessiond.Errorf(sessiond.EINVALID, "bad json")), 400, "BadRequest", "BadRequestException", "INVALID_JSON", "bad json"},
		{"code attached through fmt wrapping", fmt.Errorf("ctx: %w", piperr.New(sessiond.ENOTFOUND, piperr.CodeUnknownCommand, "no such command")), 404, "NotFound", "NotFoundException", "UNKNOWN_COMMAND", "no such command"},
		{"method not allowed", piperr.MethodNotAllowed("PUT"), 405, "Unsupported", "UnsupportedException", "METHOD_NOT_ALLOWED", "method PUT is not allowed here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := piperr.Describe(tt.err, "c-1")
			want := piperr.Description{Type: tt.typ, Category: tt.category, Code: tt.code, Status: tt.status, Message: tt.message,
				CorrelationID: "c-1", Details: got.Details}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Describe = %+v, want %+v", got, want)
			}
			if tt.status == 500 && got.Details != nil {
				t.Errorf("internal error shows details %v", got.Details)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	r := httptest.NewRequest("POST", "/x?correlation_id=abc", nil)
	w := httptest.NewRecorder()
	piperr.Write(w, r, piperr.Invalid(piperr.CodeInvalidParameter, "paging.skip", "paging.skip must not be negative"))
	if got, want := w.Code, http.StatusBadRequest; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "BadRequestException", "category": "BadRequest", "code": "INVALID_PARAMETER", "status": 400.0,
		"message": "paging.skip must not be negative", "correlation_id": "abc", "details": map[string]any{"parameter": "paging.skip"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}

	// Without a correlation id and details, both are left out.
	w = httptest.NewRecorder()
	piperr.Write(w, httptest.NewRequest("GET", "/", nil), sessiond.Errorf(sessiond.ENOTFOUND, "gone"))
	if s := w.Body.String(); strings.Contains(s, "correlation_id") || strings.Contains(s, "details") {
		t.Errorf("body %s: want no correlation_id and no details", s)
	}
}

func TestWriteTooMany(t *testing.T) {
	w := httptest.NewRecorder()
	piperr.Write(w, httptest.NewRequest("POST", "/", nil),
		&sessiond.Error{Code: sessiond.ETOOMANY, Message: "slow down", Details: map[string]any{"retry_after": 7}})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "7" || !strings.Contains(w.Body.String(), `"retry_after":7`) {
		t.Errorf("answer %d, Retry-After %q, body %s; want 429, 7 and details.retry_after", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

type params struct {
	Name  string          `json:"name"`
	Count int             `json:"count"`
	Inner struct{ A int } `json:"inner"`
	Level level           `json:"level"`
}

// level accepts only "low" and "high".
type level string

func (*level) ExpectedJSON() string { return `"low" or "high"` }

func (l *level) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"low"`, `"high"`, `null`:
		*l = level(strings.Trim(string(b), `"`))
		return nil
	}
	return &json.UnmarshalTypeError{Value: "value " + string(b), Type: reflect.TypeFor[level]()}
}

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		code    string // "" for success
		message string
		param   string
	}{
		{name: "object", body: `{"name":"x","count":2,"level":"low"}`},
		{name: "empty", body: ``},
		{name: "whitespace", body: " \n\t"},
		{name: "empty object with spaces", body: " { } "},
		{name: "array", body: `[1]`, code: "BAD_REQUEST", message: "request body must be a JSON object"},
		{name: "null", body: `null`, code: "BAD_REQUEST", message: "request body must be a JSON object"},
		{name: "string", body: ` "x" `, code: "BAD_REQUEST", message: "request body must be a JSON object"},
		{name: "syntax", body: `{"name":}`, code: "INVALID_JSON"},
		{name: "truncated", body: `{"name":"x"`, code: "INVALID_JSON"},
		{name: "truncated array", body: `[`, code: "INVALID_JSON"},
		{name: "trailing data", body: `{}{}`, code: "INVALID_JSON"},
		{name: "not UTF-8", body: "{\"name\":\"\xff\"}", code: "INVALID_JSON", message: "request body is not valid UTF-8 text (or escapes a lone UTF-16 surrogate)"},
		{name: "lone surrogate escape", body: `{"name":"\udc00"}`, code: "INVALID_JSON"},
		{name: "too deep", body: strings.Repeat("[", 65) + strings.Repeat("]", 65), code: "INVALID_JSON"},
		{name: "wrong type", body: `{"count":"two"}`, code: "INVALID_PARAMETER", message: "count: expected an integer, got string", param: "count"},
		{name: "wrong nested type", body: `{"inner":{"A":true}}`, code: "INVALID_PARAMETER", message: "inner.A: expected an integer, got bool", param: "inner.A"},
		{name: "object expected", body: `{"inner":[]}`, code: "INVALID_PARAMETER", message: "inner: expected an object, got array", param: "inner"},
		{name: "describer", body: `{"level":"medium"}`, code: "INVALID_PARAMETER", message: `level: expected "low" or "high", got value "medium"`, param: "level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p params
			err := piperr.DecodeObject([]byte(tt.body), &p)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("DecodeObject: %v", err)
				}
				return
			}
			d := piperr.Describe(err, "")
			if d.Status != 400 || d.Code != tt.code {
				t.Fatalf("error %v: status %d code %s, want 400 %s", err, d.Status, d.Code, tt.code)
			}
			if tt.message != "" && d.Message != tt.message {
				t.Errorf("message = %q, want %q", d.Message, tt.message)
			}
			if tt.param != "" && d.Details["parameter"] != tt.param {
				t.Errorf("details.parameter = %v, want %q", d.Details["parameter"], tt.param)
			}
		})
	}
}

func TestMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("é", 1000)
	d := piperr.Describe(sessiond.Errorf(sessiond.ENOTFOUND, "session %s not found", long), "")
	if len(d.Message) > 503 || !strings.HasSuffix(d.Message, "...") || !utf8.ValidString(d.Message) {
		t.Errorf("message of %d bytes, want at most 500 and valid UTF-8", len(d.Message))
	}
	if got := piperr.Clip(long); len(got) > 103 || !utf8.ValidString(got) {
		t.Errorf("Clip gave %d bytes, want at most 100 and valid UTF-8", len(got))
	}
	if got := piperr.Clip("short"); got != "short" {
		t.Errorf("Clip(short) = %q", got)
	}
}
