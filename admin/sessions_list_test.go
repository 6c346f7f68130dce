package admin_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/embedded"
	"sessiond/store/memory"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// engines opens a fresh store of each engine the admin API is tested on.
var engines = []struct {
	name string
	open func(t *testing.T) sessiond.Store
}{
	{"memory", func(t *testing.T) sessiond.Store { return memory.New() }},
	{"embedded", func(t *testing.T) sessiond.Store {
		st, err := embedded.Open(t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"postgres", func(t *testing.T) sessiond.Store {
		st, err := postgres.Open(t.Context(), pgtest.Schema(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"redis", func(t *testing.T) sessiond.Store {
		st, err := redis.Open(t.Context(), redistest.PrefixURL(t, redistest.BaseURL()), redis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

// sessionRes is a session resource as a client reads it.
type sessionRes struct {
	ID            string                     `json:"id"`
	Type          string                     `json:"type"`
	Attributes    map[string]json.RawMessage `json:"attributes"`
	Relationships struct {
		Services struct {
			Data []struct{ ID, Type string } `json:"data"`
		} `json:"services"`
	} `json:"relationships"`
	Links struct {
		Self string `json:"self"`
	} `json:"links"`
}

type sessionsDoc struct {
	Links struct {
		Self, First, Last, Next, Prev string
	} `json:"links"`
	Data []sessionRes `json:"data"`
	Meta struct {
		Total *int64 `json:"total"`
	} `json:"meta"`
}

// ids returns the ids of the listed sessions.
func (d sessionsDoc) ids() []string {
	var out []string
	for _, s := range d.Data {
		out = append(out, s.ID)
	}
	return out
}

// attr decodes one attribute of a session resource.
func attr[T any](t *testing.T, s sessionRes, name string) T {
	t.Helper()
	var v T
	raw, ok := s.Attributes[name]
	if !ok {
		t.Fatalf("session %s has no attribute %q: %v", s.ID, name, s.Attributes)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("attribute %s = %s: %v", name, raw, err)
	}
	return v
}

// The sessions resource on every engine: listing with each filter, paging
// and its links, sparse fields, one session with its connections, the
// instance, and the bulk close.
func TestSessionsResource(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			svc, clk := newService(t, eng.open(t))
			h := newHandler(t, svc)
			ctx := t.Context()
			key, _, err := svc.CreateAPIKey(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			// Five sessions, a millisecond apart so that the order is
			// known (newest first): three of u1, two of u2.
			var ids, tokens []string
			for i, u := range []string{"u1", "u1", "u2", "u1", "u2"} {
				req := sessiond.OpenRequest{UserID: u, UserName: "Name " + u, Client: "web", Address: "10.0.0.1",
					Data: json.RawMessage(`{"cart":1}`), User: json.RawMessage(`{"role":"x"}`)}
				if i%2 == 1 {
					req.Client, req.Address, req.APIKeyID = "app", "10.0.0.2", key.ID
				}
				if i == 4 {
					req.ExpiresIn = time.Hour
				}
				sess, token, err := svc.Open(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				ids, tokens = append(ids, sess.ID), append(tokens, token)
				clk.Add(time.Millisecond)
			}
			slices.Reverse(ids)
			slices.Reverse(tokens) // newest first, as listed
			svc.RecordConnection(ids[0], "/api/b/", 10, 20, false)
			svc.RecordConnection(ids[0], "/api/a/", 1, 2, true)
			if err := svc.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			svc.RecordConnection(ids[0], "/api/a/", 1, 2, false) // pending, not yet stored
			clk.Add(1500 * time.Millisecond)

			list := func(query string) sessionsDoc {
				t.Helper()
				w := serve(t, h, request{method: http.MethodGet, path: "/v1/sessions" + query})
				if w.Code != http.StatusOK {
					t.Fatalf("GET /v1/sessions%s: %d %s", query, w.Code, w.Body)
				}
				if got := w.Header().Get("Content-Type"); got != "application/vnd.api+json" {
					t.Errorf("Content-Type %q", got)
				}
				return decode[sessionsDoc](t, w)
			}

			all := list("")
			if !slices.Equal(all.ids(), ids) || all.Meta.Total == nil || *all.Meta.Total != 5 {
				t.Fatalf("listing: ids %v total %v; want %v, 5", all.ids(), all.Meta.Total, ids)
			}
			if bare := serve(t, h, request{method: http.MethodGet, path: "/sessions"}); !slices.Equal(decode[sessionsDoc](t, bare).ids(), ids) {
				t.Errorf("GET /sessions differs from /v1/sessions: %s", bare.Body)
			}
			if slash := serve(t, h, request{method: http.MethodGet, path: "/v1/sessions/"}); !slices.Equal(decode[sessionsDoc](t, slash).ids(), ids) {
				t.Errorf("GET /v1/sessions/ (maxctrl show sessions) differs: %s", slash.Body)
			}
			first := all.Data[0]
			if first.Type != "sessions" || first.Links.Self != "http://example.com/v1/sessions/"+ids[0] {
				t.Errorf("resource: type %q self %q", first.Type, first.Links.Self)
			}
			checkSession(t, first, sessionWant{state: "active", user: "u2", client: "web", remote: "10.0.0.1",
				apiKey: "", expires: true, idle: 1.501, ioActivity: 3, services: []string{"/api/a/", "/api/b/"}})
			checkSession(t, all.Data[1], sessionWant{state: "active", user: "u1", client: "app", remote: "10.0.0.2",
				apiKey: key.ID, idle: 1.502, services: []string{}})
			conns := attr[[]struct {
				Server     string
				State      string
				Statistics struct {
					Requests, Reads, Writes, Errors int64
					LastUsed                        *string `json:"last_used"`
				}
			}](t, first, "connections")
			if len(conns) != 2 || conns[0].Server != "/api/a/" || conns[0].State != "active" ||
				conns[0].Statistics.Requests != 2 || conns[0].Statistics.Reads != 2 || conns[0].Statistics.Writes != 4 ||
				conns[0].Statistics.Errors != 1 || conns[0].Statistics.LastUsed == nil || conns[1].Statistics.Requests != 1 {
				t.Errorf("connections: %+v", conns)
			}

			// Filters, in both forms, each alone and together.
			for query, want := range map[string][]string{
				"?filter[user]=u1": {ids[1], ids[3], ids[4]},
				"?filter=" + url.QueryEscape(`/attributes/user="u1"`): {ids[1], ids[3], ids[4]},
				"?filter[client]=app":                 {ids[1], ids[3]},
				"?filter[remote]=10.0.0.2":            {ids[1], ids[3]},
				"?filter[api_key]=" + key.ID:          {ids[1], ids[3]},
				"?filter[api_key]=":                   {ids[0], ids[2], ids[4]},
				"?filter[state]=active":               {ids[0], ids[1], ids[2], ids[3], ids[4]},
				"?filter[state]=closed":               nil,
				"?filter[user]=u1&filter[client]=app": {ids[1], ids[3]},
				"?filter[user]=u1&filter=" + url.QueryEscape(`/attributes/remote="10.0.0.1"`): {ids[4]},
				"?filter[user]=nobody&sync=false&rdns=true":                                   nil,
			} {
				got := list(query)
				if !slices.Equal(got.ids(), want) || *got.Meta.Total != int64(len(want)) {
					t.Errorf("%s: got %v (total %d), want %v", query, got.ids(), *got.Meta.Total, want)
				}
			}

			// Paging from page 0, with links carrying the filters.
			p := list("?page[size]=2&page[number]=1")
			if !slices.Equal(p.ids(), ids[2:4]) || *p.Meta.Total != 5 {
				t.Errorf("page 1 of 2: %v total %d", p.ids(), *p.Meta.Total)
			}
			pageOf := func(link string) string {
				u, err := url.Parse(link)
				if err != nil || u.Path != "/v1/sessions" {
					t.Fatalf("link %q", link)
				}
				return u.Query().Get("page[size]") + "/" + u.Query().Get("page[number]")
			}
			if got := [4]string{pageOf(p.Links.First), pageOf(p.Links.Prev), pageOf(p.Links.Next), pageOf(p.Links.Last)}; got != [4]string{"2/0", "2/0", "2/2", "2/2"} {
				t.Errorf("links first/prev/next/last: %v", got)
			}
			last := list("?page[size]=2&page[number]=2&filter[state]=active")
			if !slices.Equal(last.ids(), ids[4:]) || last.Links.Next != "" || !strings.Contains(last.Links.Prev, "filter%5Bstate%5D=active") {
				t.Errorf("last page: %v links %+v", last.ids(), last.Links)
			}
			if beyond := list("?page[size]=2&page[number]=9"); len(beyond.Data) != 0 || *beyond.Meta.Total != 5 || pageOf(beyond.Links.Prev) != "2/2" {
				t.Errorf("beyond the last page: %v %+v", beyond.ids(), beyond.Links)
			}
			if first := list("?page[size]=1000"); first.Links.Prev != "" || first.Links.Next != "" || pageOf(first.Links.Last) != "1000/0" {
				t.Errorf("one page: %+v", first.Links)
			}

			// Sparse fields keep only the attributes named.
			sparse := list("?fields[sessions]=state,user")
			if keys := slices.Sorted(maps.Keys(sparse.Data[0].Attributes)); !slices.Equal(keys, []string{"state", "user"}) {
				t.Errorf("fields[sessions]=state,user: attributes %v", keys)
			}
			if len(sparse.Data[0].Relationships.Services.Data) != 2 {
				t.Errorf("sparse fields dropped the relationships")
			}

			// One session, and its connections.
			w := serve(t, h, request{method: http.MethodGet, path: "/v1/sessions/" + ids[0]})
			if w.Code != http.StatusOK {
				t.Fatalf("GET one: %d %s", w.Code, w.Body)
			}
			one := decode[struct {
				Links struct{ Self string }
				Data  sessionRes
			}](t, w)
			if one.Data.ID != ids[0] || !reflect.DeepEqual(one.Data.Attributes, first.Attributes) || one.Links.Self != first.Links.Self {
				t.Errorf("GET one differs from its listing:\n%s\n%v", w.Body, first.Attributes)
			}
			w = serve(t, h, request{method: http.MethodGet, path: "/sessions/" + ids[0] + "?fields[sessions]=io_activity"})
			if got := decode[struct{ Data sessionRes }](t, w).Data.Attributes; len(got) != 1 || string(got["io_activity"]) != "3" {
				t.Errorf("GET one with fields: %s", w.Body)
			}
			w = serve(t, h, request{method: http.MethodGet, path: "/v1/sessions/" + ids[0] + "/connections"})
			cd := decode[struct {
				Data []struct {
					ID, Type   string
					Attributes struct {
						Server, State string
						Statistics    map[string]any
					}
				}
				Meta struct{ Total int }
			}](t, w)
			if w.Code != 200 || len(cd.Data) != 2 || cd.Data[1].ID != "/api/b/" || cd.Data[1].Type != "connections" ||
				cd.Data[1].Attributes.Server != "/api/b/" || cd.Data[1].Attributes.Statistics["reads"] != 10.0 || cd.Meta.Total != 2 {
				t.Errorf("connections: %d %s", w.Code, w.Body)
			}
			w = serve(t, h, request{method: http.MethodGet, path: "/v1/sessions/" + ids[1] + "/connections"})
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"data":[]`) {
				t.Errorf("no connections: %d %s", w.Code, w.Body)
			}

			// The instance.
			w = serve(t, h, request{method: http.MethodGet, path: "/v1/"})
			inst := decode[struct {
				Data struct {
					ID, Type   string
					Attributes struct {
						Version, Started, Store string
						Sessions                struct{ Active *int64 }
					}
				}
			}](t, w)
			a := inst.Data.Attributes
			if w.Code != 200 || inst.Data.Type != "instances" || a.Version == "" || a.Started != "2026-11-22T10:00:00.000Z" ||
				a.Store != eng.name || a.Sessions.Active == nil || *a.Sessions.Active != 5 {
				t.Errorf("GET /v1/: %d %s", w.Code, w.Body)
			}
			if w := serve(t, h, request{method: http.MethodGet, path: "/v1"}); w.Code != 200 {
				t.Errorf("GET /v1: %d %s", w.Code, w.Body)
			}

			// Bulk close: a filter is required; the matching open
			// sessions close, their tokens stop working, others stay.
			checkError(t, serve(t, h, request{method: http.MethodDelete, path: "/v1/sessions"}), http.StatusBadRequest)
			checkError(t, serve(t, h, request{method: http.MethodDelete, path: "/v1/sessions?sync=false"}), http.StatusBadRequest)
			w = serve(t, h, request{method: http.MethodDelete, path: "/v1/sessions?filter[user]=u1"})
			if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"meta":{"closed":3}}` {
				t.Fatalf("bulk close: %d %s", w.Code, w.Body)
			}
			for i, token := range tokens {
				_, err := svc.Authenticate(ctx, sessiond.Credentials{Token: token})
				if closed := i == 1 || i == 3 || i == 4; closed != (err != nil) {
					t.Errorf("session %d: token works %v after closing u1's", i, err == nil)
				}
			}
			if got := list("?filter[state]=closed&filter[user]=u1"); len(got.Data) != 3 || attr[string](t, got.Data[0], "state") != "closed" {
				t.Errorf("closed sessions: %v", got.ids())
			}
			w = serve(t, h, request{method: http.MethodDelete, path: "/sessions?filter=" + url.QueryEscape(`/attributes/user="u1"`)})
			if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"meta":{"closed":0}}` {
				t.Errorf("closing them again: %d %s", w.Code, w.Body)
			}
			w = serve(t, h, request{method: http.MethodDelete, path: "/sessions?filter[client]=web&filter[user]=u2&filter[state]=active"})
			if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"meta":{"closed":2}}` {
				t.Errorf("closing with two filters: %d %s", w.Code, w.Body)
			}
			w = serve(t, h, request{method: http.MethodGet, path: "/v1/?pretty=true"})
			if !strings.Contains(w.Body.String(), "\n      \"sessions\": {\n        \"active\": 0\n") {
				t.Errorf("instance after closes: %s", w.Body)
			}
		})
	}
}

type sessionWant struct {
	state, user, client, remote, apiKey string
	expires                             bool
	idle                                float64
	ioActivity                          int
	services                            []string
}

// checkSession checks every attribute of a listed session and its
// relationships.
func checkSession(t *testing.T, s sessionRes, want sessionWant) {
	t.Helper()
	if got := slices.Sorted(maps.Keys(s.Attributes)); !slices.Equal(got, []string{"api_key", "client", "connected",
		"connections", "data", "expires", "idle", "io_activity", "last_request", "memory", "remote", "state", "user", "user_data", "user_name"}) {
		t.Errorf("attributes: %v", got)
	}
	str := func(name, want string) {
		t.Helper()
		if got := attr[string](t, s, name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	str("state", want.state)
	str("user", want.user)
	str("user_name", "Name "+want.user)
	str("client", want.client)
	str("remote", want.remote)
	str("api_key", want.apiKey)
	for _, name := range []string{"connected", "last_request"} {
		if _, err := time.Parse(time.RFC3339, attr[string](t, s, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if exp := attr[*string](t, s, "expires"); (exp != nil) != want.expires {
		t.Errorf("expires: %v, want set %v", exp, want.expires)
	}
	if got := attr[float64](t, s, "idle"); got != want.idle {
		t.Errorf("idle: got %v, want %v", got, want.idle)
	}
	if got := attr[int](t, s, "io_activity"); got != want.ioActivity {
		t.Errorf("io_activity: got %v, want %v", got, want.ioActivity)
	}
	if got := string(s.Attributes["data"]); got != `{"cart":1}` {
		t.Errorf("data: %s", got)
	}
	if got := string(s.Attributes["user_data"]); got != `{"role":"x"}` {
		t.Errorf("user_data: %s", got)
	}
	if got := attr[map[string]int](t, s, "memory"); got["total"] != len(`{"cart":1}`)+len(`{"role":"x"}`) {
		t.Errorf("memory: %v", got)
	}
	var services []string
	for _, r := range s.Relationships.Services.Data {
		if r.Type != "services" {
			t.Errorf("relationship type %q", r.Type)
		}
		services = append(services, r.ID)
	}
	if !slices.Equal(services, want.services) && !(len(services) == 0 && len(want.services) == 0) {
		t.Errorf("services: got %v, want %v", services, want.services)
	}
}
