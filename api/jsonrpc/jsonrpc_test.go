package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"sessiond"
	"sessiond/internal/wire"
	"sessiond/store/memory"
)

// TestMethods walks every method's happy path with APIKey/Secret
// credentials and checks each result against the store.
func TestMethods(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.a.creds()

	o := e.open(t, a, map[string]any{"expires_in": 3600, "user_id": "u-1", "user_name": "Ada", "data": map[string]any{"cart": []int{}}})
	if o.AccessToken == "" || len(o.SessionID) != 32 {
		t.Fatalf("open: got %+v, want a token and a 32-character id", o)
	}
	if got, want := o.ExpiresIn, int64(3600); got != want {
		t.Errorf("open: expires_in %d, want %d", got, want)
	}
	stored, err := e.svc.Get(context.Background(), o.SessionID)
	if err != nil {
		t.Fatalf("the opened session is not in the store: %v", err)
	}
	if stored.APIKeyID != e.a.id || stored.UserID != "u-1" || stored.UserName != "Ada" || string(stored.Data) != `{"cart":[]}` ||
		!stored.ExpireTime.Equal(t0.Add(time.Hour)) || stored.Address != "192.0.2.1" {
		t.Errorf("stored session: got %+v", stored)
	}

	t.Run("verify", func(t *testing.T) {
		w := e.post(t, a, `{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"`+o.AccessToken+`"},"id":7}`)
		if got, want := w.Body.String(), `{"jsonrpc":"2.0","result":{"active":true},"id":7}`; got != want {
			t.Errorf("verify: got %s, want %s", got, want)
		}
	})

	t.Run("get", func(t *testing.T) {
		var s wire.SessionV1
		if err := json.Unmarshal(e.result(t, a, "session.get_session", map[string]any{"token": o.AccessToken}), &s); err != nil {
			t.Fatal(err)
		}
		if s.ID != o.SessionID || !s.Active || s.UserID != "u-1" || s.UserName != "Ada" || string(s.Data) != `{"cart":[]}` ||
			s.APIKeyID != e.a.id || !time.Time(s.ExpireTime).Equal(t0.Add(time.Hour)) || !time.Time(s.OpenTime).Equal(t0) {
			t.Errorf("get: got %+v", s)
		}
	})

	t.Run("store", func(t *testing.T) {
		e.clk.Add(5 * time.Second)
		res := e.result(t, a, "session.store_session_data", map[string]any{"token": o.AccessToken, "data": map[string]any{"cart": []int{42}}})
		var s wire.SessionV1
		if err := json.Unmarshal(res, &s); err != nil {
			t.Fatal(err)
		}
		if got, want := string(s.Data), `{"cart":[42]}`; got != want {
			t.Errorf("store: data %s, want %s", got, want)
		}
		if got, want := time.Time(s.RequestTime), t0.Add(5*time.Second); !got.Equal(want) {
			t.Errorf("store: request_time %v, want %v", got, want)
		}
		stored, _ := e.svc.Get(context.Background(), o.SessionID)
		if got, want := string(stored.Data), `{"cart":[42]}`; got != want {
			t.Errorf("store: stored data %s, want %s", got, want)
		}
		// null clears the data; data may be any JSON value.
		for _, data := range []string{`null`, `"text"`, `[1,2]`, `7`} {
			res := e.result(t, a, "session.store_session_data", map[string]any{"token": o.AccessToken, "data": json.RawMessage(data)})
			json.Unmarshal(res, &s)
			if got := string(s.Data); got != data {
				t.Errorf("store %s: data %s", data, got)
			}
		}
	})

	t.Run("close", func(t *testing.T) {
		if got := string(e.result(t, a, "session.close_session", map[string]any{"token": o.AccessToken})); got != "true" {
			t.Errorf("close: got %s, want true", got)
		}
		if e.active(t, a, o.AccessToken) {
			t.Errorf("verify after close: active, want inactive")
		}
		stored, _ := e.svc.Get(context.Background(), o.SessionID)
		if stored.Active || stored.Data != nil {
			t.Errorf("closed session: got %+v, want inactive without data", stored)
		}
		// Closing again, or an unknown token, is still true.
		for _, tok := range []string{o.AccessToken, "no-such-token"} {
			if got := string(e.result(t, a, "session.close_session", map[string]any{"token": tok})); got != "true" {
				t.Errorf("close %q again: got %s, want true", tok, got)
			}
		}
		// A closed session can be neither read nor written.
		for _, c := range []struct {
			method string
			params map[string]any
		}{
			{"session.get_session", map[string]any{"token": o.AccessToken}},
			{"session.store_session_data", map[string]any{"token": o.AccessToken, "data": 1}},
		} {
			err := e.rpcError(t, a, c.method, c.params)
			if err.Code != CodeInvalidParams || !strings.Contains(err.Message, "active session") || err.Data["param"] != "token" {
				t.Errorf("%s after close: got %d %q %v, want -32602 naming the token", c.method, err.Code, err.Message, err.Data)
			}
		}
	})
}

// TestOpenSessionParams checks expires_in (default, bounds, types) and the
// other params of open_session, by name and by position; a refused open
// changes nothing.
func TestOpenSessionParams(t *testing.T) {
	const days30, days365 = 30 * 24 * 3600, 365 * 24 * 3600
	tests := []struct {
		name    string
		params  string // the params member; "" leaves it out
		want    int64  // expires_in of the result
		wantErr string // a part of the -32602 message
	}{
		{name: "no params", want: days30},
		{name: "null params", params: `null`, want: days30},
		{name: "empty object", params: `{}`, want: days30},
		{name: "expires_in null", params: `{"expires_in":null}`, want: days30},
		{name: "expires_in 60", params: `{"expires_in":60}`, want: 60},
		{name: "integral float", params: `{"expires_in":3600.0}`, want: 3600},
		{name: "exponent", params: `{"expires_in":1e3}`, want: 1000},
		{name: "above the maximum", params: `{"expires_in":1e12}`, want: days365},
		{name: "beyond float64", params: `{"expires_in":1e400}`, want: days365},
		{name: "all by name", params: `{"expires_in":120,"user_id":"u-2","user_name":"Bob","data":{"x":1}}`, want: 120},
		{name: "null user", params: `{"user_id":null,"user_name":null,"data":null}`, want: days30},
		{name: "by position", params: `[120,"u-2","Bob",{"x":1}]`, want: 120},
		{name: "by position, short", params: `[null]`, want: days30},

		{name: "zero", params: `{"expires_in":0}`, wantErr: "expires_in must be greater than 0"},
		{name: "negative", params: `{"expires_in":-5}`, wantErr: "expires_in must be greater than 0"},
		{name: "fraction", params: `{"expires_in":1.5}`, wantErr: "expires_in must be a whole number of seconds"},
		{name: "tiny", params: `{"expires_in":1e-400}`, wantErr: "expires_in must be greater than 0"},
		{name: "string seconds", params: `{"expires_in":"60"}`, wantErr: "expires_in must be a number of seconds, not a string"},
		{name: "boolean seconds", params: `{"expires_in":true}`, wantErr: "expires_in must be a number of seconds, not a boolean"},
		{name: "user_id number", params: `{"user_id":5}`, wantErr: "user_id must be a string, not a number"},
		{name: "user_name array", params: `{"user_name":[]}`, wantErr: "user_name must be a string, not an array"},
		{name: "unknown param", params: `{"expires_in":60,"scope":"x"}`, wantErr: `"scope" is not a param of session.open_session`},
		{name: "repeated param", params: `{"expires_in":1,"expires_in":2}`, wantErr: "expires_in is given more than once"},
		{name: "too many by position", params: `[1,"a","b",null,5]`, wantErr: "takes at most 4 params"},
		{name: "wrong type by position", params: `["60"]`, wantErr: "expires_in must be a number of seconds"},
	}
	e := newEnv(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"jsonrpc":"2.0","method":"session.open_session","id":1`
			if tt.params != "" {
				body += `,"params":` + tt.params
			}
			body += "}"
			before := e.snapshot(t)
			r := single(t, e.post(t, e.a.creds(), body), http.StatusOK)
			if tt.wantErr != "" {
				if r.Error == nil || r.Error.Code != CodeInvalidParams || !strings.Contains(r.Error.Message, tt.wantErr) {
					t.Fatalf("got result %s error %+v, want -32602 with %q", r.Result, r.Error, tt.wantErr)
				}
				if after := e.snapshot(t); after != before {
					t.Errorf("a refused open changed the store")
				}
				return
			}
			if r.Error != nil {
				t.Fatalf("got error %+v, want a session", r.Error)
			}
			var o openResponse
			json.Unmarshal(r.Result, &o)
			e.secrets = append(e.secrets, o.AccessToken)
			if o.ExpiresIn != tt.want {
				t.Errorf("expires_in %d, want %d", o.ExpiresIn, tt.want)
			}
			s, err := e.svc.Get(context.Background(), o.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := s.ExpireTime, t0.Add(time.Duration(tt.want)*time.Second); !got.Equal(want) {
				t.Errorf("expire_time %v, want %v", got, want)
			}
			if s.APIKeyID != e.a.id {
				t.Errorf("api_key_id %q, want %q", s.APIKeyID, e.a.id)
			}
			if strings.Contains(tt.params, "Bob") && (s.UserID != "u-2" || s.UserName != "Bob" || string(s.Data) != `{"x":1}`) {
				t.Errorf("user and data: got %+v", s)
			}
		})
	}
}

// TestBadInput sends malformed, wrongly typed and oversized requests: each
// gets the right JSON-RPC error and HTTP status, and changes nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t, Options{BodyLimit: 4096})
	a := e.a.creds()
	tok := e.open(t, a, map[string]any{"data": "keep"}).AccessToken
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	verify := func(params string) string {
		return `{"jsonrpc":"2.0","method":"session.verify_session_token","params":` + params + `,"id":1}`
	}
	store := func(params string) string {
		return `{"jsonrpc":"2.0","method":"session.store_session_data","params":` + params + `,"id":1}`
	}
	tests := []struct {
		name    string
		body    string
		status  int
		code    int
		id      string // the response's id
		message string // a part of the message
	}{
		{"empty body", ``, 200, CodeParseError, "null", "the body is empty"},
		{"blank body", " \n\t", 200, CodeParseError, "null", "the body is empty"},
		{"truncated", `{"jsonrpc":"2.0","method"`, 200, CodeParseError, "null", "Parse error"},
		{"not JSON", `hello`, 200, CodeParseError, "null", "invalid JSON"},
		{"trailing garbage", `{"jsonrpc":"2.0","method":"x","id":1} x`, 200, CodeParseError, "null", "Parse error"},
		{"truncated batch", `[{"jsonrpc":"2.0","method":"x","id":1},{"jsonrpc":"2.0"`, 200, CodeParseError, "null", "Parse error"},
		{"string body", `"hello"`, 200, CodeInvalidRequest, "null", "not a string"},
		{"number body", `42`, 200, CodeInvalidRequest, "null", "not a number"},
		{"null body", `null`, 200, CodeInvalidRequest, "null", "not null"},
		{"too deep", verify(`{"token":` + deep + `}`), 200, CodeInvalidRequest, "null", "deeper than 64"},
		{"missing jsonrpc", `{"method":"session.verify_session_token","params":{"token":"x"},"id":1}`, 200, CodeInvalidRequest, "1", `"jsonrpc" is missing`},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","method":"session.verify_session_token","params":{"token":"x"},"id":1}`, 200, CodeInvalidRequest, "1", `"jsonrpc" must be the string "2.0"`},
		{"jsonrpc number", `{"jsonrpc":2.0,"method":"session.verify_session_token","id":"a"}`, 200, CodeInvalidRequest, `"a"`, `"jsonrpc" must be the string "2.0"`},
		{"missing method", `{"jsonrpc":"2.0","id":1}`, 200, CodeInvalidRequest, "1", `"method" is missing`},
		{"method number", `{"jsonrpc":"2.0","method":5,"id":1}`, 200, CodeInvalidRequest, "1", `"method" must be a string, not a number`},
		{"method null", `{"jsonrpc":"2.0","method":null,"id":1}`, 200, CodeInvalidRequest, "1", `"method" must be a string, not null`},
		{"params string", `{"jsonrpc":"2.0","method":"session.verify_session_token","params":"x","id":1}`, 200, CodeInvalidRequest, "1", `"params" must be an object or an array, not a string`},
		{"params number", `{"jsonrpc":"2.0","method":"session.verify_session_token","params":5,"id":1}`, 200, CodeInvalidRequest, "1", `"params" must be an object or an array`},
		{"id object", `{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x"},"id":{}}`, 200, CodeInvalidRequest, "null", `"id" must be a string, a number or null, not an object`},
		{"id boolean", `{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x"},"id":true}`, 200, CodeInvalidRequest, "null", `not a boolean`},
		{"repeated member", `{"jsonrpc":"2.0","method":"session.verify_session_token","method":"session.close_session","params":{"token":"x"},"id":1}`, 200, CodeInvalidRequest, "1", `member "method" appears more than once`},
		{"escaped member name", `{"j\u0073onrpc":"1.0","method":"session.verify_session_token","params":{"token":"x"},"id":1}`, 200, CodeInvalidRequest, "1", `"jsonrpc" must be the string "2.0"`},
		{"repeated member, escaped", `{"jsonrpc":"2.0","method":"session.verify_session_token","m\u0065thod":"x","params":{"token":"x"},"id":1}`, 200, CodeInvalidRequest, "1", `member "method" appears more than once`},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"method\":\"x\xff\",\"id\":1}", 200, CodeParseError, "null", "not valid UTF-8"},
		{"lone surrogate", `{"jsonrpc":"2.0","method":"\ud800","id":1}`, 200, CodeParseError, "null", "lone UTF-16 surrogate"},
		{"repeated id", `{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x"},"id":1,"id":2}`, 200, CodeInvalidRequest, "null", `member "id" appears more than once`},
		{"unknown method", `{"jsonrpc":"2.0","method":"session.delete_everything","id":1}`, 200, CodeMethodNotFound, "1", `"session.delete_everything"`},
		{"reserved method", `{"jsonrpc":"2.0","method":"rpc.discover","id":"x"}`, 200, CodeMethodNotFound, `"x"`, "Method not found"},
		{"method case", `{"jsonrpc":"2.0","method":"Session.Verify_Session_Token","id":1}`, 200, CodeMethodNotFound, "1", "Method not found"},
		{"no params", `{"jsonrpc":"2.0","method":"session.verify_session_token","id":1}`, 200, CodeInvalidParams, "1", "token is required"},
		{"missing token", verify(`{}`), 200, CodeInvalidParams, "1", "token is required"},
		{"token number", verify(`{"token":5}`), 200, CodeInvalidParams, "1", "token must be a string, not a number"},
		{"token null", verify(`{"token":null}`), 200, CodeInvalidParams, "1", "token must be a string, not null"},
		{"token object", verify(`{"token":{"t":1}}`), 200, CodeInvalidParams, "1", "token must be a string, not an object"},
		{"token empty", verify(`{"token":""}`), 200, CodeInvalidParams, "1", "token must not be empty"},
		{"token by position, number", verify(`[5]`), 200, CodeInvalidParams, "1", "token must be a string"},
		{"too many by position", verify(`["a","b"]`), 200, CodeInvalidParams, "1", "takes at most 1 params (token), got 2"},
		{"unknown param", verify(`{"token":"x","tokn":"y"}`), 200, CodeInvalidParams, "1", `"tokn" is not a param of session.verify_session_token, which takes token`},
		{"repeated param", verify(`{"token":"x","token":"y"}`), 200, CodeInvalidParams, "1", "token is given more than once"},
		{"store without data", store(`{"token":"` + tok + `"}`), 200, CodeInvalidParams, "1", "data is required"},
		{"store token number", store(`{"token":1,"data":{}}`), 200, CodeInvalidParams, "1", "token must be a string"},
		{"store unknown param", store(`{"token":"` + tok + `","data":1,"user":{}}`), 200, CodeInvalidParams, "1", `"user" is not a param`},
		{"store other token", store(`{"token":"nope","data":1}`), 200, CodeInvalidParams, "1", "does not name an active session"},
		{"get other token", `{"jsonrpc":"2.0","method":"session.get_session","params":{"token":"nope"},"id":1}`, 200, CodeInvalidParams, "1", "does not name an active session"},
		{"empty batch", `[]`, 200, CodeInvalidRequest, "null", "the batch is empty"},
		{"blank batch", ` [ ] `, 200, CodeInvalidRequest, "null", "the batch is empty"},
		{"too large", verify(`{"token":"` + strings.Repeat("x", 5000) + `"}`), 413, CodeInvalidRequest, "null", "larger than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot(t)
			r := single(t, e.post(t, a, tt.body), tt.status)
			if r.Error == nil {
				t.Fatalf("got result %s, want error %d", r.Result, tt.code)
			}
			if r.Error.Code != tt.code || !strings.Contains(r.Error.Message, tt.message) {
				t.Errorf("got error %d %q, want %d with %q", r.Error.Code, r.Error.Message, tt.code, tt.message)
			}
			if got := string(r.ID); got != tt.id {
				t.Errorf("id %s, want %s", got, tt.id)
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("the store changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestBodyLimit checks the limit with and without a Content-Length, and
// that a body of exactly the limit passes.
func TestBodyLimit(t *testing.T) {
	e := newEnv(t, Options{BodyLimit: 100})
	before := e.snapshot(t)
	big := `{"jsonrpc":"2.0","method":"session.open_session","params":{"user_name":"` + strings.Repeat("n", 100) + `"},"id":1}`
	tests := []struct {
		name string
		body io.Reader
	}{
		{"with content-length", strings.NewReader(big)},
		{"chunked", struct{ io.Reader }{strings.NewReader(big)}}, // no Content-Length: found while reading
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := single(t, e.do(t, http.MethodPost, e.a.creds(), tt.body), http.StatusRequestEntityTooLarge)
			if r.Error == nil || r.Error.Code != CodeInvalidRequest || !strings.Contains(r.Error.Message, "larger than 100 bytes") {
				t.Errorf("got %+v, want -32600 saying the body is larger than 100 bytes", r.Error)
			}
		})
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("a refused body changed the store")
	}
	t.Run("at the limit", func(t *testing.T) {
		b := `{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x"},"id":1}`
		b += strings.Repeat(" ", 100-len(b))
		if r := single(t, e.post(t, e.a.creds(), b), http.StatusOK); r.Error != nil {
			t.Errorf("a body of exactly the limit: got %+v", r.Error)
		}
	})
}

// TestBodyReadError checks that a body that breaks off is a 400.
func TestBodyReadError(t *testing.T) {
	e := newEnv(t, Options{})
	body := io.MultiReader(strings.NewReader(`{"jsonrpc":`), iotest.ErrReader(errors.New("connection reset")))
	r := single(t, e.do(t, http.MethodPost, e.a.creds(), body), http.StatusBadRequest)
	if r.Error == nil || r.Error.Code != CodeInvalidRequest || !strings.Contains(r.Error.Message, "reading the request body") {
		t.Errorf("got %+v, want -32600 saying the body could not be read", r.Error)
	}
}

// TestHTTPMethod checks that only POST is served.
func TestHTTPMethod(t *testing.T) {
	e := newEnv(t, Options{})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		t.Run(m, func(t *testing.T) {
			w := e.do(t, m, e.a.creds(), nil)
			r := single(t, w, http.StatusMethodNotAllowed)
			if got := w.Header().Get("Allow"); got != "POST" {
				t.Errorf("Allow %q, want POST", got)
			}
			if r.Error == nil || r.Error.Code != CodeInvalidRequest || !strings.Contains(r.Error.Message, m) || string(r.ID) != "null" {
				t.Errorf("got %+v id %s, want -32600 naming %s, id null", r.Error, r.ID, m)
			}
		})
	}
}

// TestBatch checks batches: answers in order, invalid entries answered
// alone, notifications executed but not answered, the size limit.
func TestBatch(t *testing.T) {
	e := newEnv(t, Options{MaxBatch: 8})
	a := e.a.creds()
	t1 := e.open(t, a, nil).AccessToken
	t2 := e.open(t, a, nil).AccessToken

	t.Run("mixed", func(t *testing.T) {
		body := `[
			{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"` + t1 + `"},"id":1},
			{"jsonrpc":"2.0","method":"session.close_session","params":{"token":"` + t2 + `"}},
			{"foo":"boo"},
			{"jsonrpc":"2.0","method":"session.nope","id":"x"},
			5,
			[],
			{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":7},"id":2},
			{"jsonrpc":"2.0","method":"session.verify_session_token","params":["` + t2 + `"],"id":null}
		]`
		got := batch(t, e.post(t, a, body))
		want := []struct {
			id     string
			code   int    // 0: a result
			result string // when code is 0
		}{
			{"1", 0, `{"active":true}`},
			{"null", CodeInvalidRequest, ""},
			{`"x"`, CodeMethodNotFound, ""},
			{"null", CodeInvalidRequest, ""},
			{"null", CodeInvalidRequest, ""},
			{"2", CodeInvalidParams, ""},
			{"null", 0, `{"active":false}`}, // the notification before it closed t2
		}
		if len(got) != len(want) {
			t.Fatalf("got %d responses, want %d: %s", len(got), len(want), e.post(t, a, body).Body)
		}
		for i, w := range want {
			r := got[i]
			if string(r.ID) != w.id {
				t.Errorf("response %d: id %s, want %s", i, r.ID, w.id)
			}
			switch {
			case w.code == 0 && (r.Error != nil || string(r.Result) != w.result):
				t.Errorf("response %d: got %s %+v, want result %s", i, r.Result, r.Error, w.result)
			case w.code != 0 && (r.Error == nil || r.Error.Code != w.code):
				t.Errorf("response %d: got %s %+v, want error %d", i, r.Result, r.Error, w.code)
			}
		}
	})

	t.Run("empty", func(t *testing.T) {
		r := single(t, e.post(t, a, `[]`), http.StatusOK)
		if r.Error == nil || r.Error.Code != CodeInvalidRequest || string(r.ID) != "null" {
			t.Errorf("got %+v id %s, want one -32600 with id null", r.Error, r.ID)
		}
	})

	t.Run("only notifications", func(t *testing.T) {
		t3 := e.open(t, a, nil).AccessToken
		w := e.post(t, a, `[{"jsonrpc":"2.0","method":"session.close_session","params":{"token":"`+t3+`"}},
			{"jsonrpc":"2.0","method":"session.no_such_method"},
			{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":5}}]`)
		if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
			t.Errorf("got %d %q, want 204 and no body", w.Code, w.Body)
		}
		if e.active(t, a, t3) {
			t.Errorf("the close_session notification was not executed")
		}
	})

	t.Run("one answer", func(t *testing.T) {
		// A batch answers with an array even when one entry is answered.
		got := batch(t, e.post(t, a, `[{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"`+t1+`"},"id":1},
			{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"`+t1+`"}}]`))
		if len(got) != 1 || string(got[0].Result) != `{"active":true}` {
			t.Errorf("got %+v, want one result", got)
		}
	})

	t.Run("limit", func(t *testing.T) {
		entry := `{"jsonrpc":"2.0","method":"session.open_session","id":1}`
		before := e.snapshot(t)
		r := single(t, e.post(t, a, "["+strings.Repeat(entry+",", 8)+entry+"]"), http.StatusOK)
		if r.Error == nil || r.Error.Code != CodeInvalidRequest || !strings.Contains(r.Error.Message, "holds 9 requests, more than the limit of 8") {
			t.Errorf("got %+v, want -32600 naming the limit", r.Error)
		}
		if after := e.snapshot(t); after != before {
			t.Errorf("a refused batch changed the store")
		}
		got := batch(t, e.post(t, a, "["+strings.Repeat(entry+",", 7)+entry+"]"))
		if len(got) != 8 {
			t.Errorf("a batch at the limit: got %d responses, want 8", len(got))
		}
		for _, r := range got {
			var o openResponse
			json.Unmarshal(r.Result, &o)
			e.secrets = append(e.secrets, o.AccessToken)
		}
	})
}

// TestDefaultBatchLimit checks that the zero Options allow 100 requests
// in a batch, not 101.
func TestDefaultBatchLimit(t *testing.T) {
	e := newEnv(t, Options{})
	entry := `{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x"},"id":1}`
	if got := batch(t, e.post(t, e.a.creds(), "["+strings.Repeat(entry+",", 99)+entry+"]")); len(got) != 100 {
		t.Errorf("100 requests: got %d responses, want 100", len(got))
	}
	r := single(t, e.post(t, e.a.creds(), "["+strings.Repeat(entry+",", 100)+entry+"]"), http.StatusOK)
	if r.Error == nil || r.Error.Code != CodeInvalidRequest || !strings.Contains(r.Error.Message, "limit of 100") {
		t.Errorf("101 requests: got %+v, want -32600 naming the limit of 100", r.Error)
	}
}

// TestNotification checks that a single notification is executed and
// answered with 204 and no body, even when it fails.
func TestNotification(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.a.creds()
	tok := e.open(t, a, nil).AccessToken
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"session.no_such_method"}`,
		`{"jsonrpc":"2.0","method":"session.get_session","params":{"token":"unknown"}}`,
		`{"jsonrpc":"2.0","method":"session.close_session","params":{"token":"` + tok + `"}}`,
	} {
		w := e.post(t, a, body)
		if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
			t.Errorf("%s: got %d %q, want 204 and no body", body, w.Code, w.Body)
		}
	}
	if e.active(t, a, tok) {
		t.Errorf("the close_session notification was not executed")
	}
	// An invalid request without an id is not a notification: it is answered.
	r := single(t, e.post(t, a, `{"jsonrpc":"1.0","method":"session.close_session"}`), http.StatusOK)
	if r.Error == nil || r.Error.Code != CodeInvalidRequest || string(r.ID) != "null" {
		t.Errorf("got %+v id %s, want -32600 with id null", r.Error, r.ID)
	}
}

// TestIDs checks that ids come back exactly as sent.
func TestIDs(t *testing.T) {
	e := newEnv(t, Options{})
	for _, id := range []string{`1`, `0`, `-7`, `1.5`, `1e3`, `12345678901234567890123`, `"abc"`, `""`, `"\u00e9\"x"`, `"é"`, `null`} {
		r := single(t, e.post(t, e.a.creds(), `{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x"},"id":`+id+`}`), http.StatusOK)
		if got := string(r.ID); got != id {
			t.Errorf("id %s came back as %s", id, got)
		}
	}
	// Invalid UTF-8 (here in a string id) is not JSON text: a parse error,
	// answered with id null and never echoed.
	w := e.post(t, e.a.creds(), "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":\"a\xffb\"}")
	if r := single(t, w, http.StatusOK); string(r.ID) != "null" || r.Error == nil || r.Error.Code != CodeParseError {
		t.Errorf("id with invalid UTF-8: got id %s error %+v, want id null and -32700", r.ID, r.Error)
	}
}

// TestAuthentication checks the credential headers: the token (header or
// bearer) first, then APIKey/Secret, and 401 otherwise.
func TestAuthentication(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.open(t, e.a.creds(), nil).AccessToken
	closed := e.open(t, e.a.creds(), nil).AccessToken
	e.result(t, e.a.creds(), "session.close_session", map[string]any{"token": closed})

	tests := []struct {
		name   string
		hdr    http.Header
		status int
	}{
		{"key and secret", e.a.creds(), 200},
		{"token header", tokenCreds(tok), 200},
		{"bearer token", http.Header{"Authorization": {"Bearer " + tok}}, 200},
		{"bearer, any case", http.Header{"Authorization": {"bEaReR " + tok}}, 200},
		{"token beats a wrong secret", http.Header{"Xdata-Session-Token": {tok}, "Apikey": {e.a.id}, "Secret": {"wrong"}}, 200},
		{"token header beats a bearer", http.Header{"Xdata-Session-Token": {tok}, "Authorization": {"Bearer nope"}}, 200},

		{"nothing", nil, 401},
		{"wrong secret", http.Header{"Apikey": {e.a.id}, "Secret": {"wrong"}}, 401},
		{"other key's secret", http.Header{"Apikey": {e.a.id}, "Secret": {e.b.secret}}, 401},
		{"unknown key", http.Header{"Apikey": {"0123456789abcdef0123456789abcdef"}, "Secret": {e.a.secret}}, 401},
		{"key without secret", http.Header{"Apikey": {e.a.id}}, 401},
		{"secret without key", http.Header{"Secret": {e.a.secret}}, 401},
		{"invalid token beats a valid key", http.Header{"Xdata-Session-Token": {"nope"}, "Apikey": {e.a.id}, "Secret": {e.a.secret}}, 401},
		{"closed session's token", tokenCreds(closed), 401},
		{"basic auth", http.Header{"Authorization": {"Basic YWRtaW46YWRtaW4="}}, 401},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, 401},
	}
	body := `[{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"` + tok + `"},"id":1},
		{"jsonrpc":"2.0","method":"session.open_session","id":2}]`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot(t)
			w := e.post(t, tt.hdr, body)
			if tt.status == http.StatusOK {
				got := batch(t, w)
				if len(got) != 2 || string(got[0].Result) != `{"active":true}` || got[1].Error != nil {
					t.Errorf("got %s, want the token active and a session opened", w.Body)
				}
				var o openResponse
				json.Unmarshal(got[1].Result, &o)
				e.secrets = append(e.secrets, o.AccessToken)
				if s, err := e.svc.Get(context.Background(), o.SessionID); err != nil || s.APIKeyID != e.a.id {
					t.Errorf("the session opened belongs to %+v (%v), want key A", s, err)
				}
				return
			}
			r := single(t, w, tt.status)
			if r.Error == nil || r.Error.Code != CodeUnauthenticated || string(r.ID) != "null" {
				t.Errorf("got %+v id %s, want one -32001 with id null", r.Error, r.ID)
			}
			if got := w.Header().Get("WWW-Authenticate"); got == "" {
				t.Errorf("no WWW-Authenticate header on a 401")
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("an unauthenticated request changed the store")
			}
		})
	}
}

// TestForbidden checks that a token of a session opened without an API
// key (through the trusted internal APIs) may not use the Session API.
func TestForbidden(t *testing.T) {
	e := newEnv(t, Options{})
	_, tok, err := e.svc.Open(context.Background(), sessiond.OpenRequest{UserID: "internal"})
	if err != nil {
		t.Fatal(err)
	}
	e.secrets = append(e.secrets, tok)
	before := e.snapshot(t)
	r := single(t, e.post(t, tokenCreds(tok), `{"jsonrpc":"2.0","method":"session.open_session","id":1}`), http.StatusForbidden)
	if r.Error == nil || r.Error.Code != CodeForbidden || !strings.Contains(r.Error.Message, "no API key") {
		t.Errorf("got %+v, want -32003", r.Error)
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("a forbidden request changed the store")
	}
	// The API keys still cannot see that session.
	if e.active(t, e.a.creds(), tok) {
		t.Errorf("key A sees a session of no key")
	}
}

// TestIsolation checks that key B can neither see nor change key A's
// sessions, whether B authenticates with its secret or with its token.
func TestIsolation(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.a.creds()
	ta := e.open(t, a, map[string]any{"data": "A's"}).AccessToken
	tb := e.open(t, e.b.creds(), nil).AccessToken

	for name, b := range map[string]http.Header{"B's secret": e.b.creds(), "B's token": tokenCreds(tb)} {
		t.Run(name, func(t *testing.T) {
			before := e.snapshot(t)
			if e.active(t, b, ta) {
				t.Errorf("verify: B sees A's token as active")
			}
			for _, c := range []struct {
				method string
				params map[string]any
			}{
				{"session.get_session", map[string]any{"token": ta}},
				{"session.store_session_data", map[string]any{"token": ta, "data": "B's"}},
			} {
				err := e.rpcError(t, b, c.method, c.params)
				if err.Code != CodeInvalidParams || !strings.Contains(err.Message, "does not name an active session") {
					t.Errorf("%s: got %d %q, want the unknown-token error", c.method, err.Code, err.Message)
				}
			}
			if got := string(e.result(t, b, "session.close_session", map[string]any{"token": ta})); got != "true" {
				t.Errorf("close: got %s, want true", got)
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("B changed the store:\nbefore %s\nafter  %s", before, after)
			}
			if !e.active(t, a, ta) {
				t.Errorf("A's session is no longer active after B's attempts")
			}
		})
	}
	// A token authorizes as the key that issued it: A's token sees A's.
	if !e.active(t, tokenCreds(ta), ta) {
		t.Errorf("A's token does not see A's session")
	}
	if e.active(t, tokenCreds(ta), tb) {
		t.Errorf("A's token sees B's session")
	}
	var s wire.SessionV1
	json.Unmarshal(e.result(t, a, "session.get_session", map[string]any{"token": ta}), &s)
	if string(s.Data) != `"A's"` {
		t.Errorf("A's data is %s, want \"A's\"", s.Data)
	}
}

// TestRevocation checks that revoking a key stops its secret and its
// tokens at once.
func TestRevocation(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.a.creds()
	ta := e.open(t, a, nil).AccessToken
	tb := e.open(t, e.b.creds(), nil).AccessToken
	if err := e.svc.RevokeAPIKey(context.Background(), e.a.id); err != nil {
		t.Fatal(err)
	}
	for name, hdr := range map[string]http.Header{"secret": a, "token": tokenCreds(ta), "bearer": {"Authorization": {"Bearer " + ta}}} {
		r := single(t, e.post(t, hdr, reqBody(t, "session.open_session", nil)), http.StatusUnauthorized)
		if r.Error == nil || r.Error.Code != CodeUnauthenticated {
			t.Errorf("%s of a revoked key: got %+v, want -32001", name, r.Error)
		}
	}
	// Other keys are not affected.
	if !e.active(t, e.b.creds(), tb) || !e.active(t, tokenCreds(tb), tb) {
		t.Errorf("revoking A stopped B")
	}
}

// TestExpiry drives the fake clock past expire_time and past the idle
// timeout: the session is refused at once, before any sweep.
func TestExpiry(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.a.creds()
	short := e.open(t, a, map[string]any{"expires_in": 60}).AccessToken
	idle := e.open(t, a, nil).AccessToken // 30 days, idle timeout 24 h

	e.clk.Add(60 * time.Second)
	if !e.active(t, a, short) {
		t.Fatalf("at expire_time: inactive, want active")
	}
	e.clk.Add(time.Millisecond)
	if e.active(t, a, short) {
		t.Errorf("after expire_time: active, want inactive")
	}
	if err := e.rpcError(t, a, "session.get_session", map[string]any{"token": short}); err.Code != CodeInvalidParams {
		t.Errorf("get after expire_time: got %+v, want -32602", err)
	}
	if r := single(t, e.post(t, tokenCreds(short), reqBody(t, "session.open_session", nil)), http.StatusUnauthorized); r.Error == nil {
		t.Errorf("an expired token authenticated")
	}

	if !e.active(t, a, idle) { // touches it at t0+60.001s
		t.Fatalf("idle session: inactive, want active")
	}
	e.clk.Add(24*time.Hour + time.Millisecond)
	if e.active(t, a, idle) {
		t.Errorf("after the idle timeout: active, want inactive")
	}
}

// failingStore is a memory store whose writes and key reads fail when told
// to: a store outage cannot be produced otherwise.
type failingStore struct {
	*memory.Store
	fail atomic.Bool
}

var errOutage = errors.New("disk /var/lib/sessiond is on fire")

func (s *failingStore) Create(ctx context.Context, sess *sessiond.Session, userMin int) (bool, error) {
	if s.fail.Load() {
		return false, sessiond.Internal(errOutage)
	}
	return s.Store.Create(ctx, sess, userMin)
}

func (s *failingStore) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	if s.fail.Load() {
		return nil, sessiond.Internal(errOutage)
	}
	return s.Store.GetAPIKey(ctx, id)
}

// TestInternalError checks that a store failure is -32603 with a generic
// message, and that its cause is logged once.
func TestInternalError(t *testing.T) {
	store := &failingStore{Store: memory.New()}
	e := newEnvStore(t, store, Options{})
	store.fail.Store(true)

	r := e.call(t, e.a.creds(), "session.open_session", nil)
	if r.Error == nil || r.Error.Code != CodeInternalError || r.Error.Message != "Internal error" || string(r.ID) != "1" {
		t.Errorf("got %+v, want -32603 \"Internal error\"", r.Error)
	}
	if got := strings.Count(e.logs.String(), "on fire"); got != 1 {
		t.Errorf("the cause was logged %d times, want once:\n%s", got, e.logs)
	}

	// Authentication that cannot reach the store (an uncached key) is an
	// HTTP-level failure.
	hdr := http.Header{"Apikey": {"0123456789abcdef0123456789abcdef"}, "Secret": {"x"}}
	r = single(t, e.post(t, hdr, reqBody(t, "session.open_session", nil)), http.StatusInternalServerError)
	if r.Error == nil || r.Error.Code != CodeInternalError || r.Error.Message != "Internal error" {
		t.Errorf("got %+v, want -32603 \"Internal error\"", r.Error)
	}
	if strings.Contains(r.Error.Message, "fire") {
		t.Errorf("the cause reached the client")
	}
}

// FuzzJSONRPC sends arbitrary bodies, authenticated as key A, to a service
// holding one session of A (its token replaces TOKEN in the body). Nothing
// may panic or answer 5xx; every answer is a JSON-RPC response (or 204);
// and when every request of the body was refused, nothing changed.
func FuzzJSONRPC(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `[]`, `[{}]`, `null`, `"x"`, `{"jsonrpc":"2.0"}`,
		`{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"TOKEN"},"id":1}`,
		`{"jsonrpc":"2.0","method":"session.verify_session_token","params":["TOKEN"],"id":"a"}`,
		`{"jsonrpc":"2.0","method":"session.get_session","params":{"token":"TOKEN"},"id":null}`,
		`{"jsonrpc":"2.0","method":"session.store_session_data","params":{"token":"TOKEN","data":{"a":[1,"b",null]}},"id":2}`,
		`{"jsonrpc":"2.0","method":"session.close_session","params":{"token":"TOKEN"},"id":3}`,
		`{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60,"user_id":"u","user_name":"n","data":1},"id":4}`,
		`{"jsonrpc":"2.0","method":"session.open_session","params":[1e400,"u"],"id":5}`,
		`[{"jsonrpc":"2.0","method":"session.close_session","params":{"token":"TOKEN"}},{"jsonrpc":"2.0","method":"x","id":1},5]`,
		`{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"TOKEN","token":"x"},"id":1,"id":2}`,
		`{"jsonrpc":"2.0","method":"session.verify\u005fsession_token","params":{"to\u006ben":"TOKEN"},"id":"\ud800"}`,
		`{"jsonrpc":"2.0","method":"session.store_session_data","params":{"token":"TOKEN","data":[[[[[[[[[[]]]]]]]]]]},"id":1}`,
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := newEnv(t, Options{MaxBatch: 10, BodyLimit: 64 << 10})
		tok := e.open(t, e.a.creds(), map[string]any{"data": "x"}).AccessToken
		body = bytes.ReplaceAll(body, []byte("TOKEN"), []byte(tok))
		before := e.snapshot(t)

		w := e.do(t, http.MethodPost, e.a.creds(), bytes.NewReader(body))
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if w.Code == http.StatusNoContent {
			if w.Body.Len() != 0 {
				t.Fatalf("204 with a body")
			}
			return
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		out := w.Body.Bytes()
		refused := false
		if i := skipSpace(out, 0); i < len(out) && out[i] == '[' {
			var raw []json.RawMessage
			if err := json.Unmarshal(out, &raw); err != nil || len(raw) == 0 {
				t.Fatalf("batch response %q: %v", out, err)
			}
			var entries []json.RawMessage
			json.Unmarshal(body, &entries)
			refused = len(raw) == len(entries)
			for _, r := range raw {
				refused = decodeResponse(t, r).Error != nil && refused
			}
		} else {
			refused = decodeResponse(t, out).Error != nil
		}
		if refused {
			if after := e.snapshot(t); after != before {
				t.Fatalf("refused %q, yet the store changed", body)
			}
		}
	})
}
