package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/admin"
	"sessiond/internal/clock"
	"sessiond/store/memory"
)

const (
	testUser     = "root"
	testPassword = "correct horse battery staple"
)

var epoch = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// newService returns a Service over store (a fresh memory store when nil)
// and its fake clock.
func newService(t testing.TB, store sessiond.Store) (*sessiond.Service, *clock.Fake) {
	t.Helper()
	if store == nil {
		store = memory.New()
	}
	clk := clock.NewFake(epoch)
	return sessiond.NewService(store, clk, sessiond.Config{}, nil), clk
}

// newHandler returns the admin handler with one configured user.
func newHandler(t testing.TB, svc *sessiond.Service) http.Handler {
	t.Helper()
	h, err := admin.New(svc, admin.Options{Users: map[string]string{testUser: testPassword}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	return h
}

// request describes one call to the handler. Requests carry the test
// user's credentials unless noAuth is set or user is.
type request struct {
	method, path, body string
	contentType        string
	accept             string
	user, password     string
	noAuth             bool
}

func serve(t *testing.T, h http.Handler, req request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, req.path, body)
	if req.contentType != "" {
		r.Header.Set("Content-Type", req.contentType)
	}
	if req.accept != "" {
		r.Header.Set("Accept", req.accept)
	}
	switch {
	case req.noAuth:
	case req.user != "":
		r.SetBasicAuth(req.user, req.password)
	default:
		r.SetBasicAuth(testUser, testPassword)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// errorDoc is a JSON:API error document as a client reads it.
type errorDoc struct {
	Errors []struct {
		Status string `json:"status"`
		Code   string `json:"code"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// checkError checks that w is a JSON:API error answer with the status.
func checkError(t *testing.T, w *httptest.ResponseRecorder, status int) errorDoc {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status: got %d, want %d; body %s", w.Code, status, w.Body)
	}
	if got, want := w.Header().Get("Content-Type"), admin.MediaType; got != want {
		t.Errorf("Content-Type: got %q, want %q", got, want)
	}
	var doc errorDoc
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("decoding the error document %q: %v", w.Body, err)
	}
	if len(doc.Errors) != 1 {
		t.Fatalf("errors: got %d, want 1: %s", len(doc.Errors), w.Body)
	}
	e := doc.Errors[0]
	if got, want := e.Status, strconv.Itoa(status); got != want {
		t.Errorf("error status: got %q, want %q", got, want)
	}
	if got, want := e.Title, http.StatusText(status); got != want {
		t.Errorf("error title: got %q, want %q", got, want)
	}
	if e.Detail == "" {
		t.Errorf("error detail is empty: %s", w.Body)
	}
	return doc
}

// apiKeyDoc is a single API key document as a client reads it.
type apiKeyDoc struct {
	Links struct {
		Self string `json:"self"`
	} `json:"links"`
	Data apiKeyRes `json:"data"`
}

type apiKeyRes struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Attributes struct {
		Name    string  `json:"name"`
		Secret  *string `json:"secret"`
		Created string  `json:"created"`
	} `json:"attributes"`
	Links struct {
		Self string `json:"self"`
	} `json:"links"`
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %q: %v", w.Body, err)
	}
	return v
}

func TestAuthentication(t *testing.T) {
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)
	tests := []struct {
		name string
		req  request
		want int
	}{
		{"no credentials", request{noAuth: true}, http.StatusUnauthorized},
		{"wrong password", request{user: testUser, password: "wrong"}, http.StatusUnauthorized},
		{"wrong user", request{user: "admin", password: testPassword}, http.StatusUnauthorized},
		{"empty password", request{user: testUser, password: ""}, http.StatusUnauthorized},
		{"right credentials", request{}, http.StatusOK},
	}
	for _, tt := range tests {
		for _, path := range []string{"/v1/apikeys", "/apikeys"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				tt.req.method, tt.req.path = http.MethodGet, path
				w := serve(t, h, tt.req)
				if tt.want == http.StatusOK {
					if w.Code != http.StatusOK {
						t.Fatalf("status: got %d, want 200; body %s", w.Code, w.Body)
					}
					if got := w.Header().Get("WWW-Authenticate"); got != "" {
						t.Errorf("WWW-Authenticate on success: got %q, want none", got)
					}
					return
				}
				checkError(t, w, tt.want)
				if got, want := w.Header().Get("WWW-Authenticate"), `Basic realm="sessiond"`; got != want {
					t.Errorf("WWW-Authenticate: got %q, want %q", got, want)
				}
			})
		}
	}
}

func TestUnauthenticatedClientLearnsNoRoutes(t *testing.T) {
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)
	tests := []struct {
		name, method, path string
	}{
		{"unknown path", http.MethodGet, "/v1/nothing-here"},
		{"wrong method", http.MethodPut, "/v1/apikeys"},
		{"unknown key", http.MethodDelete, "/v1/apikeys/0123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, h, request{method: tt.method, path: tt.path, noAuth: true})
			checkError(t, w, http.StatusUnauthorized)
		})
	}
}

func TestNewWithoutUsersUsesTheAdminPassword(t *testing.T) {
	svc, _ := newService(t, nil)
	dir := t.TempDir()
	var out strings.Builder
	h, err := admin.New(svc, admin.Options{DataDir: dir, Stdout: &out})
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	pw, err := admin.LoadOrCreatePassword(dir, "", io.Discard)
	if err != nil {
		t.Fatalf("LoadOrCreatePassword: %v", err)
	}
	if !strings.Contains(out.String(), pw) {
		t.Errorf("the generated password was not printed: %q", out.String())
	}
	if w := serve(t, h, request{method: http.MethodGet, path: "/v1/apikeys", user: admin.DefaultUser, password: pw}); w.Code != http.StatusOK {
		t.Errorf("admin with the generated password: got %d, want 200; body %s", w.Code, w.Body)
	}
	if w := serve(t, h, request{method: http.MethodGet, path: "/v1/apikeys", user: admin.DefaultUser, password: pw + "x"}); w.Code != http.StatusUnauthorized {
		t.Errorf("admin with a wrong password: got %d, want 401", w.Code)
	}

	// SESSIOND_ADMIN_PASSWORD replaces the stored password.
	h, err = admin.New(svc, admin.Options{DataDir: dir, AdminPassword: "from-env", Stdout: &out})
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	if w := serve(t, h, request{method: http.MethodGet, path: "/v1/apikeys", user: admin.DefaultUser, password: "from-env"}); w.Code != http.StatusOK {
		t.Errorf("admin with the env password: got %d, want 200", w.Code)
	}
	if w := serve(t, h, request{method: http.MethodGet, path: "/v1/apikeys", user: admin.DefaultUser, password: pw}); w.Code != http.StatusUnauthorized {
		t.Errorf("admin with the file password while the env sets one: got %d, want 401", w.Code)
	}
}

func TestNewRefusesBadUsers(t *testing.T) {
	svc, _ := newService(t, nil)
	tests := []struct {
		name  string
		users map[string]string
	}{
		{"empty password", map[string]string{"root": ""}},
		{"empty name", map[string]string{"": "pw"}},
		{"colon in name", map[string]string{"a:b": "pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := admin.New(svc, admin.Options{Users: tt.users, DataDir: t.TempDir()}); err == nil {
				t.Errorf("admin.New: got no error, want one")
			}
		})
	}
}

func TestAPIKeys(t *testing.T) {
	for _, prefix := range []string{"/v1", ""} {
		t.Run("prefix "+prefix, func(t *testing.T) {
			svc, _ := newService(t, nil)
			h := newHandler(t, svc)

			// Create.
			w := serve(t, h, request{method: http.MethodPost, path: prefix + "/apikeys", contentType: admin.MediaType,
				body: `{"data":{"type":"apikeys","attributes":{"name":"billing"}}}`})
			if w.Code != http.StatusCreated {
				t.Fatalf("create: got %d, want 201; body %s", w.Code, w.Body)
			}
			if got, want := w.Header().Get("Content-Type"), admin.MediaType; got != want {
				t.Errorf("Content-Type: got %q, want %q", got, want)
			}
			created := decode[apiKeyDoc](t, w)
			k := created.Data
			if k.ID == "" || k.Type != "apikeys" || k.Attributes.Name != "billing" {
				t.Errorf("created key: got id %q type %q name %q, want an id, apikeys, billing", k.ID, k.Type, k.Attributes.Name)
			}
			if k.Attributes.Secret == nil || *k.Attributes.Secret == "" {
				t.Fatalf("created key has no secret: %s", w.Body)
			}
			secret := *k.Attributes.Secret
			if got, want := k.Attributes.Created, "2026-11-22T10:00:00.000Z"; got != want {
				t.Errorf("created: got %q, want %q", got, want)
			}
			self := "http://example.com/v1/apikeys/" + k.ID
			if k.Links.Self != self || created.Links.Self != self || w.Header().Get("Location") != self {
				t.Errorf("links: got data %q, top %q, Location %q, want %q", k.Links.Self, created.Links.Self, w.Header().Get("Location"), self)
			}
			if _, err := svc.Authenticate(context.Background(), sessiond.Credentials{APIKey: k.ID, Secret: secret}); err != nil {
				t.Errorf("authenticating with the new key: %v", err)
			}

			// List: the key, no secret.
			w = serve(t, h, request{method: http.MethodGet, path: prefix + "/apikeys"})
			if w.Code != http.StatusOK {
				t.Fatalf("list: got %d, want 200; body %s", w.Code, w.Body)
			}
			if strings.Contains(w.Body.String(), secret) || strings.Contains(w.Body.String(), `"secret"`) {
				t.Errorf("list shows a secret: %s", w.Body)
			}
			list := decode[struct {
				Links struct{ Self string } `json:"links"`
				Data  []apiKeyRes           `json:"data"`
				Meta  struct{ Total int }   `json:"meta"`
			}](t, w)
			if got, want := list.Links.Self, "http://example.com/v1/apikeys"; got != want {
				t.Errorf("list self link: got %q, want %q", got, want)
			}
			if len(list.Data) != 1 || list.Data[0].ID != k.ID || list.Data[0].Attributes.Name != "billing" || list.Meta.Total != 1 {
				t.Errorf("list: got %s, want the one key and total 1", w.Body)
			}

			// Get: the key, no secret.
			w = serve(t, h, request{method: http.MethodGet, path: prefix + "/apikeys/" + k.ID})
			if w.Code != http.StatusOK {
				t.Fatalf("get: got %d, want 200; body %s", w.Code, w.Body)
			}
			got := decode[apiKeyDoc](t, w)
			if got.Data.ID != k.ID || got.Data.Attributes.Secret != nil || got.Data.Links.Self != self {
				t.Errorf("get: got %s, want the key without its secret", w.Body)
			}

			// Revoke, then it is gone.
			w = serve(t, h, request{method: http.MethodDelete, path: prefix + "/apikeys/" + k.ID})
			if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
				t.Fatalf("revoke: got %d %q, want 204 and no body", w.Code, w.Body)
			}
			checkError(t, serve(t, h, request{method: http.MethodGet, path: prefix + "/apikeys/" + k.ID}), http.StatusNotFound)
			checkError(t, serve(t, h, request{method: http.MethodDelete, path: prefix + "/apikeys/" + k.ID}), http.StatusNotFound)
			w = serve(t, h, request{method: http.MethodGet, path: prefix + "/apikeys"})
			if got := decode[struct{ Data []apiKeyRes }](t, w); len(got.Data) != 0 || !strings.Contains(w.Body.String(), `"data":[]`) {
				t.Errorf("list after revoke: got %s, want an empty data array", w.Body)
			}
		})
	}
}

func TestCreateAPIKeyBodies(t *testing.T) {
	tests := []struct {
		name, body, contentType string
		wantName                string
	}{
		{"no body", "", "", ""},
		{"no attributes", `{"data":{"type":"apikeys"}}`, "application/json", ""},
		{"no type", `{"data":{"attributes":{"name":"a"}}}`, "application/json; charset=utf-8", "a"},
		{"null name", `{"data":{"attributes":{"name":null}}}`, admin.MediaType, ""},
		{"null attributes", `{"data":{"type":"apikeys","attributes":null}}`, "", ""},
		{"unicode name", `{"data":{"attributes":{"name":"caf\u00e9 ☕"}}}`, "", "café ☕"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := newService(t, nil)
			h := newHandler(t, svc)
			w := serve(t, h, request{method: http.MethodPost, path: "/v1/apikeys", body: tt.body, contentType: tt.contentType})
			if w.Code != http.StatusCreated {
				t.Fatalf("got %d, want 201; body %s", w.Code, w.Body)
			}
			if got := decode[apiKeyDoc](t, w).Data.Attributes.Name; got != tt.wantName {
				t.Errorf("name: got %q, want %q", got, tt.wantName)
			}
		})
	}
}

func TestCreateAPIKeyBadInput(t *testing.T) {
	tests := []struct {
		name, body, contentType string
		want                    int
	}{
		{"invalid JSON", `{"data":`, "", http.StatusBadRequest},
		{"trailing garbage", `{"data":{}} x`, "", http.StatusBadRequest},
		{"body not an object", `[1,2]`, "", http.StatusBadRequest},
		{"body null", `null`, "", http.StatusBadRequest},
		{"no data", `{}`, "", http.StatusBadRequest},
		{"data null", `{"data":null}`, "", http.StatusBadRequest},
		{"data an array", `{"data":[{"attributes":{"name":"a"}}]}`, "", http.StatusBadRequest},
		{"data a string", `{"data":"apikeys"}`, "", http.StatusBadRequest},
		{"attributes not an object", `{"data":{"attributes":"a"}}`, "", http.StatusBadRequest},
		{"name a number", `{"data":{"attributes":{"name":42}}}`, "", http.StatusBadRequest},
		{"name an object", `{"data":{"attributes":{"name":{"first":"a"}}}}`, "", http.StatusBadRequest},
		{"name too long", `{"data":{"attributes":{"name":"` + strings.Repeat("n", 201) + `"}}}`, "", http.StatusBadRequest},
		{"unknown attribute", `{"data":{"attributes":{"nmae":"a"}}}`, "", http.StatusBadRequest},
		{"secret given", `{"data":{"attributes":{"name":"a","secret":"mine"}}}`, "", http.StatusBadRequest},
		{"unknown data member", `{"data":{"attribute":{"name":"a"}}}`, "", http.StatusBadRequest},
		{"unknown top-level member", `{"data":{},"extra":1}`, "", http.StatusBadRequest},
		{"type a number", `{"data":{"type":1}}`, "", http.StatusBadRequest},
		{"deep nesting", `{"data":{"meta":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, "", http.StatusBadRequest},
		{"wrong type", `{"data":{"type":"sessions"}}`, "", http.StatusConflict},
		{"client id", `{"data":{"type":"apikeys","id":"mine"}}`, "", http.StatusForbidden},
		{"huge body", `{"data":{"attributes":{"name":"` + strings.Repeat("a", 2<<20) + `"}}}`, "", http.StatusRequestEntityTooLarge},
		{"form content type", `name=a`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"bad content type", `{}`, "text/plain;;", http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := newService(t, nil)
			h := newHandler(t, svc)
			w := serve(t, h, request{method: http.MethodPost, path: "/v1/apikeys", body: tt.body, contentType: tt.contentType})
			checkError(t, w, tt.want)
			keys, err := svc.ListAPIKeys(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 0 {
				t.Errorf("keys after refused input: got %d, want 0", len(keys))
			}
		})
	}
}

func TestRevokeClosesSessionsAndFailsSecrets(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)

	w := serve(t, h, request{method: http.MethodPost, path: "/v1/apikeys", body: `{"data":{"attributes":{"name":"tenant"}}}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("create: got %d; body %s", w.Code, w.Body)
	}
	k := decode[apiKeyDoc](t, w).Data
	creds := sessiond.Credentials{APIKey: k.ID, Secret: *k.Attributes.Secret}
	other, _, err := svc.CreateAPIKey(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	sess, token, err := svc.Open(ctx, sessiond.OpenRequest{UserID: "u1", APIKeyID: k.ID})
	if err != nil {
		t.Fatal(err)
	}
	otherSess, otherToken, err := svc.Open(ctx, sessiond.OpenRequest{UserID: "u2", APIKeyID: other.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{Token: token}); err != nil {
		t.Fatalf("token before revoke: %v", err)
	}

	if w := serve(t, h, request{method: http.MethodDelete, path: "/v1/apikeys/" + k.ID}); w.Code != http.StatusNoContent {
		t.Fatalf("revoke: got %d, want 204; body %s", w.Code, w.Body)
	}

	if _, err := svc.Authenticate(ctx, creds); sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
		t.Errorf("secret after revoke: got %v, want %s", err, sessiond.EUNAUTHORIZED)
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{Token: token}); sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
		t.Errorf("token after revoke: got %v, want %s", err, sessiond.EUNAUTHORIZED)
	}
	got, err := svc.Get(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Active || got.CloseReason != sessiond.ReasonRevoked {
		t.Errorf("session after revoke: got active %v reason %q, want closed, %q", got.Active, got.CloseReason, sessiond.ReasonRevoked)
	}
	// Another key's session is untouched.
	if got, err := svc.Get(ctx, otherSess.ID); err != nil || !got.Active {
		t.Errorf("other key's session after revoke: got %+v, %v, want active", got, err)
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{Token: otherToken}); err != nil {
		t.Errorf("other key's token after revoke: %v", err)
	}
}

func TestRoutingErrors(t *testing.T) {
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)
	tests := []struct {
		name, method, path string
		want               int
		allow              string
	}{
		{"unknown path", http.MethodGet, "/v1/nothing", http.StatusNotFound, ""},
		{"unknown version", http.MethodGet, "/v2/apikeys", http.StatusNotFound, ""},
		{"unknown key", http.MethodGet, "/v1/apikeys/ffff", http.StatusNotFound, ""},
		{"method on collection", http.MethodPut, "/v1/apikeys", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{"method on key", http.MethodPatch, "/apikeys/ffff", http.StatusMethodNotAllowed, "DELETE, GET, HEAD"},
		{"bad pretty", http.MethodGet, "/v1/apikeys?pretty=yes", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, h, request{method: tt.method, path: tt.path})
			checkError(t, w, tt.want)
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow: got %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestPretty(t *testing.T) {
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)
	tests := []struct {
		name, query string
		indented    bool
	}{
		{"default", "", false},
		{"pretty", "?pretty=true", true},
		{"pretty false", "?pretty=false", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, h, request{method: http.MethodGet, path: "/v1/apikeys" + tt.query})
			if w.Code != http.StatusOK {
				t.Fatalf("got %d; body %s", w.Code, w.Body)
			}
			if got := strings.Contains(w.Body.String(), "\n  "); got != tt.indented {
				t.Errorf("indented: got %v, want %v: %s", got, tt.indented, w.Body)
			}
		})
	}
}

// pingStore is a memory store whose Ping fails with err when err is set.
type pingStore struct {
	*memory.Store
	err error
}

func (s pingStore) Ping(ctx context.Context) error { return s.err }

func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		pingErr error
		path    string
		want    int
	}{
		{"live", nil, "/health/live", http.StatusOK},
		{"live while the store is down", errors.New("connection refused"), "/health/live", http.StatusOK},
		{"ready", nil, "/health/ready", http.StatusOK},
		{"not ready", errors.New("connection refused"), "/health/ready", http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := newService(t, pingStore{Store: memory.New(), err: tt.pingErr})
			h := newHandler(t, svc)
			w := serve(t, h, request{method: http.MethodGet, path: tt.path, noAuth: true})
			if tt.want != http.StatusOK {
				doc := checkError(t, w, tt.want)
				if strings.Contains(doc.Errors[0].Detail, "refused") {
					t.Errorf("the store's error reaches an unauthenticated caller: %q", doc.Errors[0].Detail)
				}
				return
			}
			if w.Code != tt.want {
				t.Fatalf("status: got %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
			if got := decode[map[string]string](t, w)["status"]; got != "ok" {
				t.Errorf("status member: got %q, want ok", got)
			}
		})
	}
}
