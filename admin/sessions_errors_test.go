package admin_test

import (
	"net/url"
	"strings"
	"testing"

	"sessiond"
)

// Every malformed parameter, unknown id and missing credential of the
// sessions routes answers a JSON:API error and changes nothing.
func TestSessionsErrors(t *testing.T) {
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)
	sess, token, err := svc.Open(t.Context(), sessiond.OpenRequest{UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	unknown := "0123456789abcdef0123456789abcdef"
	q := url.QueryEscape
	tests := []struct {
		name   string
		req    request
		status int
		detail string // a part of the error's detail
	}{
		{"no credentials: list", request{method: "GET", path: "/v1/sessions", noAuth: true}, 401, ""},
		{"wrong password: list", request{method: "GET", path: "/sessions", user: testUser, password: "x"}, 401, ""},
		{"wrong user: one", request{method: "GET", path: "/v1/sessions/" + sess.ID, user: "admin", password: testPassword}, 401, ""},
		{"no credentials: connections", request{method: "GET", path: "/v1/sessions/" + sess.ID + "/connections", noAuth: true}, 401, ""},
		{"no credentials: bulk close", request{method: "DELETE", path: "/v1/sessions?filter[user]=u", noAuth: true}, 401, ""},
		{"no credentials: instance", request{method: "GET", path: "/v1/", noAuth: true}, 401, ""},

		{"unknown id", request{method: "GET", path: "/v1/sessions/" + unknown}, 404, unknown},
		{"unknown id, bare", request{method: "GET", path: "/sessions/" + unknown}, 404, unknown},
		{"malformed id", request{method: "GET", path: "/v1/sessions/not-an-id"}, 0, ""},
		{"unknown id: connections", request{method: "GET", path: "/v1/sessions/" + unknown + "/connections"}, 404, unknown},
		{"unknown sub-resource", request{method: "GET", path: "/v1/sessions/" + sess.ID + "/nothing"}, 404, ""},

		{"page[size]=-1", request{method: "GET", path: "/v1/sessions?page[size]=-1"}, 400, "page[size]"},
		{"page[size]=0", request{method: "GET", path: "/v1/sessions?page[size]=0"}, 400, "page[size]"},
		{"page[size]=1001", request{method: "GET", path: "/v1/sessions?page[size]=1001"}, 400, "1000"},
		{"page[size]=x", request{method: "GET", path: "/v1/sessions?page[size]=x"}, 400, "page[size]"},
		{"page[size] twice", request{method: "GET", path: "/v1/sessions?page[size]=1&page[size]=2"}, 400, "once"},
		{"page[number]=x", request{method: "GET", path: "/v1/sessions?page[number]=x"}, 400, "page[number]"},
		{"page[number]=-1", request{method: "GET", path: "/v1/sessions?page[number]=-1"}, 400, "page[number]"},
		{"page[number]=1.5", request{method: "GET", path: "/v1/sessions?page[number]=1.5"}, 400, "page[number]"},
		{"page[number] huge", request{method: "GET", path: "/v1/sessions?page[number]=99999999999999999999"}, 400, "page[number]"},
		{"unknown field", request{method: "GET", path: "/v1/sessions?fields[sessions]=state,nope"}, 400, `"nope"`},
		{"unknown field, one", request{method: "GET", path: "/v1/sessions/" + sess.ID + "?fields[sessions]=token"}, 400, `"token"`},
		{"fields of another type", request{method: "GET", path: "/v1/sessions?fields[services]=id"}, 400, "fields[services]"},
		{"unknown filter", request{method: "GET", path: "/v1/sessions?filter[name]=x"}, 400, `"name"`},
		{"malformed filter", request{method: "GET", path: "/v1/sessions?filter[user=x"}, 400, "filter[name]"},
		{"empty filter", request{method: "GET", path: "/v1/sessions?filter[user]="}, 400, "empty"},
		{"bad state", request{method: "GET", path: "/v1/sessions?filter[state]=open"}, 400, "active, closed or expired"},
		{"unknown MaxScale filter", request{method: "GET", path: "/v1/sessions?filter=" + q(`/attributes/port="1"`)}, 400, `"port"`},
		{"MaxScale filter on relationships", request{method: "GET", path: "/v1/sessions?filter=" + q(`/relationships/services/data/0/id="s"`)}, 400, "/attributes/"},
		{"MaxScale filter not JSON", request{method: "GET", path: "/v1/sessions?filter=" + q(`/attributes/user=u`)}, 400, "JSON string"},
		{"MaxScale filter not a string", request{method: "GET", path: "/v1/sessions?filter=" + q(`/attributes/user=1`)}, 400, "JSON string"},
		{"MaxScale filter without value", request{method: "GET", path: "/v1/sessions?filter=/attributes/user"}, 400, "filter="},
		{"conflicting filters", request{method: "GET", path: "/v1/sessions?filter[user]=a&filter=" + q(`/attributes/user="b"`)}, 400, "twice"},
		{"unknown parameter", request{method: "GET", path: "/v1/sessions?sort=id"}, 400, `"sort"`},
		{"pretty=maybe", request{method: "GET", path: "/v1/sessions?pretty=maybe"}, 400, "pretty"},
		{"parameter on connections", request{method: "GET", path: "/v1/sessions/" + sess.ID + "/connections?page[size]=1"}, 400, "page[size]"},
		{"parameter on instance", request{method: "GET", path: "/v1/?filter[user]=u"}, 400, "filter[user]"},

		{"bulk close without filter", request{method: "DELETE", path: "/v1/sessions"}, 400, "at least one filter"},
		{"bulk close with only ignored parameters", request{method: "DELETE", path: "/sessions?sync=false&rdns=true"}, 400, "at least one filter"},
		{"bulk close, unknown filter", request{method: "DELETE", path: "/v1/sessions?filter[id]=x"}, 400, `"id"`},
		{"bulk close, paging", request{method: "DELETE", path: "/v1/sessions?filter[user]=u&page[size]=1"}, 400, "page[size]"},
		{"bulk close, bad state", request{method: "DELETE", path: "/v1/sessions?filter[state]=x"}, 400, "state"},

		{"method not allowed: collection", request{method: "PUT", path: "/v1/sessions"}, 405, "PUT"},
		{"method not allowed: one", request{method: "PATCH", path: "/v1/sessions/" + sess.ID}, 405, "PATCH"},
		{"method not allowed: instance", request{method: "DELETE", path: "/v1/"}, 405, "DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, h, tt.req)
			status := tt.status
			if status == 0 { // whatever the Service says of a malformed id, as a JSON:API error
				status = w.Code
				if status < 400 {
					t.Fatalf("malformed id: %d", status)
				}
			}
			doc := checkError(t, w, status)
			if !strings.Contains(doc.Errors[0].Detail, tt.detail) {
				t.Errorf("detail %q does not mention %q", doc.Errors[0].Detail, tt.detail)
			}
		})
	}
	if _, err := svc.Authenticate(t.Context(), sessiond.Credentials{Token: token}); err != nil {
		t.Errorf("a refused request closed the session: %v", err)
	}
}

// Answers are JSON:API unless the client's Accept asks only for plain
// JSON; errors too.
func TestSessionsContentType(t *testing.T) {
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)
	for accept, want := range map[string]string{
		"":                                  "application/vnd.api+json",
		"application/vnd.api+json":          "application/vnd.api+json",
		"application/json, text/plain, */*": "application/vnd.api+json", // axios: maxctrl, MaxGUI
		"application/json":                  "application/json",
		"application/json;q=0.9, text/html": "application/json",
		"text/html":                         "application/vnd.api+json",
		"application/vnd.api+json;q=0, application/json": "application/json",
	} {
		for _, path := range []string{"/v1/sessions", "/v1/sessions/0123456789abcdef0123456789abcdef", "/v1/"} {
			w := serve(t, h, request{method: "GET", path: path, accept: accept})
			if got := w.Header().Get("Content-Type"); got != want {
				t.Errorf("Accept %q, GET %s: Content-Type %q, want %q", accept, path, got, want)
			}
		}
	}
}
