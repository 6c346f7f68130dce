package commandable_test

// Tests that the commandable API works unchanged with the Pip.Services Go
// client (SPEC section 3), driven through pipClient (pipclient_test.go),
// which sends and decodes exactly as that client does.
//
//   - TestPipClientWire pins the request bytes pipClient sends for every
//     method, so a drift from the real client shows up here.
//   - TestPipClientDecode pins how pipClient reads canned answers (204,
//     null total, malformed error descriptions), so the expectations below
//     are those of the real client.
//   - TestPipClientCompat and its siblings run the real handler over a
//     memory store and check what the client gets back.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/api/commandable"
	"sessiond/internal/clock"
	"sessiond/store/memory"
)

// pipT0 is when every test's fake clock starts.
var pipT0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// pipTap is a RoundTripper that keeps the last answer's status and raw
// body, so tests can look at what the client cannot see (a null total, the
// access_token) without changing what it decodes.
type pipTap struct {
	base http.RoundTripper

	mu     sync.Mutex
	status int
	body   []byte
}

func (t *pipTap) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	t.mu.Lock()
	t.status, t.body = res.StatusCode, b
	t.mu.Unlock()
	return res, nil
}

// last returns the status and body of the last answer.
func (t *pipTap) last() (int, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, string(t.body)
}

// pipEnv is a running commandable API with a client pointed at it.
type pipEnv struct {
	client *pipClient
	clock  *clock.Fake
	tap    *pipTap
}

// pipStart serves commandable.New over a memory store at /v1/sessions/, the
// way the daemon mounts it, and returns a pipClient for it.
func pipStart(t *testing.T) *pipEnv {
	t.Helper()
	clk := clock.NewFake(pipT0)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{}, nil)
	mux := http.NewServeMux()
	mux.Handle("/v1/sessions/", commandable.New(svc, commandable.Options{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tap := &pipTap{base: srv.Client().Transport}
	c := pipNewClient(srv.URL)
	c.HTTP.Transport = tap
	return &pipEnv{client: c, clock: clk, tap: tap}
}

// pipAppError returns err as the client's application error, failing the
// test if it is not one.
func pipAppError(t *testing.T, err error) *pipApplicationError {
	t.Helper()
	var ae *pipApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want a *pipApplicationError", err, err)
	}
	return ae
}

// pipCheckError checks an error the way a caller of the real client would
// see it. A description the client could not read as one (its "status"
// missing or not a number) has the whole body folded into Details, which
// would show up here as a "category" key there.
func pipCheckError(t *testing.T, err error, category, code string, status int, correlationID string) {
	t.Helper()
	ae := pipAppError(t, err)
	if got, want := ae.Category, category; got != want {
		t.Errorf("category = %q, want %q (error %+v)", got, want, ae)
	}
	if code != "" {
		if got, want := ae.Code, code; got != want {
			t.Errorf("code = %q, want %q", got, want)
		}
	} else if ae.Code == "" {
		t.Errorf("code is empty, want one (error %+v)", ae)
	}
	if got, want := ae.Status, status; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	if got, want := ae.CorrelationId, correlationID; got != want {
		t.Errorf("correlation_id = %q, want %q", got, want)
	}
	if ae.Message == "" {
		t.Errorf("message is empty")
	}
	if _, folded := ae.Details["category"]; folded {
		t.Errorf("details = %v: the client did not read the body as an error description", ae.Details)
	}
}

// pipIDs returns the ids of a page's sessions, sorted.
func pipIDs(page pipDataPage) []string {
	ids := make([]string, 0, len(page.Data))
	for _, s := range page.Data {
		if s == nil {
			ids = append(ids, "<nil>")
			continue
		}
		ids = append(ids, s.Id)
	}
	slices.Sort(ids)
	return ids
}

func pipSorted(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// TestPipClientCompat follows the client module's own fixture
// (test/version1/SessionsClientFixtureV1.go: TestOpenSession then
// TestCloseSession) and checks every value the client decodes.
func TestPipClientCompat(t *testing.T) {
	env := pipStart(t)
	c, clk, ctx := env.client, env.clock, context.Background()

	// Open, as the fixture does: user nil, data "abc".
	s, err := c.OpenSession(ctx, "", "1", "User 1", "localhost", "test", nil, "abc")
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	if s == nil {
		t.Fatal("OpenSession returned nil")
	}
	id := s.Id
	want := pipSessionV1{Id: id, UserId: "1", UserName: "User 1", Active: true, OpenTime: pipT0, RequestTime: pipT0,
		Address: "localhost", Client: "test", User: nil, Data: "abc"}
	if id == "" {
		t.Errorf("id is empty")
	}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("OpenSession = %+v, want %+v", *s, want)
	}
	if _, body := env.tap.last(); !strings.Contains(body, `"access_token":"`) {
		t.Errorf("open_session answer %s has no access_token", body)
	}

	// Store data: any JSON value; request_time moves.
	clk.Add(time.Minute)
	data := map[string]any{"cart": []any{"a", "b"}, "n": 2.0}
	s, err = c.StoreSessionData(ctx, "", id, data)
	if err != nil {
		t.Fatalf("StoreSessionData: %v", err)
	}
	want.Data, want.RequestTime = data, pipT0.Add(time.Minute)
	if s == nil || !reflect.DeepEqual(*s, want) {
		t.Errorf("StoreSessionData = %+v, want %+v", s, want)
	}

	// Update user.
	clk.Add(time.Minute)
	user := map[string]any{"id": "1", "name": "User One", "roles": []any{"admin"}}
	s, err = c.UpdateSessionUser(ctx, "", id, user)
	if err != nil {
		t.Fatalf("UpdateSessionUser: %v", err)
	}
	want.User, want.RequestTime = user, pipT0.Add(2*time.Minute)
	if s == nil || !reflect.DeepEqual(*s, want) {
		t.Errorf("UpdateSessionUser = %+v, want %+v", s, want)
	}

	// Get by id.
	s, err = c.GetSessionById(ctx, "", id)
	if err != nil {
		t.Fatalf("GetSessionById: %v", err)
	}
	if s == nil || !reflect.DeepEqual(*s, want) {
		t.Errorf("GetSessionById = %+v, want %+v", s, want)
	}

	// Open sessions of user 1, as the fixture asks for them: the filter
	// values go as strings, paging as take 50, total false.
	page, err := c.GetSessions(ctx, "", pipFilter("user_id", "1", "active", true), pipEmptyPaging())
	if err != nil {
		t.Fatalf("GetSessions: %v", err)
	}
	if got, want := pipIDs(page), []string{id}; !slices.Equal(got, want) {
		t.Errorf("GetSessions ids = %v, want %v", got, want)
	}
	if len(page.Data) == 1 && !reflect.DeepEqual(*page.Data[0], want) {
		t.Errorf("GetSessions data[0] = %+v, want %+v", *page.Data[0], want)
	}
	// total was not asked for: null on the wire, which this client reads
	// as 0.
	if got, want := page.Total, 0; got != want {
		t.Errorf("total = %d, want %d", got, want)
	}
	if _, body := env.tap.last(); !strings.Contains(body, `"total":null`) {
		t.Errorf("get_sessions answer %s: want \"total\":null when total is not asked for", body)
	}

	// Close.
	clk.Add(time.Minute)
	closedAt := pipT0.Add(3 * time.Minute)
	s, err = c.CloseSession(ctx, "pip-close", id)
	if err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	closed := want
	closed.Active, closed.CloseTime, closed.RequestTime, closed.User, closed.Data = false, closedAt, closedAt, nil, nil
	if s == nil || !reflect.DeepEqual(*s, closed) {
		t.Errorf("CloseSession = %+v, want %+v", s, closed)
	}
	s, err = c.GetSessionById(ctx, "", id)
	if err != nil || s == nil || !reflect.DeepEqual(*s, closed) {
		t.Errorf("GetSessionById after close = %+v, %v; want %+v", s, err, closed)
	}

	// Storing into or updating a closed session is an error.
	_, err = c.StoreSessionData(ctx, "pip-closed-1", id, "late")
	pipCheckError(t, err, "BadRequest", "SESSION_CLOSED", http.StatusBadRequest, "pip-closed-1")
	_, err = c.UpdateSessionUser(ctx, "pip-closed-2", id, "late")
	pipCheckError(t, err, "BadRequest", "SESSION_CLOSED", http.StatusBadRequest, "pip-closed-2")

	// Delete returns the deleted session.
	s, err = c.DeleteSessionById(ctx, "", id)
	if err != nil || s == nil || !reflect.DeepEqual(*s, closed) {
		t.Errorf("DeleteSessionById = %+v, %v; want %+v", s, err, closed)
	}

	// A deleted or unknown id is no content for get, close and delete:
	// the client returns nil and no error.
	for _, op := range []struct {
		name string
		call func() (*pipSessionV1, error)
	}{
		{"get deleted", func() (*pipSessionV1, error) { return c.GetSessionById(ctx, "", id) }},
		{"close deleted", func() (*pipSessionV1, error) { return c.CloseSession(ctx, "", id) }},
		{"delete deleted", func() (*pipSessionV1, error) { return c.DeleteSessionById(ctx, "", id) }},
		{"get unknown", func() (*pipSessionV1, error) { return c.GetSessionById(ctx, "", "0123456789abcdef0123456789abcdef") }},
	} {
		s, err := op.call()
		if err != nil || s != nil {
			t.Errorf("%s = %+v, %v; want nil, nil", op.name, s, err)
		}
		if status, body := env.tap.last(); status != http.StatusNoContent || body != "" {
			t.Errorf("%s answer = %d %q, want 204 and no body", op.name, status, body)
		}
	}

	// Storing into or updating an unknown id is NotFound, and the
	// correlation id comes back in the error, escaped and unescaped intact.
	_, err = c.StoreSessionData(ctx, "pip cid&1", id, "x")
	pipCheckError(t, err, "NotFound", "SESSION_NOT_FOUND", http.StatusNotFound, "pip cid&1")
	_, err = c.UpdateSessionUser(ctx, "pip-cid-2", "no-such-session", "x")
	pipCheckError(t, err, "NotFound", "SESSION_NOT_FOUND", http.StatusNotFound, "pip-cid-2")
}

// TestPipClientGetSessions checks filters and paging as the client sends
// them: every filter value a string, unset ones as "", times in RFC 3339
// whole seconds with the caller's offset, paging as numbers.
func TestPipClientGetSessions(t *testing.T) {
	env := pipStart(t)
	c, clk, ctx := env.client, env.clock, context.Background()

	open := func(userID string) string {
		t.Helper()
		s, err := c.OpenSession(ctx, "", userID, "User "+userID, "10.0.0.1", "app", nil, nil)
		if err != nil || s == nil {
			t.Fatalf("OpenSession(%s) = %+v, %v", userID, s, err)
		}
		return s.Id
	}
	a := open("1") // opened at T0
	clk.Add(2 * time.Minute)
	b := open("2") // T0+2m
	clk.Add(time.Minute)
	closed := open("1") // T0+3m, closed below
	if _, err := c.CloseSession(ctx, "", closed); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}

	plus1 := time.FixedZone("+01:00", 3600)
	tests := []struct {
		name      string
		filter    pipFilterParams
		paging    *pipPagingParams
		wantIDs   []string // nil: only check the count
		wantCount int
		wantTotal int    // as the client decodes it
		wantWire  string // must appear in the raw answer
	}{
		{name: "user and active", filter: pipFilter("user_id", "1", "active", true), paging: pipEmptyPaging(),
			wantIDs: []string{a}, wantTotal: 0, wantWire: `"total":null`},
		{name: "user and active with total", filter: pipFilter("user_id", "1", "active", true), paging: &pipPagingParams{Take: 50, Total: true},
			wantIDs: []string{a}, wantTotal: 1, wantWire: `"total":1`},
		{name: "inactive", filter: pipFilter("active", false), paging: pipEmptyPaging(),
			wantIDs: []string{closed}},
		{name: "unset values are empty strings", filter: pipFilter("user_id", "1", "active", nil, "client", nil), paging: pipEmptyPaging(),
			wantIDs: []string{a, closed}},
		{name: "empty filter", filter: pipFilter(), paging: pipEmptyPaging(),
			wantIDs: []string{a, b, closed}},
		{name: "null filter and paging", filter: nil, paging: nil,
			wantIDs: []string{a, b, closed}, wantWire: `"total":null`},
		{name: "from_time with an offset", filter: pipFilter("from_time", pipT0.Add(90*time.Second).In(plus1)), paging: pipEmptyPaging(),
			wantIDs: []string{b, closed}},
		{name: "to_time", filter: pipFilter("to_time", pipT0.Add(150*time.Second)), paging: pipEmptyPaging(),
			wantIDs: []string{a, b}},
		{name: "address and client", filter: pipFilter("address", "10.0.0.1", "client", "app", "user_id", "2"), paging: pipEmptyPaging(),
			wantIDs: []string{b}},
		{name: "take 1 with total", filter: pipFilter("user_id", "1"), paging: &pipPagingParams{Skip: 0, Take: 1, Total: true},
			wantCount: 1, wantTotal: 2, wantWire: `"total":2`},
		{name: "skip past the end", filter: pipFilter(), paging: &pipPagingParams{Skip: 10, Take: 10, Total: true},
			wantIDs: []string{}, wantTotal: 3, wantWire: `"data":[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := c.GetSessions(ctx, "", tt.filter, tt.paging)
			if err != nil {
				t.Fatalf("GetSessions: %v", err)
			}
			if tt.wantIDs != nil {
				if got, want := pipIDs(page), pipSorted(tt.wantIDs...); !slices.Equal(got, want) {
					t.Errorf("ids = %v, want %v", got, want)
				}
			} else if got, want := len(page.Data), tt.wantCount; got != want {
				t.Errorf("len(data) = %d, want %d", got, want)
			}
			if got, want := page.Total, tt.wantTotal; got != want {
				t.Errorf("total = %d, want %d", got, want)
			}
			_, body := env.tap.last()
			if tt.wantWire != "" && !strings.Contains(body, tt.wantWire) {
				t.Errorf("answer %s does not contain %s", body, tt.wantWire)
			}
			var raw struct{ Data []json.RawMessage }
			if err := json.Unmarshal([]byte(body), &raw); err != nil || raw.Data == nil {
				t.Errorf("answer %s: want an object with a data array (%v)", body, err)
			}
			for i, d := range raw.Data {
				if string(d) == "null" {
					t.Errorf("answer %s: data[%d] is null", body, i)
				}
			}
		})
	}

	// A negative skip or take is a BadRequest, in the client's error form.
	for _, p := range []*pipPagingParams{{Skip: -1, Take: 10}, {Skip: 0, Take: -1}} {
		page, err := c.GetSessions(ctx, "pip-paging", pipFilter(), p)
		pipCheckError(t, err, "BadRequest", "", http.StatusBadRequest, "pip-paging")
		if got, want := page.Total, pipEmptyTotal; got != want {
			t.Errorf("total on error = %d, want %d", got, want)
		}
	}
}

// TestPipClientCloseExpired checks close_expired_sessions, sent without a
// body, and that storing into a dead, not yet swept session is refused.
func TestPipClientCloseExpired(t *testing.T) {
	env := pipStart(t)
	c, clk, ctx := env.client, env.clock, context.Background()

	stale, err := c.OpenSession(ctx, "", "1", "User 1", "localhost", "test", nil, "abc")
	if err != nil || stale == nil {
		t.Fatalf("OpenSession = %+v, %v", stale, err)
	}
	clk.Add(24*time.Hour + time.Second) // past the default idle timeout

	_, err = c.StoreSessionData(ctx, "pip-dead", stale.Id, "x")
	pipCheckError(t, err, "BadRequest", "SESSION_CLOSED", http.StatusBadRequest, "pip-dead")

	fresh, err := c.OpenSession(ctx, "", "2", "User 2", "localhost", "test", nil, nil)
	if err != nil || fresh == nil {
		t.Fatalf("OpenSession = %+v, %v", fresh, err)
	}
	if err := c.CloseExpiredSessions(ctx, ""); err != nil {
		t.Fatalf("CloseExpiredSessions: %v", err)
	}
	if status, body := env.tap.last(); status != http.StatusNoContent || body != "" {
		t.Errorf("close_expired_sessions answer = %d %q, want 204 and no body", status, body)
	}

	s, err := c.GetSessionById(ctx, "", stale.Id)
	if err != nil || s == nil {
		t.Fatalf("GetSessionById(stale) = %+v, %v", s, err)
	}
	if s.Active || s.CloseTime.IsZero() || s.Data != nil {
		t.Errorf("stale session after close_expired_sessions = %+v, want inactive, closed, no data", s)
	}
	s, err = c.GetSessionById(ctx, "", fresh.Id)
	if err != nil || s == nil || !s.Active || !s.CloseTime.IsZero() {
		t.Errorf("fresh session after close_expired_sessions = %+v, %v; want active with zero close_time", s, err)
	}
}

// pipRecorded is one request as a server saw it.
type pipRecorded struct {
	method, requestURI, contentType, body string
	contentLength                         int64
	header                                http.Header
}

// TestPipClientWire pins the bytes pipClient puts on the wire for each
// method. The expected values were produced by the real rpc-gox v1.0.6
// CommandableHttpClient with the parameters client-sessions-go builds; if
// pipClient changes, it must still match them.
func TestPipClientWire(t *testing.T) {
	var (
		mu  sync.Mutex
		got []pipRecorded
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading request body: %v", err)
		}
		mu.Lock()
		got = append(got, pipRecorded{method: r.Method, requestURI: r.RequestURI, contentType: r.Header.Get("Content-Type"),
			body: string(b), contentLength: r.ContentLength, header: r.Header.Clone()})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := pipNewClient(srv.URL)
	ctx := context.Background()

	tests := []struct {
		name    string
		call    func() error
		wantURI string
		// wantBody is the exact body; "" means none (Content-Length: 0).
		wantBody string
	}{
		{
			name: "open_session with a correlation id to escape",
			call: func() error {
				_, err := c.OpenSession(ctx, "pip cid&1", "1", "User <1>", "localhost", "test", nil, "abc")
				return err
			},
			wantURI:  "/v1/sessions/open_session?correlation_id=pip+cid%261",
			wantBody: `{"address":"localhost","client":"test","data":"abc","user":null,"user_id":"1","user_name":"User \u003c1\u003e"}`,
		},
		{
			name: "store_session_data with nested data",
			call: func() error {
				_, err := c.StoreSessionData(ctx, "", "s1", map[string]any{"b": 1, "a": []int{1, 2}})
				return err
			},
			wantURI:  "/v1/sessions/store_session_data",
			wantBody: `{"data":{"a":[1,2],"b":1},"session_id":"s1"}`,
		},
		{
			name: "store_session_data with nil data",
			call: func() error {
				_, err := c.StoreSessionData(ctx, "c1", "s1", nil)
				return err
			},
			wantURI:  "/v1/sessions/store_session_data?correlation_id=c1",
			wantBody: `{"data":null,"session_id":"s1"}`,
		},
		{
			name: "update_session_user",
			call: func() error {
				_, err := c.UpdateSessionUser(ctx, "", "s1", map[string]any{"name": "U"})
				return err
			},
			wantURI:  "/v1/sessions/update_session_user",
			wantBody: `{"session_id":"s1","user":{"name":"U"}}`,
		},
		{
			name:     "get_session_by_id",
			call:     func() error { _, err := c.GetSessionById(ctx, "", "s1"); return err },
			wantURI:  "/v1/sessions/get_session_by_id",
			wantBody: `{"session_id":"s1"}`,
		},
		{
			name: "get_sessions as the client fixture calls it",
			call: func() error {
				_, err := c.GetSessions(ctx, "", pipFilter("user_id", "1", "active", true), pipEmptyPaging())
				return err
			},
			wantURI:  "/v1/sessions/get_sessions",
			wantBody: `{"filter":{"active":"true","user_id":"1"},"paging":{"skip":0,"take":50,"total":false}}`,
		},
		{
			name: "get_sessions with a time, total and an unset value",
			call: func() error {
				_, err := c.GetSessions(ctx, "", pipFilter("user_id", "1", "active", false, "client", nil,
					"from_time", time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)), &pipPagingParams{Skip: 20, Take: 10, Total: true})
				return err
			},
			wantURI:  "/v1/sessions/get_sessions",
			wantBody: `{"filter":{"active":"false","client":"","from_time":"2026-01-02T03:04:05Z","user_id":"1"},"paging":{"skip":20,"take":10,"total":true}}`,
		},
		{
			name: "get_sessions with empty filter and negative paging",
			call: func() error {
				_, err := c.GetSessions(ctx, "", pipFilter(), &pipPagingParams{Skip: -1, Take: -1})
				return err
			},
			wantURI:  "/v1/sessions/get_sessions",
			wantBody: `{"filter":{},"paging":{"skip":-1,"take":-1,"total":false}}`,
		},
		{
			name:     "get_sessions with nil filter and paging",
			call:     func() error { _, err := c.GetSessions(ctx, "", nil, nil); return err },
			wantURI:  "/v1/sessions/get_sessions",
			wantBody: `{"filter":null,"paging":null}`,
		},
		{
			name:     "close_session",
			call:     func() error { _, err := c.CloseSession(ctx, "", "s1"); return err },
			wantURI:  "/v1/sessions/close_session",
			wantBody: `{"session_id":"s1"}`,
		},
		{
			name:     "delete_session_by_id",
			call:     func() error { _, err := c.DeleteSessionById(ctx, "", "s1"); return err },
			wantURI:  "/v1/sessions/delete_session_by_id",
			wantBody: `{"session_id":"s1"}`,
		},
		{
			name:     "close_expired_sessions has no body",
			call:     func() error { return c.CloseExpiredSessions(ctx, "") },
			wantURI:  "/v1/sessions/close_expired_sessions",
			wantBody: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			if err := tt.call(); err != nil {
				t.Fatalf("call: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(got))
			}
			r := got[0]
			if r.method != http.MethodPost {
				t.Errorf("method = %s, want POST", r.method)
			}
			if r.requestURI != tt.wantURI {
				t.Errorf("request URI = %s, want %s", r.requestURI, tt.wantURI)
			}
			if r.contentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", r.contentType)
			}
			if r.body != tt.wantBody {
				t.Errorf("body = %s, want %s", r.body, tt.wantBody)
			}
			if r.contentLength != int64(len(tt.wantBody)) {
				t.Errorf("Content-Length = %d, want %d", r.contentLength, len(tt.wantBody))
			}
			// Nothing else of the client's own: no Accept, no correlation
			// id header (the query carries it).
			for _, h := range []string{"Accept", "Correlation_id", "X-Correlation-Id"} {
				if v, ok := r.header[h]; ok {
					t.Errorf("header %s = %q, want none", h, v)
				}
			}
		})
	}
}

// TestPipClientDecode pins how pipClient reads answers, each case checked
// against the real client: what a session, a page and an error become.
func TestPipClientDecode(t *testing.T) {
	var (
		mu     sync.Mutex
		status int
		body   string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	answer := func(s int, b string) {
		mu.Lock()
		status, body = s, b
		mu.Unlock()
	}
	c := pipNewClient(srv.URL)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

	sessionTests := []struct {
		name   string
		status int
		body   string
		want   *pipSessionV1
	}{
		{name: "session with null close_time and extra fields", status: 200,
			body: `{"id":"x","user_id":"1","user_name":"U","active":true,"open_time":"2026-11-22T10:00:00.000Z","request_time":"2026-11-22T10:00:00.000Z",` +
				`"close_time":null,"expire_time":null,"address":"a","client":"c","user":{"k":[1]},"data":"abc","api_key_id":"k","access_token":"t"}`,
			want: &pipSessionV1{Id: "x", UserId: "1", UserName: "U", Active: true, OpenTime: t0, RequestTime: t0,
				Address: "a", Client: "c", User: map[string]any{"k": []any{1.0}}, Data: "abc"}},
		{name: "204 is nil", status: 204, body: "", want: nil},
		{name: "200 with no body is nil", status: 200, body: "", want: nil},
		{name: "200 null is nil", status: 200, body: "null", want: nil},
		{name: "201 is a result too", status: 201, body: `{"id":"y"}`, want: &pipSessionV1{Id: "y"}},
	}
	for _, tt := range sessionTests {
		t.Run("session/"+tt.name, func(t *testing.T) {
			answer(tt.status, tt.body)
			got, err := c.GetSessionById(ctx, "", "x")
			if err != nil {
				t.Fatalf("GetSessionById: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	pageTests := []struct {
		name      string
		status    int
		body      string
		wantTotal int
		wantLen   int
		wantErr   bool
	}{
		{name: "null total reads as 0", status: 200, body: `{"total":null,"data":[{"id":"a"}]}`, wantTotal: 0, wantLen: 1},
		{name: "absent total reads as 0", status: 200, body: `{"data":[]}`, wantTotal: 0},
		{name: "total", status: 200, body: `{"total":7,"data":[{"id":"a"}]}`, wantTotal: 7, wantLen: 1},
		{name: "204 is the zero page", status: 204, wantTotal: 0},
		{name: "error gives the empty page", status: 400, body: `{"category":"BadRequest","status":400}`, wantTotal: pipEmptyTotal, wantErr: true},
	}
	for _, tt := range pageTests {
		t.Run("page/"+tt.name, func(t *testing.T) {
			answer(tt.status, tt.body)
			page, err := c.GetSessions(ctx, "", pipFilter(), pipEmptyPaging())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got, want := page.Total, tt.wantTotal; got != want {
				t.Errorf("total = %d, want %d", got, want)
			}
			if got, want := len(page.Data), tt.wantLen; got != want {
				t.Errorf("len(data) = %d, want %d", got, want)
			}
		})
	}

	errorTests := []struct {
		name   string
		status int
		body   string
		want   pipApplicationError
	}{
		{name: "description", status: 404,
			body: `{"type":"NotFoundException","category":"NotFound","code":"SESSION_NOT_FOUND","status":404,"message":"m","correlation_id":"c1","details":{"session_id":"x"}}`,
			want: pipApplicationError{Message: "m", Category: "NotFound", Status: 404, Code: "SESSION_NOT_FOUND", Details: map[string]any{"session_id": "x"}, CorrelationId: "c1"}},
		{name: "HTTP status wins over the body's", status: 409, body: `{"category":"Conflict","status":400,"message":"m"}`,
			want: pipApplicationError{Message: "m", Category: "Conflict", Status: 409}},
		{name: "status as a string folds the body into details", status: 400, body: `{"category":"BadRequest","code":"X","status":"400","message":"m"}`,
			want: pipApplicationError{Message: "m", Category: "BadRequest", Status: 400, Code: "X",
				Details: map[string]any{"category": "BadRequest", "code": "X", "status": "400", "message": "m"}}},
		{name: "details not an object are dropped", status: 400, body: `{"category":"BadRequest","code":"X","status":400,"message":"m","details":[1]}`,
			want: pipApplicationError{Message: "m", Category: "BadRequest", Status: 400, Code: "X"}},
		{name: "not JSON becomes the message", status: 404, body: "404 page not found\n",
			want: pipApplicationError{Message: "404 page not found\n", Status: 404, Details: map[string]any{}}},
		{name: "JSON array becomes the message", status: 500, body: `[1,2]`,
			want: pipApplicationError{Message: "[1,2]", Status: 500, Details: map[string]any{}}},
		{name: "empty body", status: 405, body: "",
			want: pipApplicationError{Status: 405}},
	}
	for _, tt := range errorTests {
		t.Run("error/"+tt.name, func(t *testing.T) {
			answer(tt.status, tt.body)
			s, err := c.StoreSessionData(ctx, "c1", "x", nil)
			if s != nil {
				t.Errorf("session = %+v, want nil", s)
			}
			if got := pipAppError(t, err); !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("error = %#v, want %#v", *got, tt.want)
			}
		})
	}
}
