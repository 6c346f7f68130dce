package rest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sessiond/internal/httpx/httpxtest"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/api/rest"
	"sessiond/internal/clock"
	"sessiond/internal/httpx"
	"sessiond/store/memory"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type fixture struct {
	t   testing.TB
	svc *sessiond.Service
	clk *clock.Fake
	h   http.Handler
}

func newFixture(t testing.TB, opts rest.Options) *fixture {
	t.Helper()
	clk := clock.NewFake(t0)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{}, nil)
	return &fixture{t: t, svc: svc, clk: clk, h: rest.New(svc, opts)}
}

func (f *fixture) do(method, target, body string) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// sessionJSON mirrors the REST session document; times stay strings so
// that their format is checked.
type sessionJSON struct {
	ID          string          `json:"id"`
	Opened      string          `json:"opened"`
	LastRequest string          `json:"last_request"`
	Address     string          `json:"address"`
	Client      string          `json:"client"`
	User        json.RawMessage `json:"user"`
	Data        json.RawMessage `json:"data"`
	AccessToken string          `json:"access_token"`
}

type errorJSON struct {
	Type          string         `json:"type"`
	Category      string         `json:"category"`
	Code          string         `json:"code"`
	Status        int            `json:"status"`
	Message       string         `json:"message"`
	CorrelationID string         `json:"correlation_id"`
	Details       map[string]any `json:"details"`
}

func noContent(t testing.TB, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("status %d body %q, want 204 and no body", w.Code, w.Body)
	}
}

// open opens a session for user u through the API.
func (f *fixture) open(user, address, client string) sessionJSON {
	f.t.Helper()
	body := `{"user":{"id":"` + user + `","name":"Name of ` + user + `"},"address":"` + address + `","client":"` + client + `","data":{"n":1}}`
	return httpxtest.DecodeAs[sessionJSON](f.t, f.do("POST", "/sessions", body), http.StatusCreated)
}

func snapshot(t testing.TB, svc *sessiond.Service) []*sessiond.Session {
	t.Helper()
	page, err := svc.Store().List(context.Background(), sessiond.Filter{}, sessiond.Paging{Take: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return page.Data
}

func stored(t testing.TB, svc *sessiond.Service, id string) *sessiond.Session {
	t.Helper()
	s, err := svc.Store().Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ts(d time.Duration) string { return httpx.FormatTime(t0.Add(d)) }

func equalJSON(t testing.TB, name string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s is not JSON: %v", name, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", name, got, want)
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantName string
		wantData string
	}{
		{name: "full", body: `{"user":{"id":"u1","name":"Ann","roles":["admin"]},"address":"10.0.0.1","client":"web","data":{"cart":[]}}`,
			wantName: "Ann", wantData: `{"cart":[]}`},
		{name: "no name, data not an object", body: `{"user":{"id":"u1"},"address":"10.0.0.1","client":"web","data":"text"}`,
			wantData: `"text"`},
		{name: "no data", body: `{"user":{"id":"u1","name":null},"address":"10.0.0.1","client":"web"}`, wantData: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, rest.Options{})
			w := f.do("POST", "/sessions", tt.body)
			got := httpxtest.DecodeAs[sessionJSON](t, w, http.StatusCreated)
			if got.ID == "" || len(got.AccessToken) < 22 {
				t.Fatalf("opened %+v, want an id and a token", got)
			}
			if got, want := w.Header().Get("Location"), "/sessions/u1?session_id="+got.ID; got != want {
				t.Errorf("Location = %q, want %q", got, want)
			}
			want := sessionJSON{ID: got.ID, Opened: ts(0), LastRequest: ts(0), Address: "10.0.0.1", Client: "web", AccessToken: got.AccessToken}
			var userIn struct{ User json.RawMessage }
			json.Unmarshal([]byte(tt.body), &userIn)
			equalJSON(t, "user", got.User, string(userIn.User))
			equalJSON(t, "data", got.Data, tt.wantData)
			got.User, got.Data = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("opened\n got %+v\nwant %+v", got, want)
			}
			// The model keeps user.id and user.name as user_id and
			// user_name, the whole object as user, and the token's hash.
			s := stored(t, f.svc, got.ID)
			if s.UserID != "u1" || s.UserName != tt.wantName || !s.Active {
				t.Errorf("stored user_id %q user_name %q active %v, want u1 %q true", s.UserID, s.UserName, s.Active, tt.wantName)
			}
			equalJSON(t, "stored user", s.User, string(userIn.User))
			if !sessiond.SecretMatches(got.AccessToken, s.TokenHash) {
				t.Error("stored token hash does not match access_token")
			}
		})
	}
}

func TestGetList(t *testing.T) {
	f := newFixture(t, rest.Options{})
	a := f.open("u1", "10.0.0.1", "web")
	f.clk.Add(time.Minute)
	closed := f.open("u1", "10.0.0.1", "web")
	f.clk.Add(time.Minute)
	b := f.open("u1", "10.0.0.2", "mobile")
	f.clk.Add(time.Minute)
	f.open("u2", "10.0.0.1", "web")
	noContent(t, f.do("DELETE", "/sessions/u1?session_id="+closed.ID, ""))

	got := httpxtest.DecodeAs[[]sessionJSON](t, f.do("GET", "/sessions/u1", ""), http.StatusOK)
	ids := []string{}
	for _, s := range got {
		ids = append(ids, s.ID)
		if s.AccessToken != "" {
			t.Errorf("list shows the access token of %s", s.ID)
		}
	}
	if want := []string{b.ID, a.ID}; !reflect.DeepEqual(ids, want) {
		t.Errorf("open sessions of u1 = %v, want %v (newest first, closed ones left out)", ids, want)
	}
	equalJSON(t, "data", got[0].Data, `{"n":1}`)

	// A dead session (idle past the timeout, not yet swept) is not open.
	f.clk.Add(24 * time.Hour) // a and b are now more than 24h idle
	c := f.open("u1", "10.0.0.3", "cli")
	got = httpxtest.DecodeAs[[]sessionJSON](t, f.do("GET", "/sessions/u1", ""), http.StatusOK)
	if len(got) != 1 || got[0].ID != c.ID {
		t.Errorf("after the idle timeout: %+v, want only the new session", got)
	}

	// A user without sessions gets an empty array, not null.
	w := f.do("GET", "/sessions/nobody", "")
	if got := httpxtest.DecodeAs[[]sessionJSON](t, w, http.StatusOK); got == nil || len(got) != 0 {
		t.Errorf("body %s, want []", w.Body)
	}
}

func TestGetListPagesThroughEverything(t *testing.T) {
	clk := clock.NewFake(t0)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{MaxTake: 2}, nil)
	f := &fixture{t: t, svc: svc, clk: clk, h: rest.New(svc, rest.Options{})}
	for range 5 {
		f.open("u1", "a", "c")
	}
	if got := httpxtest.DecodeAs[[]sessionJSON](t, f.do("GET", "/sessions/u1", ""), http.StatusOK); len(got) != 5 {
		t.Errorf("got %d sessions, want all 5 across pages of 2", len(got))
	}
	noContent(t, f.do("DELETE", "/sessions/u1", ""))
	if got := httpxtest.DecodeAs[[]sessionJSON](t, f.do("GET", "/sessions/u1", ""), http.StatusOK); len(got) != 0 {
		t.Errorf("after closing all: %d open, want 0", len(got))
	}
}

func TestGetOne(t *testing.T) {
	f := newFixture(t, rest.Options{})
	mine := f.open("u1", "10.0.0.1", "web")
	other := f.open("u2", "10.0.0.1", "web")
	closed := f.open("u1", "10.0.0.1", "web")
	noContent(t, f.do("DELETE", "/sessions/u1?session_id="+closed.ID, ""))
	f.clk.Add(time.Minute)

	got := httpxtest.DecodeAs[sessionJSON](t, f.do("GET", "/sessions/u1?session_id="+mine.ID, ""), http.StatusOK)
	want := mine
	want.AccessToken = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n %+v\nwant %+v", got, want)
	}
	tests := []struct{ name, target string }{
		{"another user's session", "/sessions/u1?session_id=" + other.ID},
		{"unknown session", "/sessions/u1?session_id=0123456789abcdef0123456789abcdef"},
		{"closed session", "/sessions/u1?session_id=" + closed.ID},
		{"unknown user", "/sessions/nobody?session_id=" + mine.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := httpxtest.DecodeAs[errorJSON](t, f.do("GET", tt.target, ""), http.StatusNotFound)
			checkDescription(t, e, 404, "SESSION_NOT_FOUND")
		})
	}
}

func TestStoreData(t *testing.T) {
	f := newFixture(t, rest.Options{})
	s := f.open("u1", "10.0.0.1", "web")
	f.clk.Add(5 * time.Minute)

	noContent(t, f.do("POST", "/sessions/u1?session_id="+s.ID, `{"data":{"step":2}}`))
	got := stored(t, f.svc, s.ID)
	equalJSON(t, "data", got.Data, `{"step":2}`)
	if !got.RequestTime.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("request_time = %v, want %v", got.RequestTime, t0.Add(5*time.Minute))
	}
	doc := httpxtest.DecodeAs[sessionJSON](t, f.do("GET", "/sessions/u1?session_id="+s.ID, ""), http.StatusOK)
	if doc.LastRequest != ts(5*time.Minute) {
		t.Errorf("last_request = %s, want %s", doc.LastRequest, ts(5*time.Minute))
	}
	// Any JSON value, with a JSON Content-Type or none; null clears it.
	noContent(t, f.do("POST", "/sessions/u1?session_id="+s.ID, `{"data":[1,2]}`))
	equalJSON(t, "data", stored(t, f.svc, s.ID).Data, `[1,2]`)
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/merge-patch+json"} {
		r := httptest.NewRequest("POST", "/sessions/u1?session_id="+s.ID, strings.NewReader(`{"data":"`+ct+`"}`))
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		noContent(t, w)
	}
	noContent(t, f.do("POST", "/sessions/u1?session_id="+s.ID, `{"data":null}`))
	if d := stored(t, f.svc, s.ID).Data; d != nil {
		t.Errorf("data = %s, want null", d)
	}
}

// TestDataLimit checks the Service's limit on user and data together, in
// this dialect's words: 413 with an ErrorDescription.
func TestDataLimit(t *testing.T) {
	svc := sessiond.NewService(memory.New(), clock.NewFake(t0), sessiond.Config{DataLimit: 100}, nil)
	f := &fixture{t: t, svc: svc, h: rest.New(svc, rest.Options{})}
	big := `"` + strings.Repeat("x", 100) + `"`
	e := httpxtest.DecodeAs[errorJSON](t, f.do("POST", "/sessions", `{"user":{"id":"u1"},"data":`+big+`}`), 413)
	checkDescription(t, e, 413, "BODY_TOO_LARGE")
	s := f.open("u1", "a", "c")
	e = httpxtest.DecodeAs[errorJSON](t, f.do("POST", "/sessions/u1?session_id="+s.ID, `{"data":`+big+`}`), 413)
	checkDescription(t, e, 413, "BODY_TOO_LARGE")
}

func TestStoreDataRefused(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(f *fixture, mine, other string) string // returns the target
		status  int
		code    string
	}{
		{"another user's session", func(f *fixture, mine, other string) string { return "/sessions/u1?session_id=" + other }, 404, "SESSION_NOT_FOUND"},
		{"unknown session", func(f *fixture, mine, other string) string {
			return "/sessions/u1?session_id=0123456789abcdef0123456789abcdef"
		}, 404, "SESSION_NOT_FOUND"},
		{"closed session", func(f *fixture, mine, other string) string {
			noContent(f.t, f.do("DELETE", "/sessions/u1?session_id="+mine, ""))
			return "/sessions/u1?session_id=" + mine
		}, 400, "SESSION_CLOSED"},
		{"idle past the timeout", func(f *fixture, mine, other string) string {
			f.clk.Add(24*time.Hour + time.Millisecond)
			return "/sessions/u1?session_id=" + mine
		}, 400, "SESSION_CLOSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, rest.Options{})
			mine, other := f.open("u1", "a", "c").ID, f.open("u2", "a", "c").ID
			target := tt.prepare(f, mine, other)
			before := snapshot(t, f.svc)
			e := httpxtest.DecodeAs[errorJSON](t, f.do("POST", target, `{"data":{"evil":true}}`), tt.status)
			checkDescription(t, e, tt.status, tt.code)
			if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
				t.Error("a refused store changed the store")
			}
		})
	}
}

func TestCloseOne(t *testing.T) {
	f := newFixture(t, rest.Options{})
	mine := f.open("u1", "a", "c")
	other := f.open("u2", "a", "c")
	f.clk.Add(time.Minute)

	noContent(t, f.do("DELETE", "/sessions/u1?session_id="+mine.ID, ""))
	s := stored(t, f.svc, mine.ID)
	if s.Active || !s.CloseTime.Equal(t0.Add(time.Minute)) || s.Data != nil || s.User != nil {
		t.Errorf("closed session %+v, want inactive, closed now, user and data cleared", s)
	}
	// Closing it again is not an error.
	noContent(t, f.do("DELETE", "/sessions/u1?session_id="+mine.ID, ""))

	before := snapshot(t, f.svc)
	for _, target := range []string{
		"/sessions/u1?session_id=" + other.ID,
		"/sessions/u1?session_id=0123456789abcdef0123456789abcdef",
	} {
		e := httpxtest.DecodeAs[errorJSON](t, f.do("DELETE", target, ""), http.StatusNotFound)
		checkDescription(t, e, 404, "SESSION_NOT_FOUND")
	}
	if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
		t.Error("a refused close changed the store")
	}
}

func TestCloseMatching(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  []string // labels of the sessions left open
	}{
		{"all of the user's", "", []string{"u2-web"}},
		{"by address", "?address=10.0.0.1", []string{"u1-b-web", "u1-b-mobile", "u2-web"}},
		{"by client", "?client=web", []string{"u1-a-mobile", "u1-b-mobile", "u2-web"}},
		{"by address and client", "?address=10.0.0.2&client=mobile", []string{"u1-a-web", "u1-a-mobile", "u1-b-web", "u2-web"}},
		{"empty filters match any", "?address=&client=", []string{"u2-web"}},
		{"nothing matches", "?client=tv", []string{"u1-a-web", "u1-a-mobile", "u1-b-web", "u1-b-mobile", "u2-web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, rest.Options{})
			label := map[string]string{}
			for _, s := range []struct{ user, addr, client, label string }{
				{"u1", "10.0.0.1", "web", "u1-a-web"},
				{"u1", "10.0.0.1", "mobile", "u1-a-mobile"},
				{"u1", "10.0.0.2", "web", "u1-b-web"},
				{"u1", "10.0.0.2", "mobile", "u1-b-mobile"},
				{"u2", "10.0.0.1", "web", "u2-web"},
			} {
				label[f.open(s.user, s.addr, s.client).ID] = s.label
			}
			noContent(t, f.do("DELETE", "/sessions/u1"+tt.query, ""))
			open := map[string]bool{}
			for _, s := range snapshot(t, f.svc) {
				if s.Active {
					open[label[s.ID]] = true
				}
			}
			want := map[string]bool{}
			for _, l := range tt.want {
				want[l] = true
			}
			if !reflect.DeepEqual(open, want) {
				t.Errorf("open after DELETE = %v, want %v", open, want)
			}
		})
	}
}

// TestBadInput sends malformed, wrongly typed, oversized and misrouted
// requests: each gets the right 4xx as an ErrorDescription and changes
// nothing.
func TestBadInput(t *testing.T) {
	const limit = 4096
	deepInData := `{"user":{"id":"u9"},"data":` + strings.Repeat(`[`, 1000) + strings.Repeat(`]`, 1000) + `}`
	tests := []struct {
		name   string
		method string
		target string
		body   string
		status int
		code   string
		allow  string
		ctype  string // Content-Type, when set
	}{
		{name: "open with invalid JSON", method: "POST", target: "/sessions", body: `{"user":`, status: 400, code: "INVALID_JSON"},
		{name: "open with bad JSON in data", method: "POST", target: "/sessions", body: `{"user":{"id":"u9"},"data":{bad}}`, status: 400, code: "INVALID_JSON"},
		{name: "open with an array body", method: "POST", target: "/sessions", body: `[]`, status: 400, code: "BAD_REQUEST"},
		{name: "open with a string body", method: "POST", target: "/sessions", body: `"x"`, status: 400, code: "BAD_REQUEST"},
		{name: "open with a null body", method: "POST", target: "/sessions", body: `null`, status: 400, code: "BAD_REQUEST"},
		{name: "open with an empty body", method: "POST", target: "/sessions", body: ``, status: 400, code: "MISSING_PARAMETER"},
		{name: "open without user", method: "POST", target: "/sessions", body: `{"address":"a"}`, status: 400, code: "MISSING_PARAMETER"},
		{name: "open with null user", method: "POST", target: "/sessions", body: `{"user":null}`, status: 400, code: "MISSING_PARAMETER"},
		{name: "open with user a string", method: "POST", target: "/sessions", body: `{"user":"u9"}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open with user an array", method: "POST", target: "/sessions", body: `{"user":["u9"]}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open without user.id", method: "POST", target: "/sessions", body: `{"user":{"name":"Ann"}}`, status: 400, code: "MISSING_PARAMETER"},
		{name: "open with user.id a number", method: "POST", target: "/sessions", body: `{"user":{"id":5}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open with user.name an object", method: "POST", target: "/sessions", body: `{"user":{"id":"u9","name":{}}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open with address a number", method: "POST", target: "/sessions", body: `{"user":{"id":"u9"},"address":5}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open with a huge body", method: "POST", target: "/sessions", body: `{"user":{"id":"u9"},"data":"` + strings.Repeat("x", limit) + `"}`, status: 413, code: "BODY_TOO_LARGE"},
		{name: "open with deep nesting", method: "POST", target: "/sessions", body: strings.Repeat("[", limit-1), status: 400, code: "INVALID_JSON"},
		{name: "open with deep nesting in data", method: "POST", target: "/sessions", body: deepInData, status: 400, code: "INVALID_JSON"},
		{name: "open with non-UTF-8", method: "POST", target: "/sessions", body: "{\"user\":{\"id\":\"\xff\"}}", status: 400, code: "INVALID_JSON"},
		{name: "store with invalid JSON", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `{"data":`, status: 400, code: "INVALID_JSON"},
		{name: "store with bad JSON in data", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `{"data":{'a':1}}`, status: 400, code: "INVALID_JSON"},
		{name: "store with an array body", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `[{"data":1}]`, status: 400, code: "BAD_REQUEST"},
		{name: "store with a null body", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `null`, status: 400, code: "BAD_REQUEST"},
		{name: "store with a huge body", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `{"data":"` + strings.Repeat("x", limit) + `"}`, status: 413, code: "BODY_TOO_LARGE"},
		{name: "store with deep nesting", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `{"data":` + strings.Repeat("[", 2000) + `}`, status: 400, code: "INVALID_JSON"},
		{name: "store with non-UTF-8", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: "{\"data\":\"\xc3\x28\"}", status: 400, code: "INVALID_JSON"},
		{name: "store with an empty body", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: ``, status: 400, code: "MISSING_PARAMETER"},
		{name: "store without data", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `{}`, status: 400, code: "MISSING_PARAMETER"},
		{name: "store with a text/plain body", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `{"data":1}`, ctype: "text/plain", status: 400, code: "BAD_REQUEST"},
		{name: "store with a form body", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `data=1`, ctype: "application/x-www-form-urlencoded", status: 400, code: "BAD_REQUEST"},
		{name: "store with a lone surrogate", method: "POST", target: "/sessions/u1?session_id=$OPEN", body: `{"data":"\udc00"}`, status: 400, code: "INVALID_JSON"},
		{name: "open with a text/plain body", method: "POST", target: "/sessions", body: `{"user":{"id":"u9"}}`, ctype: "text/plain; charset=utf-8", status: 400, code: "BAD_REQUEST"},
		{name: "open with a broken Content-Type", method: "POST", target: "/sessions", body: `{"user":{"id":"u9"}}`, ctype: "application/json; =", status: 400, code: "BAD_REQUEST"},
		{name: "open with a lone surrogate in user", method: "POST", target: "/sessions", body: `{"user":{"id":"u\ud800"}}`, status: 400, code: "INVALID_JSON"},
		{name: "store without session_id", method: "POST", target: "/sessions/u1", body: `{"data":1}`, status: 400, code: "MISSING_PARAMETER"},
		{name: "store with empty session_id", method: "POST", target: "/sessions/u1?session_id=", body: `{"data":1}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "store with two session_ids", method: "POST", target: "/sessions/u1?session_id=$OPEN&session_id=$CLOSED", body: `{"data":1}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "store into another user's session", method: "POST", target: "/sessions/u2?session_id=$OPEN", body: `{"data":1}`, status: 404, code: "SESSION_NOT_FOUND"},
		{name: "store into a closed session", method: "POST", target: "/sessions/u1?session_id=$CLOSED", body: `{"data":1}`, status: 400, code: "SESSION_CLOSED"},
		{name: "store into an unknown session", method: "POST", target: "/sessions/u1?session_id=nope", body: `{"data":1}`, status: 404, code: "SESSION_NOT_FOUND"},
		{name: "close with empty session_id", method: "DELETE", target: "/sessions/u1?session_id=", status: 400, code: "INVALID_PARAMETER"},
		{name: "close with a broken query", method: "DELETE", target: "/sessions/u1?session_id=%zz", status: 400, code: "INVALID_PARAMETER"},
		{name: "close with a non-UTF-8 session_id", method: "DELETE", target: "/sessions/u1?session_id=%ff", status: 400, code: "INVALID_PARAMETER"},
		{name: "close with a non-UTF-8 address", method: "DELETE", target: "/sessions/u1?address=%c3%28", status: 400, code: "INVALID_PARAMETER"},
		{name: "close another user's session", method: "DELETE", target: "/sessions/u2?session_id=$OPEN", status: 404, code: "SESSION_NOT_FOUND"},
		{name: "get with a non-UTF-8 user_id", method: "GET", target: "/sessions/%ff", status: 400, code: "INVALID_PARAMETER"},
		{name: "get with empty session_id", method: "GET", target: "/sessions/u1?session_id=", status: 400, code: "INVALID_PARAMETER"},
		{name: "PUT a user's sessions", method: "PUT", target: "/sessions/u1", body: `{}`, status: 405, code: "METHOD_NOT_ALLOWED", allow: "GET, HEAD, POST, DELETE"},
		{name: "PATCH a user's sessions", method: "PATCH", target: "/sessions/u1?session_id=$OPEN", body: `{"data":1}`, status: 405, code: "METHOD_NOT_ALLOWED", allow: "GET, HEAD, POST, DELETE"},
		{name: "GET all sessions", method: "GET", target: "/sessions", status: 405, code: "METHOD_NOT_ALLOWED", allow: "POST"},
		{name: "DELETE all sessions", method: "DELETE", target: "/sessions", status: 405, code: "METHOD_NOT_ALLOWED", allow: "POST"},
		{name: "a path below a user", method: "GET", target: "/sessions/u1/extra", status: 404, code: "NOT_FOUND"},
		{name: "DELETE below a user", method: "DELETE", target: "/sessions/u1/x", status: 404, code: "NOT_FOUND"},
		{name: "no user", method: "DELETE", target: "/sessions/", status: 404, code: "NOT_FOUND"},
		{name: "another path", method: "GET", target: "/users", status: 404, code: "NOT_FOUND"},
	}
	f := newFixture(t, rest.Options{BodyLimit: limit})
	openID := f.open("u1", "10.0.0.1", "web").ID
	closedID := f.open("u1", "10.0.0.1", "web").ID
	noContent(t, f.do("DELETE", "/sessions/u1?session_id="+closedID, ""))
	before := snapshot(t, f.svc)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := strings.NewReplacer("$OPEN", openID, "$CLOSED", closedID).Replace(tt.target)
			r := httptest.NewRequest(tt.method, target, strings.NewReader(tt.body))
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			e := httpxtest.DecodeAs[errorJSON](t, w, tt.status)
			checkDescription(t, e, tt.status, tt.code)
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
				t.Error("refused request changed the store")
			}
		})
	}
}

func TestDeepNestingAtDefaultLimit(t *testing.T) {
	f := newFixture(t, rest.Options{})
	id := f.open("u1", "a", "c").ID
	before := snapshot(t, f.svc)
	for _, req := range []struct{ target, body string }{
		{"/sessions", strings.Repeat("[", 100_000)},
		{"/sessions/u1?session_id=" + id, `{"data":` + strings.Repeat("{\"a\":", 100_000) + `}`},
	} {
		e := httpxtest.DecodeAs[errorJSON](t, f.do("POST", req.target, req.body), http.StatusBadRequest)
		checkDescription(t, e, 400, "INVALID_JSON")
	}
	if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
		t.Error("refused request changed the store")
	}
}

func TestCorrelationID(t *testing.T) {
	f := newFixture(t, rest.Options{})
	r := httptest.NewRequest("GET", "/sessions/u1?session_id=nope&correlation_id=c-42", nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if e := httpxtest.DecodeAs[errorJSON](t, w, http.StatusNotFound); e.CorrelationID != "c-42" {
		t.Errorf("correlation_id = %q, want c-42", e.CorrelationID)
	}
	r = httptest.NewRequest("GET", "/sessions/u1?session_id=nope", nil)
	r.Header.Set("X-Correlation-Id", "h-7")
	w = httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if e := httpxtest.DecodeAs[errorJSON](t, w, http.StatusNotFound); e.CorrelationID != "h-7" {
		t.Errorf("correlation_id = %q, want h-7", e.CorrelationID)
	}
}

func checkDescription(t testing.TB, e errorJSON, status int, code string) {
	t.Helper()
	wantCategory := map[int]string{400: "BadRequest", 404: "NotFound", 405: "Unsupported", 413: "BadRequest", 500: "Internal"}[status]
	if e.Status != status || e.Code != code || e.Category != wantCategory || e.Type != wantCategory+"Exception" {
		t.Errorf("error = %+v, want status %d code %s category %s", e, status, code, wantCategory)
	}
	if e.Message == "" || len(e.Message) > 300 {
		t.Errorf("message = %q, want a short explanation", e.Message)
	}
}

// largestWrite records the largest single Write an answer was given in.
type largestWrite struct {
	*httptest.ResponseRecorder
	max int
}

func (w *largestWrite) Write(b []byte) (int, error) {
	w.max = max(w.max, len(b))
	return w.ResponseRecorder.Write(b)
}

// TestGetListStreamed lists 200 sessions holding 60 KB of data each
// (12 MB): the list is written out in pieces, never whole.
func TestGetListStreamed(t *testing.T) {
	f := newFixture(t, rest.Options{})
	data := `"` + strings.Repeat("d", 60<<10) + `"`
	for range 200 {
		httpxtest.DecodeAs[sessionJSON](t, f.do("POST", "/sessions", `{"user":{"id":"u1"},"data":`+data+`}`), http.StatusCreated)
	}
	w := &largestWrite{ResponseRecorder: httptest.NewRecorder()}
	f.h.ServeHTTP(w, httptest.NewRequest("GET", "/sessions/u1", nil))
	list := httpxtest.DecodeAs[[]sessionJSON](t, w.ResponseRecorder, http.StatusOK)
	if len(list) != 200 {
		t.Fatalf("got %d sessions, want 200", len(list))
	}
	if w.max > 256<<10 {
		t.Errorf("list of %d bytes written with a write of %d bytes, want at most 256 KiB", w.Body.Len(), w.max)
	}
}
