package commandable_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"runtime"
	"sessiond/internal/httpx/httpxtest"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/api/commandable"
	"sessiond/internal/clock"
	"sessiond/internal/httpx"
	"sessiond/store/memory"
)

// t0 is the fake clock's start; every expected time derives from it.
var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// fixture is one handler over a real Service on the in-memory engine with
// a fake clock.
type fixture struct {
	t   testing.TB
	svc *sessiond.Service
	clk *clock.Fake
	h   http.Handler
}

func newFixture(t testing.TB, opts commandable.Options) *fixture {
	t.Helper()
	clk := clock.NewFake(t0)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{}, nil)
	return &fixture{t: t, svc: svc, clk: clk, h: commandable.New(svc, opts)}
}

// call POSTs body to the command and returns the recorded answer.
func (f *fixture) call(command, body string) *httptest.ResponseRecorder {
	return f.do(http.MethodPost, "/v1/sessions/"+command, body, nil)
}

func (f *fixture) do(method, target, body string, header http.Header) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// sessionJSON mirrors SessionV1 on the wire; times stay strings so that
// their exact format is checked.
type sessionJSON struct {
	ID          string          `json:"id"`
	UserID      string          `json:"user_id"`
	UserName    string          `json:"user_name"`
	Active      bool            `json:"active"`
	OpenTime    *string         `json:"open_time"`
	RequestTime *string         `json:"request_time"`
	CloseTime   *string         `json:"close_time"`
	ExpireTime  *string         `json:"expire_time"`
	Address     string          `json:"address"`
	Client      string          `json:"client"`
	User        json.RawMessage `json:"user"`
	Data        json.RawMessage `json:"data"`
	AccessToken string          `json:"access_token"`
}

type pageJSON struct {
	Total *int64        `json:"total"`
	Data  []sessionJSON `json:"data"`
}

// errorJSON is the Pip.Services ErrorDescription.
type errorJSON struct {
	Type          string         `json:"type"`
	Category      string         `json:"category"`
	Code          string         `json:"code"`
	Status        int            `json:"status"`
	Message       string         `json:"message"`
	CorrelationID string         `json:"correlation_id"`
	Details       map[string]any `json:"details"`
}

// open opens a session through the API and returns it.
func (f *fixture) open(body string) sessionJSON {
	f.t.Helper()
	return httpxtest.DecodeAs[sessionJSON](f.t, f.call("open_session", body), http.StatusOK)
}

// snapshot returns every stored session, for before/after comparisons.
func snapshot(t testing.TB, svc *sessiond.Service) []*sessiond.Session {
	t.Helper()
	page, err := svc.Store().List(context.Background(), sessiond.Filter{}, sessiond.Paging{Take: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return page.Data
}

func ts(d time.Duration) string { return httpx.FormatTime(t0.Add(d)) }

func strp(s string) *string { return &s }

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

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestOpenSession(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantExpire *string
		wantUser   string
		wantData   string
	}{
		{name: "all fields", body: `{"user_id":"u1","user_name":"Ann","address":"10.0.0.1","client":"web",
			"user":{"id":"u1","roles":["admin"]},"data":{"cart":[1,2]},"expires_in":3600}`,
			wantExpire: strp(ts(time.Hour)), wantUser: `{"id":"u1","roles":["admin"]}`, wantData: `{"cart":[1,2]}`},
		{name: "expires_in as string", body: `{"user_id":"u1","user_name":"Ann","address":"10.0.0.1","client":"web","expires_in":"60"}`,
			wantExpire: strp(ts(time.Minute)), wantUser: `null`, wantData: `null`},
		{name: "expires_in empty and data not an object", body: `{"user_id":"u1","user_name":"Ann","address":"10.0.0.1","client":"web",
			"user":"plain","data":[1,"two",null],"expires_in":""}`, wantUser: `"plain"`, wantData: `[1,"two",null]`},
		{name: "go client style nulls", body: `{"user_id":"u1","user_name":"Ann","address":"10.0.0.1","client":"web","user":null,"data":null}`,
			wantUser: `null`, wantData: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, commandable.Options{})
			got := f.open(tt.body)
			if !hexID.MatchString(got.ID) {
				t.Errorf("id = %q, want 32 lowercase hex characters", got.ID)
			}
			if len(got.AccessToken) < 22 {
				t.Errorf("access_token = %q, want a 128-bit secret", got.AccessToken)
			}
			want := sessionJSON{ID: got.ID, UserID: "u1", UserName: "Ann", Active: true,
				OpenTime: strp(ts(0)), RequestTime: strp(ts(0)), ExpireTime: tt.wantExpire,
				Address: "10.0.0.1", Client: "web", AccessToken: got.AccessToken}
			equalJSON(t, "user", got.User, tt.wantUser)
			equalJSON(t, "data", got.Data, tt.wantData)
			got.User, got.Data = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("opened\n got %+v\nwant %+v", got, want)
			}
			// The token is stored only as its hash, and that hash matches.
			stored, err := f.svc.Store().Get(context.Background(), got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !sessiond.SecretMatches(got.AccessToken, stored.TokenHash) {
				t.Error("stored token hash does not match access_token")
			}
		})
	}
}

func TestOpenSessionEmptyBody(t *testing.T) {
	// An empty body means {}: a session with no user, as the Go client
	// may send for a command without parameters.
	f := newFixture(t, commandable.Options{})
	got := f.open("")
	if got.UserID != "" || !got.Active || got.AccessToken == "" {
		t.Errorf("opened %+v, want an active session without user", got)
	}
}

func TestGetSessionByID(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	opened := f.open(`{"user_id":"u1","user_name":"Ann","data":{"k":"v"}}`)
	f.clk.Add(time.Minute)

	got := httpxtest.DecodeAs[sessionJSON](t, f.call("get_session_by_id", `{"session_id":"`+opened.ID+`"}`), http.StatusOK)
	if got.AccessToken != "" {
		t.Errorf("access_token = %q, want it shown only at open", got.AccessToken)
	}
	want := opened
	want.AccessToken = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n %+v\nwant %+v", got, want)
	}

	for _, tt := range []struct{ name, body string }{
		{"unknown id", `{"session_id":"0123456789abcdef0123456789abcdef"}`},
		{"not an id at all", `{"session_id":"../../etc/passwd"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := f.call("get_session_by_id", tt.body)
			if got, want := w.Code, http.StatusNoContent; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if w.Body.Len() != 0 {
				t.Errorf("body = %q, want empty", w.Body)
			}
		})
	}
}

func TestGetSessions(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	// Five sessions a minute apart (a newest first order is a real order),
	// one of them closed.
	a := f.open(`{"user_id":"u1","user_name":"Ann","address":"10.0.0.1","client":"web"}`)
	f.clk.Add(time.Minute)
	b := f.open(`{"user_id":"u1","user_name":"Ann","address":"10.0.0.2","client":"mobile"}`)
	f.clk.Add(time.Minute)
	c := f.open(`{"user_id":"u2","user_name":"Bob","address":"10.0.0.1","client":"web"}`)
	f.clk.Add(time.Minute)
	d := f.open(`{"user_id":"u3","user_name":"Cyd","address":"10.0.0.3","client":"cli"}`)
	f.clk.Add(time.Minute)
	e := f.open(`{"user_id":"u1","user_name":"Ann","address":"10.0.0.1","client":"web"}`)
	f.call("close_session", `{"session_id":"`+d.ID+`"}`)
	f.clk.Add(time.Minute)

	all := []string{e.ID, d.ID, c.ID, b.ID, a.ID}
	tests := []struct {
		name      string
		body      string
		wantIDs   []string
		wantTotal *int64
	}{
		{name: "empty body", body: ``, wantIDs: all},
		{name: "empty object", body: `{}`, wantIDs: all},
		{name: "null filter and paging", body: `{"filter":null,"paging":null}`, wantIDs: all},
		{name: "user_id", body: `{"filter":{"user_id":"u1"}}`, wantIDs: []string{e.ID, b.ID, a.ID}},
		{name: "active as JSON", body: `{"filter":{"active":true}}`, wantIDs: []string{e.ID, c.ID, b.ID, a.ID}},
		{name: "active as string", body: `{"filter":{"active":"true"}}`, wantIDs: []string{e.ID, c.ID, b.ID, a.ID}},
		{name: "inactive as string", body: `{"filter":{"active":"false"}}`, wantIDs: []string{d.ID}},
		{name: "address and client", body: `{"filter":{"address":"10.0.0.1","client":"web"}}`, wantIDs: []string{e.ID, c.ID, a.ID}},
		{name: "search", body: `{"filter":{"search":"BOB"}}`, wantIDs: []string{c.ID}},
		{name: "from_time with offset", body: `{"filter":{"from_time":"2026-11-22T12:02:00+02:00"}}`, wantIDs: []string{e.ID, d.ID, c.ID}},
		{name: "to_time whole seconds", body: `{"filter":{"to_time":"2026-11-22T10:01:00Z"}}`, wantIDs: []string{b.ID, a.ID}},
		{name: "time range", body: `{"filter":{"from_time":"2026-11-22T10:01:00.000Z","to_time":"2026-11-22T10:03:00Z"}}`,
			wantIDs: []string{d.ID, c.ID, b.ID}},
		{name: "unknown filter keys ignored", body: `{"filter":{"colour":"blue","user_id":"u2"}}`, wantIDs: []string{c.ID}},
		{name: "go client style: every value a string, unset ones empty",
			body:    `{"filter":{"user_id":"u1","active":"","address":"","client":"","search":"","from_time":"","to_time":""},"paging":{"skip":"","take":"","total":""}}`,
			wantIDs: []string{e.ID, b.ID, a.ID}},
		{name: "go client paging", body: `{"filter":{},"paging":{"skip":0,"take":50,"total":false}}`, wantIDs: all},
		{name: "skip and take as numbers", body: `{"paging":{"skip":1,"take":2}}`, wantIDs: []string{d.ID, c.ID}},
		{name: "skip and take as strings", body: `{"paging":{"skip":"1","take":"2"}}`, wantIDs: []string{d.ID, c.ID}},
		{name: "take zero is the default", body: `{"paging":{"take":0}}`, wantIDs: all},
		{name: "take null is the default", body: `{"paging":{"take":null}}`, wantIDs: all},
		{name: "skip past the end", body: `{"paging":{"skip":"20","total":true}}`, wantIDs: []string{}, wantTotal: ptr64(5)},
		{name: "total as JSON", body: `{"filter":{"user_id":"u1"},"paging":{"take":1,"total":true}}`, wantIDs: []string{e.ID}, wantTotal: ptr64(3)},
		{name: "total as string", body: `{"filter":{"user_id":"u1"},"paging":{"take":"1","total":"true"}}`, wantIDs: []string{e.ID}, wantTotal: ptr64(3)},
		{name: "total false", body: `{"paging":{"total":"false"}}`, wantIDs: all},
		{name: "no match", body: `{"filter":{"user_id":"nobody"},"paging":{"total":true}}`, wantIDs: []string{}, wantTotal: ptr64(0)},
		// The leniency of Pip.Services' converters, which its clients rely on.
		{name: "integral floats", body: `{"paging":{"skip":1.0,"take":2.0}}`, wantIDs: []string{d.ID, c.ID}},
		{name: "integral floats as strings", body: `{"paging":{"skip":"1.0","take":"2e0"}}`, wantIDs: []string{d.ID, c.ID}},
		{name: "active t", body: `{"filter":{"active":"t"}}`, wantIDs: []string{e.ID, c.ID, b.ID, a.ID}},
		{name: "active Yes", body: `{"filter":{"active":"Yes"}}`, wantIDs: []string{e.ID, c.ID, b.ID, a.ID}},
		{name: "active Y", body: `{"filter":{"active":"Y"}}`, wantIDs: []string{e.ID, c.ID, b.ID, a.ID}},
		{name: "active 1", body: `{"filter":{"active":1}}`, wantIDs: []string{e.ID, c.ID, b.ID, a.ID}},
		{name: "active F", body: `{"filter":{"active":"F"}}`, wantIDs: []string{d.ID}},
		{name: "active no", body: `{"filter":{"active":"no"}}`, wantIDs: []string{d.ID}},
		{name: "active N", body: `{"filter":{"active":"N"}}`, wantIDs: []string{d.ID}},
		{name: "active 0", body: `{"filter":{"active":"0"}}`, wantIDs: []string{d.ID}},
		{name: "active FALSE", body: `{"filter":{"active":"FALSE"}}`, wantIDs: []string{d.ID}},
		{name: "total y", body: `{"filter":{"user_id":"u1"},"paging":{"take":1,"total":"y"}}`, wantIDs: []string{e.ID}, wantTotal: ptr64(3)},
		{name: "lowercase t and z", body: `{"filter":{"from_time":"2026-11-22t10:02:00z"}}`, wantIDs: []string{e.ID, d.ID, c.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.call("get_sessions", tt.body)
			// data is never null, even when empty.
			var raw struct{ Data json.RawMessage }
			if json.Unmarshal(w.Body.Bytes(), &raw); string(raw.Data) == "null" {
				t.Errorf("body %s has null data", w.Body)
			}
			page := httpxtest.DecodeAs[pageJSON](t, w, http.StatusOK)
			got := make([]string, len(page.Data))
			for i, s := range page.Data {
				got[i] = s.ID
			}
			if !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ids = %v, want %v", got, tt.wantIDs)
			}
			if !reflect.DeepEqual(page.Total, tt.wantTotal) {
				t.Errorf("total = %v, want %v", deref(page.Total), deref(tt.wantTotal))
			}
			if tt.wantTotal == nil && !strings.Contains(w.Body.String(), `"total":null`) {
				t.Errorf("body %s: want total null when not asked for", w.Body)
			}
		})
	}
}

// TestLenientRefusals checks what the leniency still refuses.
func TestLenientRefusals(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	for _, body := range []string{
		`{"paging":{"take":2.5}}`, `{"paging":{"skip":"1.5"}}`, `{"paging":{"take":1e30}}`, `{"paging":{"take":"NaN"}}`,
		`{"filter":{"active":"maybe"}}`, `{"filter":{"active":2}}`, `{"filter":{"active":"yess"}}`, `{"filter":{"active":0.5}}`,
		`{"filter":{"from_time":"2026-11-22x10:02:00z"}}`,
	} {
		e := httpxtest.DecodeAs[errorJSON](t, f.call("get_sessions", body), http.StatusBadRequest)
		if e.Code != "INVALID_PARAMETER" {
			t.Errorf("%s: code %s, want INVALID_PARAMETER", body, e.Code)
		}
	}
	e := httpxtest.DecodeAs[errorJSON](t, f.call("open_session", `{"user_id":"u1","expires_in":3600.5}`), http.StatusBadRequest)
	if e.Code != "INVALID_PARAMETER" {
		t.Errorf("expires_in 3600.5: code %s, want INVALID_PARAMETER", e.Code)
	}
}

func TestOpenSessionIntegralFloatExpiresIn(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	for _, v := range []string{`3600.0`, `"3600.0"`, `3.6e3`} {
		s := f.open(`{"user_id":"u1","expires_in":` + v + `}`)
		if s.ExpireTime == nil || *s.ExpireTime != ts(time.Hour) {
			t.Errorf("expires_in %s: expire_time %s, want %s", v, deref2(s.ExpireTime), ts(time.Hour))
		}
	}
}

func TestGetSessionsTakeDefaultAndMax(t *testing.T) {
	clk := clock.NewFake(t0)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{DefaultTake: 2, MaxTake: 3}, nil)
	f := &fixture{t: t, svc: svc, clk: clk, h: commandable.New(svc, commandable.Options{})}
	for range 5 {
		f.open(`{"user_id":"u1"}`)
	}
	tests := []struct {
		name string
		body string
		want int
	}{
		{"absent", `{}`, 2},
		{"empty string", `{"paging":{"take":""}}`, 2},
		{"zero", `{"paging":{"take":"0"}}`, 2},
		{"above maximum", `{"paging":{"take":1000}}`, 3},
		{"far above maximum", `{"paging":{"take":"9223372036854775807"}}`, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := httpxtest.DecodeAs[pageJSON](t, f.call("get_sessions", tt.body), http.StatusOK)
			if got := len(page.Data); got != tt.want {
				t.Errorf("len(data) = %d, want %d", got, tt.want)
			}
		})
	}
}

func ptr64(v int64) *int64 { return &v }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// mutators are the two commands that refuse closed sessions.
var mutators = []struct {
	command, field, value string
}{
	{"store_session_data", "data", `{"step":2}`},
	{"update_session_user", "user", `{"id":"u1","name":"Ann B."}`},
}

func TestStoreDataAndUpdateUser(t *testing.T) {
	for _, m := range mutators {
		t.Run(m.command, func(t *testing.T) {
			f := newFixture(t, commandable.Options{})
			opened := f.open(`{"user_id":"u1","user_name":"Ann","user":{"id":"u1"},"data":{"step":1}}`)
			f.clk.Add(5 * time.Minute)

			got := httpxtest.DecodeAs[sessionJSON](t, f.call(m.command, `{"session_id":"`+opened.ID+`","`+m.field+`":`+m.value+`}`), http.StatusOK)
			field := map[string]json.RawMessage{"data": got.Data, "user": got.User}[m.field]
			equalJSON(t, m.field, field, m.value)
			if got, want := *got.RequestTime, ts(5*time.Minute); got != want {
				t.Errorf("request_time = %s, want %s", got, want)
			}
			if !got.Active {
				t.Error("active = false, want true")
			}
			// And it is stored.
			again := httpxtest.DecodeAs[sessionJSON](t, f.call("get_session_by_id", `{"session_id":"`+opened.ID+`"}`), http.StatusOK)
			field = map[string]json.RawMessage{"data": again.Data, "user": again.User}[m.field]
			equalJSON(t, m.field+" read back", field, m.value)

			// Any JSON value, null included, may be stored.
			got = httpxtest.DecodeAs[sessionJSON](t, f.call(m.command, `{"session_id":"`+opened.ID+`","`+m.field+`":"just a string"}`), http.StatusOK)
			field = map[string]json.RawMessage{"data": got.Data, "user": got.User}[m.field]
			equalJSON(t, m.field, field, `"just a string"`)
			got = httpxtest.DecodeAs[sessionJSON](t, f.call(m.command, `{"session_id":"`+opened.ID+`"}`), http.StatusOK)
			field = map[string]json.RawMessage{"data": got.Data, "user": got.User}[m.field]
			equalJSON(t, m.field, field, `null`)
		})
	}
}

func TestStoreDataAndUpdateUserRefused(t *testing.T) {
	for _, m := range mutators {
		t.Run(m.command, func(t *testing.T) {
			tests := []struct {
				name     string
				expires  bool                        // open with expires_in 3600
				prepare  func(f *fixture, id string) // makes the session unusable
				status   int
				category string
				code     string
			}{
				{name: "unknown", status: 404, category: "NotFound", code: "SESSION_NOT_FOUND"},
				{name: "closed", status: 400, category: "BadRequest", code: "SESSION_CLOSED",
					prepare: func(f *fixture, id string) { f.call("close_session", `{"session_id":"`+id+`"}`) }},
				{name: "idle past the timeout, not yet swept", status: 400, category: "BadRequest", code: "SESSION_CLOSED",
					prepare: func(f *fixture, id string) { f.clk.Add(24*time.Hour + time.Millisecond) }},
				{name: "past expire_time", expires: true, status: 400, category: "BadRequest", code: "SESSION_CLOSED",
					prepare: func(f *fixture, id string) { f.clk.Add(time.Hour + time.Millisecond) }},
				{name: "swept", status: 400, category: "BadRequest", code: "SESSION_CLOSED",
					prepare: func(f *fixture, id string) {
						f.clk.Add(25 * time.Hour)
						f.call("close_expired_sessions", ``)
					}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					f := newFixture(t, commandable.Options{})
					body := `{"user_id":"u1","data":{"step":1}}`
					if tt.expires {
						body = `{"user_id":"u1","data":{"step":1},"expires_in":3600}`
					}
					id := f.open(body).ID
					if tt.prepare != nil {
						tt.prepare(f, id)
					} else {
						id = "0123456789abcdef0123456789abcdef"
					}
					before := snapshot(t, f.svc)
					w := f.call(m.command, `{"session_id":"`+id+`","`+m.field+`":`+m.value+`}`)
					e := httpxtest.DecodeAs[errorJSON](t, w, tt.status)
					if e.Category != tt.category || e.Code != tt.code || e.Status != tt.status {
						t.Errorf("error = %+v, want category %s code %s status %d", e, tt.category, tt.code, tt.status)
					}
					if e.Details["session_id"] != id {
						t.Errorf("details = %v, want session_id %s", e.Details, id)
					}
					if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
						t.Error("a refused change changed the store")
					}
				})
			}
		})
	}
}

func TestCloseSession(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	opened := f.open(`{"user_id":"u1","user":{"id":"u1"},"data":{"k":1}}`)
	f.clk.Add(time.Minute)

	got := httpxtest.DecodeAs[sessionJSON](t, f.call("close_session", `{"session_id":"`+opened.ID+`"}`), http.StatusOK)
	want := sessionJSON{ID: opened.ID, UserID: "u1", Active: false, OpenTime: strp(ts(0)),
		RequestTime: strp(ts(time.Minute)), CloseTime: strp(ts(time.Minute)),
		User: json.RawMessage("null"), Data: json.RawMessage("null")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closed\n got %+v\nwant %+v", got, want)
	}

	// Closing again changes nothing and answers the closed session.
	f.clk.Add(time.Minute)
	again := httpxtest.DecodeAs[sessionJSON](t, f.call("close_session", `{"session_id":"`+opened.ID+`"}`), http.StatusOK)
	if !reflect.DeepEqual(again, want) {
		t.Errorf("closed twice\n got %+v\nwant %+v", again, want)
	}

	w := f.call("close_session", `{"session_id":"0123456789abcdef0123456789abcdef"}`)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Errorf("unknown id: status %d body %q, want 204 and no body", w.Code, w.Body)
	}
}

func TestCloseExpiredSessions(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	old := f.open(`{"user_id":"u1","data":{"k":1}}`)
	f.clk.Add(23 * time.Hour)
	young := f.open(`{"user_id":"u2"}`)
	f.clk.Add(2 * time.Hour) // old is 25h idle, young 2h

	w := f.call("close_expired_sessions", ``)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("status %d body %q, want 204 and no body", w.Code, w.Body)
	}
	ctx := context.Background()
	o, _ := f.svc.Store().Get(ctx, old.ID)
	if o.Active || o.CloseReason != sessiond.ReasonExpired || o.Data != nil {
		t.Errorf("old session after close_expired_sessions: %+v, want closed as expired with no data", o)
	}
	y, _ := f.svc.Store().Get(ctx, young.ID)
	if !y.Active {
		t.Error("young session closed, want it active")
	}
	// With {} and an unneeded parameter, too.
	if w := f.call("close_expired_sessions", `{"anything":1}`); w.Code != http.StatusNoContent {
		t.Errorf("status %d, want 204", w.Code)
	}
}

func TestDeleteSessionByID(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	opened := f.open(`{"user_id":"u1","data":{"k":1}}`)
	other := f.open(`{"user_id":"u2"}`)

	got := httpxtest.DecodeAs[sessionJSON](t, f.call("delete_session_by_id", `{"session_id":"`+opened.ID+`"}`), http.StatusOK)
	if got.ID != opened.ID || !got.Active {
		t.Errorf("deleted %+v, want the session as it was", got)
	}
	equalJSON(t, "data", got.Data, `{"k":1}`)
	if w := f.call("get_session_by_id", `{"session_id":"`+opened.ID+`"}`); w.Code != http.StatusNoContent {
		t.Errorf("get after delete: status %d, want 204", w.Code)
	}
	if w := f.call("delete_session_by_id", `{"session_id":"`+opened.ID+`"}`); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Errorf("delete twice: status %d body %q, want 204 and no body", w.Code, w.Body)
	}
	if got := snapshot(t, f.svc); len(got) != 1 || got[0].ID != other.ID {
		t.Errorf("store holds %d sessions, want only the other one", len(got))
	}
}

// TestBadInput sends malformed, wrongly typed, oversized and unknown input
// to every command: each gets the right 4xx as an ErrorDescription and
// changes nothing.
func TestBadInput(t *testing.T) {
	const limit = 4096
	deep := strings.Repeat("[", limit-1) // the nesting is refused, not the size
	deepInData := `{"session_id":"$OPEN","data":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`
	huge := `{"session_id":"$OPEN","data":"` + strings.Repeat("x", limit) + `"}`
	type tc struct {
		name    string
		method  string // default POST
		command string
		target  string // overrides /v1/sessions/<command>
		body    string
		status  int
		code    string
	}
	tests := []tc{
		{name: "unknown command", command: "drop_all_sessions", body: `{}`, status: 404, code: "UNKNOWN_COMMAND"},
		{name: "unknown command, wrong method", method: "GET", command: "nope", status: 404, code: "UNKNOWN_COMMAND"},
		{name: "command with a suffix", target: "/v1/sessions/get_sessions/x", body: `{}`, status: 404, code: "NOT_FOUND"},
		{name: "no command", target: "/v1/sessions/", body: `{}`, status: 404, code: "NOT_FOUND"},
		{name: "other path", target: "/v2/sessions/get_sessions", body: `{}`, status: 404, code: "NOT_FOUND"},
		{name: "open_session with a huge body", command: "open_session", body: `{"data":"` + strings.Repeat("x", limit) + `"}`, status: 413, code: "BODY_TOO_LARGE"},
		{name: "open_session with deep nesting", command: "open_session", body: deep, status: 400, code: "INVALID_JSON"},
		{name: "open_session with deep nesting in data", command: "open_session", body: strings.Replace(deepInData, `"session_id":"$OPEN",`, "", 1), status: 400, code: "INVALID_JSON"},
		{name: "open_session with bad data JSON", command: "open_session", body: `{"user_id":"u9","data":{bad}}`, status: 400, code: "INVALID_JSON"},
		{name: "open_session with trailing garbage", command: "open_session", body: `{"user_id":"u9"} {}`, status: 400, code: "INVALID_JSON"},
		{name: "open_session with user_id a number", command: "open_session", body: `{"user_id":5}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open_session with user_name an object", command: "open_session", body: `{"user_name":{}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open_session with negative expires_in", command: "open_session", body: `{"expires_in":-5}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open_session with negative expires_in string", command: "open_session", body: `{"expires_in":"-5"}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open_session with expires_in a word", command: "open_session", body: `{"expires_in":"soon"}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open_session with fractional expires_in", command: "open_session", body: `{"expires_in":1.5}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open_session with expires_in a bool", command: "open_session", body: `{"expires_in":true}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "open_session with non-UTF-8", command: "open_session", body: "{\"user_id\":\"\xff\xfe\"}", status: 400, code: "INVALID_JSON"},
		{name: "get_sessions with skip a word", command: "get_sessions", body: `{"paging":{"skip":"abc"}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with negative take", command: "get_sessions", body: `{"paging":{"take":-1}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with negative skip string", command: "get_sessions", body: `{"paging":{"skip":"-20"}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with fractional take", command: "get_sessions", body: `{"paging":{"take":2.5}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with take out of range", command: "get_sessions", body: `{"paging":{"take":1e30}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with total a word", command: "get_sessions", body: `{"paging":{"total":"perhaps"}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with active maybe", command: "get_sessions", body: `{"filter":{"active":"maybe"}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with active a list", command: "get_sessions", body: `{"filter":{"active":[true]}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with from_time yesterday", command: "get_sessions", body: `{"filter":{"from_time":"yesterday"}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with to_time a number", command: "get_sessions", body: `{"filter":{"to_time":1700000000}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with filter a string", command: "get_sessions", body: `{"filter":"user_id=u1"}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with paging an array", command: "get_sessions", body: `{"paging":[0,10]}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "get_sessions with user_id a number", command: "get_sessions", body: `{"filter":{"user_id":5}}`, status: 400, code: "INVALID_PARAMETER"},
		{name: "close_expired_sessions with a non-object body", command: "close_expired_sessions", body: `[]`, status: 400, code: "BAD_REQUEST"},
		{name: "close_expired_sessions with invalid JSON", command: "close_expired_sessions", body: `{`, status: 400, code: "INVALID_JSON"},
		{name: "close_expired_sessions by GET", method: "GET", command: "close_expired_sessions", status: 405, code: "METHOD_NOT_ALLOWED"},
	}
	for _, cmd := range []string{"get_session_by_id", "close_session", "delete_session_by_id", "store_session_data", "update_session_user"} {
		tests = append(tests,
			tc{name: cmd + " with invalid JSON", command: cmd, body: `{"session_id":`, status: 400, code: "INVALID_JSON"},
			tc{name: cmd + " with a single quote body", command: cmd, body: `{'session_id':'$OPEN'}`, status: 400, code: "INVALID_JSON"},
			tc{name: cmd + " with session_id a number", command: cmd, body: `{"session_id":5}`, status: 400, code: "INVALID_PARAMETER"},
			tc{name: cmd + " with session_id an array", command: cmd, body: `{"session_id":["$OPEN"]}`, status: 400, code: "INVALID_PARAMETER"},
			tc{name: cmd + " with bad JSON in data", command: cmd, body: `{"session_id":"$OPEN","data":{"a":}}`, status: 400, code: "INVALID_JSON"},
			tc{name: cmd + " with deep nesting", command: cmd, body: deep, status: 400, code: "INVALID_JSON"},
			tc{name: cmd + " with deep nesting in data", command: cmd, body: deepInData, status: 400, code: "INVALID_JSON"},
			tc{name: cmd + " with a huge body", command: cmd, body: huge, status: 413, code: "BODY_TOO_LARGE"},
			tc{name: cmd + " with an array body", command: cmd, body: `[]`, status: 400, code: "BAD_REQUEST"},
			tc{name: cmd + " with a string body", command: cmd, body: `"x"`, status: 400, code: "BAD_REQUEST"},
			tc{name: cmd + " with a null body", command: cmd, body: `null`, status: 400, code: "BAD_REQUEST"},
			tc{name: cmd + " with a number body", command: cmd, body: ` 42 `, status: 400, code: "BAD_REQUEST"},
			tc{name: cmd + " without session_id", command: cmd, body: `{}`, status: 400, code: "MISSING_PARAMETER"},
			tc{name: cmd + " with an empty body", command: cmd, body: ``, status: 400, code: "MISSING_PARAMETER"},
			tc{name: cmd + " with empty session_id", command: cmd, body: `{"session_id":""}`, status: 400, code: "MISSING_PARAMETER"},
			tc{name: cmd + " with null session_id", command: cmd, body: `{"session_id":null}`, status: 400, code: "MISSING_PARAMETER"},
			tc{name: cmd + " with non-UTF-8", command: cmd, body: "{\"session_id\":\"$OPEN\",\"data\":\"\xc3\x28\"}", status: 400, code: "INVALID_JSON"},
			tc{name: cmd + " by GET", method: "GET", command: cmd, body: ``, status: 405, code: "METHOD_NOT_ALLOWED"},
			tc{name: cmd + " by PUT", method: "PUT", command: cmd, body: `{"session_id":"$OPEN"}`, status: 405, code: "METHOD_NOT_ALLOWED"},
			tc{name: cmd + " by DELETE", method: "DELETE", command: cmd, body: `{"session_id":"$OPEN"}`, status: 405, code: "METHOD_NOT_ALLOWED"},
		)
	}
	for _, m := range mutators {
		tests = append(tests,
			tc{name: m.command + " on an unknown session", command: m.command, body: `{"session_id":"0123456789abcdef0123456789abcdef"}`, status: 404, code: "SESSION_NOT_FOUND"},
			tc{name: m.command + " on a very long unknown id", command: m.command, body: `{"session_id":"` + strings.Repeat("z", 3000) + `"}`, status: 404, code: "SESSION_NOT_FOUND"},
			tc{name: m.command + " on a closed session", command: m.command, body: `{"session_id":"$CLOSED","` + m.field + `":` + m.value + `}`, status: 400, code: "SESSION_CLOSED"},
		)
	}

	f := newFixture(t, commandable.Options{BodyLimit: limit})
	openID := f.open(`{"user_id":"u1","user_name":"Ann","user":{"id":"u1"},"data":{"k":1}}`).ID
	closedID := f.open(`{"user_id":"u2"}`).ID
	f.call("close_session", `{"session_id":"`+closedID+`"}`)
	before := snapshot(t, f.svc)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, target := tt.method, tt.target
			if method == "" {
				method = http.MethodPost
			}
			if target == "" {
				target = "/v1/sessions/" + tt.command
			}
			body := strings.NewReplacer("$OPEN", openID, "$CLOSED", closedID).Replace(tt.body)
			w := f.do(method, target, body, nil)
			e := httpxtest.DecodeAs[errorJSON](t, w, tt.status)
			checkDescription(t, e, tt.status, tt.code)
			if tt.status == http.StatusMethodNotAllowed {
				if got, want := w.Header().Get("Allow"), "POST"; got != want {
					t.Errorf("Allow = %q, want %q", got, want)
				}
			}
			if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
				t.Error("refused request changed the store")
			}
		})
	}
}

// checkDescription checks that e is a well-formed ErrorDescription for the
// status and code.
func checkDescription(t testing.TB, e errorJSON, status int, code string) {
	t.Helper()
	wantCategory := map[int]string{400: "BadRequest", 404: "NotFound", 405: "Unsupported", 413: "BadRequest", 500: "Internal"}[status]
	if e.Status != status || e.Code != code || e.Category != wantCategory {
		t.Errorf("error = %+v, want status %d code %s category %s", e, status, code, wantCategory)
	}
	if e.Type != wantCategory+"Exception" {
		t.Errorf("type = %q, want %q", e.Type, wantCategory+"Exception")
	}
	if e.Message == "" {
		t.Error("message is empty")
	}
	if len(e.Message) > 510 {
		t.Errorf("message is %d bytes long; it must not echo large input", len(e.Message))
	}
}

func TestErrorMessages(t *testing.T) {
	// The messages name the parameter and the problem, and the details say
	// which parameter it was.
	f := newFixture(t, commandable.Options{})
	tests := []struct {
		name, command, body string
		wantMessage         string
		wantParam           string
	}{
		{"skip", "get_sessions", `{"paging":{"skip":"abc"}}`, `paging.skip: expected an integer or a string holding one, got string "abc"`, "paging.skip"},
		{"active", "get_sessions", `{"filter":{"active":"maybe"}}`, `filter.active: expected true, false or one of "true", "false", "t", "f", "yes", "no", "y", "n", "1", "0", got string "maybe"`, "filter.active"},
		{"from_time", "get_sessions", `{"filter":{"from_time":"yesterday"}}`, `filter.from_time: expected an RFC 3339 time string, got string "yesterday"`, "filter.from_time"},
		{"negative take", "get_sessions", `{"paging":{"take":-1}}`, `paging.take must not be negative`, "paging.take"},
		{"session_id", "get_session_by_id", `{"session_id":5}`, `session_id: expected a string, got number`, "session_id"},
		{"embedded session_id", "store_session_data", `{"session_id":true}`, `session_id: expected a string, got bool`, "session_id"},
		{"missing session_id", "close_session", `{}`, `session_id is required`, "session_id"},
		{"long value cut", "open_session", `{"expires_in":"` + strings.Repeat("9", 100) + `"}`,
			`expires_in: expected an integer or a string holding one, got string "` + strings.Repeat("9", 39) + `...`, "expires_in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := httpxtest.DecodeAs[errorJSON](t, f.call(tt.command, tt.body), http.StatusBadRequest)
			if e.Message != tt.wantMessage {
				t.Errorf("message = %q, want %q", e.Message, tt.wantMessage)
			}
			if got := e.Details["parameter"]; got != tt.wantParam {
				t.Errorf("details.parameter = %v, want %q", got, tt.wantParam)
			}
		})
	}
}

func TestCorrelationID(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, commandable.Options{})
	f.h = httpx.Middleware(log, f.h)
	tests := []struct {
		name   string
		target string
		header http.Header
		want   string
	}{
		{"query, as the Go client sends it", "/v1/sessions/store_session_data?correlation_id=q-123", nil, "q-123"},
		{"correlation_id header", "/v1/sessions/store_session_data", http.Header{"Correlation_id": {"h-456"}}, "h-456"},
		{"X-Correlation-Id header", "/v1/sessions/store_session_data", http.Header{"X-Correlation-Id": {"x-789"}}, "x-789"},
		{"none: one is generated", "/v1/sessions/store_session_data", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			w := f.do(http.MethodPost, tt.target, `{"session_id":"0123456789abcdef0123456789abcdef"}`, tt.header)
			e := httpxtest.DecodeAs[errorJSON](t, w, http.StatusNotFound)
			if e.CorrelationID != tt.want && tt.want != "" {
				t.Errorf("correlation_id = %q, want %q", e.CorrelationID, tt.want)
			}
			if got := w.Header().Get("X-Correlation-Id"); got != e.CorrelationID {
				t.Errorf("X-Correlation-Id = %q, want the body's %q", got, e.CorrelationID)
			}
			if tt.want != "" && !strings.Contains(logs.String(), `"correlation_id":"`+tt.want+`"`) {
				t.Errorf("log %q does not carry the correlation id", logs.String())
			}
			if tt.want == "" && len(e.CorrelationID) != 16 {
				t.Errorf("body %s: want a generated correlation_id when none was given", w.Body)
			}
		})
	}
}

// failingStore is the memory engine with reads and writes that fail as an
// unreachable database would: the only way to see how internal errors are
// answered.
type failingStore struct {
	*memory.Store
}

var errDisk = &sessiond.Error{Code: sessiond.EINTERNAL, Message: "Internal error", Err: errorString("disk /var/lib/sessiond on fire")}

type errorString string

func (e errorString) Error() string { return string(e) }

func (failingStore) Get(context.Context, string) (*sessiond.Session, error) { return nil, errDisk }
func (failingStore) List(context.Context, sessiond.Filter, sessiond.Paging) (*sessiond.Page, error) {
	return nil, errDisk
}

func TestInternalError(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	svc := sessiond.NewService(failingStore{memory.New()}, clock.NewFake(t0), sessiond.Config{}, nil)
	h := httpx.Middleware(log, commandable.New(svc, commandable.Options{}))
	for _, tt := range []struct{ command, body string }{
		{"get_session_by_id", `{"session_id":"0123456789abcdef0123456789abcdef"}`},
		{"get_sessions", `{}`},
	} {
		t.Run(tt.command, func(t *testing.T) {
			logs.Reset()
			r := httptest.NewRequest(http.MethodPost, "/v1/sessions/"+tt.command+"?correlation_id=c-1", strings.NewReader(tt.body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			e := httpxtest.DecodeAs[errorJSON](t, w, http.StatusInternalServerError)
			checkDescription(t, e, 500, "INTERNAL")
			if e.Message != "Internal error" || e.Details != nil || strings.Contains(w.Body.String(), "fire") {
				t.Errorf("body %s leaks the cause", w.Body)
			}
			if !strings.Contains(logs.String(), "fire") || !strings.Contains(logs.String(), `"correlation_id":"c-1"`) {
				t.Errorf("log %q: want the cause and the correlation id", logs.String())
			}
		})
	}
}

func TestDeepNestingAtDefaultLimit(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	f.open(`{"user_id":"u1"}`)
	before := snapshot(t, f.svc)
	for _, body := range []string{
		strings.Repeat("[", 100_000),
		`{"user_id":"u2","data":` + strings.Repeat(`[`, 100_000) + strings.Repeat(`]`, 100_000) + `}`,
	} {
		e := httpxtest.DecodeAs[errorJSON](t, f.call("open_session", body), http.StatusBadRequest)
		checkDescription(t, e, 400, "INVALID_JSON")
	}
	if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
		t.Error("refused request changed the store")
	}
}

func deref2(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
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

// TestGetSessionsStreamed reads a page of 200 sessions holding 60 KB of
// data each (12 MB): it is written out in pieces, never whole, and the
// heap holds no copy of it afterwards.
func TestGetSessionsStreamed(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	data := `"` + strings.Repeat("d", 60<<10) + `"`
	for range 200 {
		f.open(`{"user_id":"u1","data":` + data + `}`)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 4 {
		w := &largestWrite{ResponseRecorder: httptest.NewRecorder()}
		r := httptest.NewRequest("POST", "/v1/sessions/get_sessions", strings.NewReader(`{"paging":{"take":1000,"total":true}}`))
		f.h.ServeHTTP(w, r)
		page := httpxtest.DecodeAs[pageJSON](t, w.ResponseRecorder, http.StatusOK)
		if len(page.Data) != 200 || page.Total == nil || *page.Total != 200 {
			t.Fatalf("got %d sessions, total %v; want 200", len(page.Data), deref(page.Total))
		}
		if w.max > 256<<10 {
			t.Errorf("page of %d bytes written with a write of %d bytes, want at most 256 KiB", w.Body.Len(), w.max)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The store holds its 12 MB; the answers must not stay behind.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Errorf("heap grew by %d bytes after the answers", grown)
	}
}

// TestServiceLimitsInThisDialect checks the Service's data limit and text
// rules as this API answers them.
func TestServiceLimitsInThisDialect(t *testing.T) {
	f := newFixture(t, commandable.Options{})
	id := f.open(`{"user_id":"u1","user":{"id":"u1"}}`).ID
	before := snapshot(t, f.svc)
	big := `"` + strings.Repeat("x", 64<<10) + `"`
	for _, c := range []struct{ command, body, code string }{
		{"open_session", `{"user_id":"u1","data":` + big + `}`, "BODY_TOO_LARGE"},
		{"store_session_data", `{"session_id":"` + id + `","data":` + big + `}`, "BODY_TOO_LARGE"},
		{"update_session_user", `{"session_id":"` + id + `","user":` + big + `}`, "BODY_TOO_LARGE"},
		{"open_session", "{\"user_id\":\"u\xff\"}", "INVALID_JSON"},
		{"open_session", `{"user_id":"u\udc00"}`, "INVALID_JSON"},
		{"store_session_data", `{"session_id":"` + id + `","data":{"\ud800":1}}`, "INVALID_JSON"},
	} {
		w := f.call(c.command, c.body)
		status := http.StatusBadRequest
		if c.code == "BODY_TOO_LARGE" {
			status = http.StatusRequestEntityTooLarge
		}
		e := httpxtest.DecodeAs[errorJSON](t, w, status)
		if e.Code != c.code {
			t.Errorf("%s %.60s: code %s, want %s", c.command, c.body, e.Code, c.code)
		}
	}
	if after := snapshot(t, f.svc); !reflect.DeepEqual(after, before) {
		t.Error("refused requests changed the store")
	}
}
