package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"sessiond"
)

// FuzzCreateAPIKey checks that no body makes POST /v1/apikeys panic or
// answer 5xx, and that a refused body creates no key.
func FuzzCreateAPIKey(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `{"data":null}`, `{"data":{}}`,
		`{"data":{"type":"apikeys","attributes":{"name":"a"}}}`,
		`{"data":{"attributes":{"name":1}}}`, `{"data":{"id":"x"}}`,
		`{"data":{"type":"sessions"}}`, `{"data":[[[[`, `{"data":{"attributes":{"name":"\ud800"}}}`,
	} {
		f.Add(seed)
	}
	svc, _ := newService(f, nil)
	h := newHandler(f, svc)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body string) {
		before, err := svc.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := serve(t, h, request{method: http.MethodPost, path: "/v1/apikeys", body: body, contentType: "application/json"})
		after, err := svc.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case w.Code >= 500:
			t.Fatalf("body %q: got %d, want no 5xx; %s", body, w.Code, w.Body)
		case w.Code == http.StatusCreated:
			if len(after) != len(before)+1 {
				t.Fatalf("body %q: 201 but keys went from %d to %d", body, len(before), len(after))
			}
		default:
			checkError(t, w, w.Code)
			if len(after) != len(before) {
				t.Fatalf("body %q: refused with %d but keys went from %d to %d", body, w.Code, len(before), len(after))
			}
		}
	})
}

// FuzzListSessionsQuery checks that no query makes GET /v1/sessions or the
// bulk DELETE panic or answer 5xx, that every refusal is a JSON:API
// error, and that a refused bulk close closes nothing.
func FuzzListSessionsQuery(f *testing.F) {
	for _, seed := range []string{
		``, `page[size]=1`, `page[number]=-1`, `page[size]=x`, `fields[sessions]=state,user`, `fields[sessions]=`,
		`filter[user]=u`, `filter[state]=active`, `filter[api_key]=`, `filter=/attributes/user="u"`, `filter=/attributes/user=`,
		`filter[]=x`, `filter[user`, `sync=false&rdns=true`, `pretty=true`, `%zz`, `filter=%22`, `page[number]=9223372036854775807`,
	} {
		f.Add(seed)
	}
	svc, _ := newService(f, nil)
	h := newHandler(f, svc)
	ctx := context.Background()
	active := func(t testing.TB) int64 {
		p, err := svc.List(ctx, sessiond.Filter{State: sessiond.StateActive}, sessiond.Paging{Take: 1, Total: true})
		if err != nil {
			t.Fatal(err)
		}
		return *p.Total
	}
	fill := func(t testing.TB) { // three active sessions before each call
		for n := active(t); n < 3; n++ {
			if _, _, err := svc.Open(ctx, sessiond.OpenRequest{UserID: "u", Client: "c"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	do := func(method, query string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/v1/sessions", nil)
		r.URL.RawQuery = query // as sent, even if malformed
		r.SetBasicAuth(testUser, testPassword)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	f.Fuzz(func(t *testing.T, query string) {
		w := do(http.MethodGet, query)
		if w.Code >= 500 {
			t.Fatalf("GET ?%s: %d %s", query, w.Code, w.Body)
		}
		if w.Code != http.StatusOK {
			checkError(t, w, w.Code)
		}
		fill(t)
		w = do(http.MethodDelete, query)
		if w.Code >= 500 {
			t.Fatalf("DELETE ?%s: %d %s", query, w.Code, w.Body)
		}
		if w.Code != http.StatusOK {
			checkError(t, w, w.Code)
			if n := active(t); n != 3 {
				t.Fatalf("DELETE ?%s refused with %d, but %d sessions are active of 3", query, w.Code, n)
			}
		}
	})
}
