package rest_test

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"sessiond/api/rest"
)

// FuzzRequest sends any method, path below /sessions, query and body.
// Nothing may panic or answer 5xx, every error must be a well-formed
// ErrorDescription, and an error must change nothing. $OPEN and $CLOSED
// stand for the ids of an open and a closed session of user u1.
func FuzzRequest(f *testing.F) {
	seeds := []struct{ method, path, query, body string }{
		{"POST", "", "", `{"user":{"id":"u1","name":"Ann"},"address":"a","client":"c","data":{"k":1}}`},
		{"POST", "", "", `{"user":"u1"}`},
		{"GET", "/u1", "", ``},
		{"GET", "/u1", "session_id=$OPEN", ``},
		{"GET", "/u2", "session_id=$OPEN", ``},
		{"POST", "/u1", "session_id=$OPEN", `{"data":[1,2]}`},
		{"POST", "/u1", "session_id=$CLOSED", `{"data":null}`},
		{"DELETE", "/u1", "session_id=$OPEN", ``},
		{"DELETE", "/u1", "address=a&client=c", ``},
		{"DELETE", "/u1", "session_id=%zz", ``},
		{"PUT", "/u1", "", `{}`},
		{"POST", "/u1", "session_id=$OPEN", "{\"data\":\"\xff\"}"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") || !isASCIIPrintable(method) {
			return // not an HTTP method token: net/http refuses it before any handler
		}
		fx := newFixture(t, rest.Options{BodyLimit: 1 << 16})
		openID := fx.open("u1", "a", "c").ID
		closedID := fx.open("u1", "a", "c").ID
		noContent(t, fx.do("DELETE", "/sessions/u1?session_id="+closedID, ""))
		before := snapshot(t, fx.svc)

		rep := strings.NewReplacer("$OPEN", openID, "$CLOSED", closedID)
		u := &url.URL{Path: "/sessions" + path, RawQuery: rep.Replace(query)}
		r := httptest.NewRequest(method, "/", strings.NewReader(rep.Replace(string(body))))
		r.URL, r.RequestURI = u, u.RequestURI()
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("%s %s: status %d: %s", method, u, w.Code, w.Body)
		}
		if w.Code < 400 {
			return
		}
		var e errorJSON
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s %s: error body %q is not JSON: %v", method, u, w.Body, err)
		}
		if e.Status != w.Code || e.Category == "" || e.Code == "" || e.Message == "" {
			t.Fatalf("%s %s: malformed error description %s", method, u, w.Body)
		}
		if after := snapshot(t, fx.svc); !reflect.DeepEqual(after, before) {
			t.Fatalf("%s %s: refused with %d but the store changed", method, u, w.Code)
		}
	})
}

func isASCIIPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
