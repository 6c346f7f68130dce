package commandable_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"sessiond/api/commandable"
)

// FuzzCommand sends any command name and body. Nothing may panic or answer
// 5xx, every error must be a well-formed ErrorDescription with the HTTP
// status in it, and an error must change nothing. In bodies, $OPEN and
// $CLOSED stand for the ids of an open and a closed session, so that the
// fuzzer reaches past "unknown id".
func FuzzCommand(f *testing.F) {
	seeds := []struct{ command, body string }{
		{"get_session_by_id", `{"session_id":"$OPEN"}`},
		{"get_session_by_id", `{"session_id":5}`},
		{"get_sessions", ``},
		{"get_sessions", `{"filter":{"user_id":"u1","active":"true","from_time":"2026-11-22T10:00:00+01:00"},"paging":{"skip":"0","take":"10","total":"true"}}`},
		{"get_sessions", `{"filter":{"active":"maybe"},"paging":{"skip":"abc","take":-1}}`},
		{"open_session", `{"user_id":"u1","user_name":"Ann","address":"a","client":"c","user":{"id":"u1"},"data":[1],"expires_in":"60"}`},
		{"open_session", `{"expires_in":-1}`},
		{"store_session_data", `{"session_id":"$OPEN","data":{"k":"v"}}`},
		{"store_session_data", `{"session_id":"$CLOSED","data":{"k":"v"}}`},
		{"update_session_user", `{"session_id":"$OPEN","user":null}`},
		{"update_session_user", `{"session_id":"$CLOSED","user":{}}`},
		{"close_session", `{"session_id":"$OPEN"}`},
		{"close_expired_sessions", `{}`},
		{"delete_session_by_id", `{"session_id":"$CLOSED"}`},
		{"delete_session_by_id", `[]`},
		{"nope", `{}`},
		{"get_sessions", `{"filter":` + strings.Repeat("[", 100) + `}`},
		{"open_session", "{\"user_id\":\"\xff\"}"},
	}
	for _, s := range seeds {
		f.Add(s.command, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, command string, body []byte) {
		fx := newFixture(t, commandable.Options{BodyLimit: 1 << 16})
		openID := fx.open(`{"user_id":"u1","user_name":"Ann","user":{"id":"u1"},"data":{"k":1},"expires_in":3600}`).ID
		closedID := fx.open(`{"user_id":"u2"}`).ID
		fx.call("close_session", `{"session_id":"`+closedID+`"}`)
		before := snapshot(t, fx.svc)

		b := strings.NewReplacer("$OPEN", openID, "$CLOSED", closedID).Replace(string(body))
		r := httptest.NewRequest(http.MethodPost, "/v1/sessions/"+url.PathEscape(command), strings.NewReader(b))
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", command, b, w.Code, w.Body)
		}
		if w.Code < 400 {
			return
		}
		var e errorJSON
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s %q: error body %q is not JSON: %v", command, b, w.Body, err)
		}
		if e.Status != w.Code || e.Category == "" || e.Code == "" || e.Message == "" {
			t.Fatalf("%s %q: malformed error description %s", command, b, w.Body)
		}
		if after := snapshot(t, fx.svc); !reflect.DeepEqual(after, before) {
			t.Fatalf("%s %q: refused with %d but the store changed", command, b, w.Code)
		}
	})
}
