package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessiond"
)

// MaxScale's own clients read the sessions resource unchanged (SPEC
// section 7). This test replays the requests of maxctrl and MaxGUI as
// their source sends them, and checks that every field they print is
// there with the type they expect. Sources: github.com/mariadb-corporation/MaxScale
// at f72af99272 (branch 24.02).
//
// Both use axios, which sends Accept "application/json, text/plain, */*"
// and HTTP Basic credentials (maxctrl/lib/common.js:372, args.auth; the
// defaults admin/mariadb and 127.0.0.1:8989 are maxctrl/lib/core.js:149,
// 157, 166, hence our default admin port 8989). maxctrl prefixes /v1/
// (common.js:579) and appends sync=false with --skip-sync (common.js:576);
// MaxGUI has baseURL "/" (maxgui/src/utils/axios.js:27), so it calls the
// routes without /v1, and sends Content-Type application/json and
// X-Requested-With even on a GET (axios.js:28-32).

// axiosRequest sends one request as both tools do and decodes the answer.
func axiosRequest(t *testing.T, srv *httptest.Server, method, path string, gui bool) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPassword)
	req.Header.Set("Accept", "application/json, text/plain, */*")
	if gui {
		req.Header.Set("X-Requested-With", "XMLHttpRequest")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Cache-Control", "no-cache")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if len(b) > 0 {
		// axios parses any body as JSON whatever its Content-Type.
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, doc
}

// getPath reads a maxctrl field path ("attributes.connections[].server")
// as maxctrl's _.getPath does: "[]" maps over an array. ok is false when a
// step is missing (maxctrl then prints its default, "").
func getPath(v any, path string) (any, bool) {
	if path == "" {
		return v, true
	}
	step, rest, _ := strings.Cut(path, ".")
	name, each := strings.CutSuffix(step, "[]")
	obj, isObj := v.(map[string]any)
	if !isObj {
		return nil, false
	}
	v, ok := obj[name]
	if !ok {
		return nil, false
	}
	if !each {
		return getPath(v, rest)
	}
	arr, isArr := v.([]any)
	if !isArr {
		return nil, false
	}
	out := []any{}
	for _, e := range arr {
		x, ok := getPath(e, rest)
		if !ok {
			return nil, false
		}
		out = append(out, x)
	}
	return out, true
}

// field is one column or row maxctrl or MaxGUI prints, with the JSON type
// it needs ("string", "number", "object", "array", "date": a string that
// JavaScript's Date parses, "strings": an array of strings, "absent":
// a MaxScale-only field that sessiond has not, printed empty).
type field struct {
	path, kind, source string
}

func checkFields(t *testing.T, res map[string]any, fields []field) {
	t.Helper()
	for _, f := range fields {
		v, ok := getPath(res, f.path)
		if f.kind == "absent" {
			if ok && v != nil {
				if _, isArr := v.([]any); !isArr {
					t.Errorf("%s (%s): expected absent, got %v", f.path, f.source, v)
				}
			}
			continue
		}
		if !ok {
			t.Errorf("%s (%s): missing", f.path, f.source)
			continue
		}
		good := false
		switch f.kind {
		case "string":
			_, good = v.(string)
		case "number":
			_, good = v.(float64)
		case "object":
			_, good = v.(map[string]any)
		case "array":
			_, good = v.([]any)
		case "date":
			s, _ := v.(string)
			_, err := time.Parse(time.RFC3339, s)
			good = err == nil
		case "strings":
			arr, isArr := v.([]any)
			good = isArr
			for _, e := range arr {
				if _, isStr := e.(string); !isStr {
					good = false
				}
			}
		}
		if !good {
			t.Errorf("%s (%s): want %s, got %T %v", f.path, f.source, f.kind, v, v)
		}
	}
}

// maxctrl list sessions: maxctrl/lib/list.js:142-183 (list_sessions_fields),
// requested at list.js:446-450 as GET sessions[?rdns=true].
var maxctrlListFields = []field{
	{"id", "string", "list.js:145"},
	{"attributes.user", "string", "list.js:150"},
	{"attributes.remote", "string", "list.js:155"},
	{"attributes.connected", "date", "list.js:160, dateToLocaleString"},
	{"attributes.idle", "number", "list.js:165"},
	{"relationships.services.data[].id", "strings", "list.js:171"},
	{"attributes.memory.total", "number", "list.js:176"},
	{"attributes.io_activity", "number", "list.js:181"},
}

// maxctrl show session <id> and show sessions: maxctrl/lib/show.js:283-374
// (session_fields), requested at show.js:895 (sessions/<id>[?rdns=true])
// and show.js:920 (sessions/, with the trailing slash).
var maxctrlShowFields = []field{
	{"id", "string", "show.js:286"},
	{"relationships.services.data[].id", "strings", "show.js:291"},
	{"attributes.state", "string", "show.js:296"},
	{"attributes.user", "string", "show.js:301"},
	{"attributes.remote", "string", "show.js:306"},
	{"attributes.port", "absent", "show.js:311"},
	{"attributes.database", "absent", "show.js:316"},
	{"attributes.connected", "date", "show.js:321"},
	{"attributes.idle", "number", "show.js:327"},
	{"attributes.parameters", "absent", "show.js:332"},
	{"attributes.client.cipher", "absent", "show.js:337 (our client is a string)"},
	{"attributes.client.connection_attributes", "absent", "show.js:342"},
	{"attributes.connections[].server", "strings", "show.js:347"},
	{"attributes.queries[].statement", "absent", "show.js:357"},
	{"attributes.log", "absent", "show.js:362"},
	{"attributes.memory", "object", "show.js:367"},
	{"attributes.io_activity", "number", "show.js:372"},
}

// MaxGUI's sessions table: maxgui/src/pages/Dashboard/Sessions.vue:63-67
// destructures these from each session (relationships.services must be an
// object: it is destructured without a default), the memory cell renders
// data.total of an object prop (components/SessionsTable/MemoryCell.vue:13,
// 45), and the store reads meta.total (store/modules/session.js:48).
var guiFields = []field{
	{"id", "string", "Sessions.vue:64"},
	{"attributes.idle", "number", "Sessions.vue:66"},
	{"attributes.connected", "date", "Sessions.vue:66"},
	{"attributes.user", "string", "Sessions.vue:66"},
	{"attributes.remote", "string", "Sessions.vue:66"},
	{"attributes.memory", "object", "Sessions.vue:66, MemoryCell.vue:45"},
	{"attributes.memory.total", "number", "MemoryCell.vue:13"},
	{"attributes.io_activity", "number", "Sessions.vue:66"},
	{"relationships.services.data", "array", "Sessions.vue:67"},
}

func TestMaxScaleClients(t *testing.T) {
	svc, _ := newService(t, nil)
	srv := httptest.NewServer(newHandler(t, svc))
	defer srv.Close()
	ctx := t.Context()
	var ids []string
	for _, u := range []string{"a", "b", "c"} {
		sess, _, err := svc.Open(ctx, sessiond.OpenRequest{UserID: u, Address: "192.0.2.1", Client: "web"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	svc.RecordConnection(ids[0], "/api/", 1, 2, false) // one session with a service, two without

	collection := func(path string, gui bool) []any {
		t.Helper()
		status, doc := axiosRequest(t, srv, "GET", path, gui)
		if status != 200 {
			t.Fatalf("GET %s: %d %v", path, status, doc)
		}
		data, ok := doc["data"].([]any)
		if !ok || len(data) != 3 {
			t.Fatalf("GET %s: data %v", path, doc["data"])
		}
		return data
	}

	// maxctrl list sessions [--rdns] [--skip-sync].
	for _, path := range []string{"/v1/sessions", "/v1/sessions?rdns=true", "/v1/sessions?rdns=true&sync=false"} {
		for _, res := range collection(path, false) {
			checkFields(t, res.(map[string]any), maxctrlListFields)
		}
	}
	// maxctrl show sessions, and show session <id> [--rdns].
	for _, res := range collection("/v1/sessions/", false) {
		checkFields(t, res.(map[string]any), maxctrlShowFields)
	}
	for _, path := range []string{"/v1/sessions/" + ids[0], "/v1/sessions/" + ids[1] + "?rdns=true"} {
		status, doc := axiosRequest(t, srv, "GET", path, false)
		if status != 200 {
			t.Fatalf("GET %s: %d", path, status)
		}
		checkFields(t, doc["data"].(map[string]any), maxctrlShowFields)
	}
	// MaxGUI's dashboard: pages of 50 from page 0 (session.js:17-19, 44,
	// 109), without /v1.
	status, doc := axiosRequest(t, srv, "GET", "/sessions?page[size]=50&page[number]=0", true)
	if status != 200 {
		t.Fatalf("MaxGUI's page: %d %v", status, doc)
	}
	if total, ok := getPath(doc, "meta.total"); !ok || total != 3.0 {
		t.Errorf("meta.total (session.js:48): %v", total)
	}
	for _, res := range doc["data"].([]any) {
		checkFields(t, res.(map[string]any), guiFields)
	}
	// MaxGUI's filtered tables (session.js:70) with MaxScale's filter form
	// on an attribute sessiond has.
	status, doc = axiosRequest(t, srv, "GET", `/sessions?filter=/attributes/user="b"&page[size]=10&page[number]=0`, true)
	if status != 200 || len(doc["data"].([]any)) != 1 {
		t.Errorf("MaxGUI filter: %d %v", status, doc)
	}

	// maxctrl destroy session <id> [--ttl N]: destroy.js:177 always sends
	// ?ttl=, 0 by default; axios takes any 2xx as success. MaxGUI's kill
	// (session.js:88) sends DELETE /sessions/<id>; it shows its success
	// message only on 200 (session.js:89), but MaxScale answers 204 too
	// (Documentation/REST-API/Resources-Session.md:343).
	for _, path := range []string{"/v1/sessions/" + ids[0] + "?ttl=0", "/v1/sessions/" + ids[1] + "?ttl=5", "/sessions/" + ids[2]} {
		if status, _ := axiosRequest(t, srv, "DELETE", path, strings.HasPrefix(path, "/sessions")); status/100 != 2 {
			t.Errorf("DELETE %s: %d", path, status)
		}
	}
	for i, want := range []bool{false, true, false} {
		sess, err := svc.Get(ctx, ids[i])
		if err != nil || sess.Active != want {
			t.Errorf("session %d after destroy: active %v, want %v (%v)", i, sess.Active, want, err)
		}
	}
	// maxctrl's error path prints status and body (common.js:409-433).
	status, doc = axiosRequest(t, srv, "GET", "/v1/sessions/0123456789abcdef0123456789abcdef", false)
	if status != 404 || doc["errors"] == nil {
		t.Errorf("unknown session: %d %v", status, doc)
	}
}
