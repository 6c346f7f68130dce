package daemon

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sessiond"
)

// clientFrom returns an HTTP client whose connections come from the
// loopback address ip (127.0.0.0/8 is all loopback on Linux), so that the
// daemon sees it as its own source.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// Repeated authentication failures from one address are answered 429 with
// Retry-After in every dialect that authenticates, before the right
// credentials are even checked; other addresses are not affected.
func TestAuthFailuresSlowedDown(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer upstream.Close()
	m := startMain(t, "memory", "/api/v1/dataproc/="+upstream.URL)
	pub, adm := "http://"+m.PublicAddr(), "http://"+m.AdminAddr()
	key, secret, err := m.Service.CreateAPIKey(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	rpcBody := `{"jsonrpc":"2.0","id":1,"method":"session.open_session","params":{}}`
	good := map[string]string{"APIKey": key.ID, "Secret": secret}

	type attempt struct {
		method, url, body string
		header            map[string]string
		basic             [2]string
	}
	tests := []struct {
		name       string
		from       string
		bad, right attempt
		check      func(t *testing.T, b []byte) // the 429 body
	}{
		{
			name:  "json-rpc wrong secret",
			from:  "127.0.0.2",
			bad:   attempt{"POST", pub + "/api/v1/session/jsonrpc", rpcBody, map[string]string{"APIKey": key.ID, "Secret": "wrong"}, [2]string{}},
			right: attempt{"POST", pub + "/api/v1/session/jsonrpc", rpcBody, good, [2]string{}},
			check: func(t *testing.T, b []byte) {
				var resp struct {
					Error struct {
						Code int
						Data struct {
							RetryAfter int `json:"retry_after"`
						}
					}
				}
				json.Unmarshal(b, &resp)
				if resp.Error.Code != -32029 || resp.Error.Data.RetryAfter < 1 {
					t.Errorf("JSON-RPC body %s, want error -32029 with data.retry_after", b)
				}
			},
		},
		{
			name:  "json-rpc unknown token",
			from:  "127.0.0.3",
			bad:   attempt{"POST", pub + "/api/v1/session/jsonrpc", rpcBody, map[string]string{"Xdata-Session-Token": "guess"}, [2]string{}},
			right: attempt{"POST", pub + "/api/v1/session/jsonrpc", rpcBody, good, [2]string{}},
		},
		{
			name:  "gateway unknown key",
			from:  "127.0.0.4",
			bad:   attempt{"GET", pub + "/api/v1/dataproc/x", "", map[string]string{"APIKey": "0123456789abcdef0123456789abcdef", "Secret": "x"}, [2]string{}},
			right: attempt{"GET", pub + "/api/v1/dataproc/x", "", good, [2]string{}},
			check: func(t *testing.T, b []byte) {
				var resp struct {
					Error struct {
						Code int
						Data struct {
							Code       string
							RetryAfter int `json:"retry_after"`
						}
					}
				}
				json.Unmarshal(b, &resp)
				if resp.Error.Code != -32029 || resp.Error.Data.Code != "too_many" || resp.Error.Data.RetryAfter < 1 {
					t.Errorf("gateway body %s, want error -32029, data.code too_many, data.retry_after", b)
				}
			},
		},
		{
			name:  "files unknown token",
			from:  "127.0.0.5",
			bad:   attempt{"GET", pub + "/api/v1/session/files/", "", map[string]string{"Authorization": "Bearer guess"}, [2]string{}},
			right: attempt{"GET", pub + "/api/v1/dataproc/x", "", good, [2]string{}},
		},
		{
			name:  "admin wrong password",
			from:  "127.0.0.6",
			bad:   attempt{"GET", adm + "/v1/apikeys", "", nil, [2]string{"admin", "guess"}},
			right: attempt{"GET", adm + "/v1/apikeys", "", nil, [2]string{"admin", "pw"}},
			check: func(t *testing.T, b []byte) {
				var doc struct {
					Errors []struct {
						Status string
						Code   string
						Meta   struct {
							RetryAfter int `json:"retry_after"`
						}
					}
				}
				json.Unmarshal(b, &doc)
				if len(doc.Errors) != 1 || doc.Errors[0].Status != "429" || doc.Errors[0].Code != "too_many" || doc.Errors[0].Meta.RetryAfter < 1 {
					t.Errorf("admin body %s, want a JSON:API error 429 too_many with meta.retry_after", b)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clientFrom(t, tt.from)
			run := func(c *http.Client, a attempt) (int, http.Header, []byte) {
				req, _ := http.NewRequest(a.method, a.url, strings.NewReader(a.body))
				for k, v := range a.header {
					req.Header.Set(k, v)
				}
				if a.basic[0] != "" {
					req.SetBasicAuth(a.basic[0], a.basic[1])
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, resp.Header, b
			}
			var code int
			var h http.Header
			var b []byte
			for i := 0; i < 50; i++ {
				if code, h, b = run(c, tt.bad); code != http.StatusUnauthorized {
					break
				}
			}
			if code != http.StatusTooManyRequests {
				t.Fatalf("50 failed attempts: last answered %d %s, want 429", code, b)
			}
			if secs, err := strconv.Atoi(h.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("Retry-After = %q, want whole seconds", h.Get("Retry-After"))
			}
			if tt.check != nil {
				tt.check(t, b)
			}
			if code, _, b := run(c, tt.right); code != http.StatusTooManyRequests {
				t.Errorf("right credentials from the slowed-down address: %d %s, want 429", code, b)
			}
			if code, _, b := run(clientFrom(t, "127.0.0.1"), tt.right); code != http.StatusOK {
				t.Errorf("right credentials from another address: %d %s, want 200", code, b)
			}
		})
	}
}

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Every answer of every dialect carries X-Correlation-Id: the client's, or
// one generated for the request, which error bodies carry too.
func TestCorrelationIDEveryDialect(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Correlation-Id", "the-backend's-own") // never a second value for the client
		io.WriteString(w, "backend saw "+r.Header.Get("X-Correlation-Id"))
	}))
	defer upstream.Close()
	m := startMain(t, "memory", "/api/v1/dataproc/="+upstream.URL)
	pub, adm := "http://"+m.PublicAddr(), "http://"+m.AdminAddr()
	key, secret, err := m.Service.CreateAPIKey(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	_, token, err := m.Service.Open(t.Context(), sessiond.OpenRequest{APIKeyID: key.ID, UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{"Xdata-Session-Token": token}
	calls := []struct {
		name, method, url, body string
		header                  map[string]string
	}{
		{"commandable", "POST", pub + "/v1/sessions/get_session_by_id", `{"session_id":"nope"}`, nil},
		{"commandable error", "POST", pub + "/v1/sessions/no_such_command", `{}`, nil},
		{"rest", "GET", pub + "/sessions/u1", "", nil},
		{"rest error", "POST", pub + "/sessions/u1?session_id=nope", `{}`, nil},
		{"json-rpc", "POST", pub + "/api/v1/session/jsonrpc", `{"jsonrpc":"2.0","id":1,"method":"session.verify_session_token","params":{"token":"x"}}`,
			map[string]string{"APIKey": key.ID, "Secret": secret}},
		{"json-rpc error", "POST", pub + "/api/v1/session/jsonrpc", `{}`, nil},
		{"gateway", "GET", pub + "/api/v1/dataproc/x", "", tok},
		{"gateway error", "GET", pub + "/api/v1/dataproc/x", "", nil},
		{"files", "GET", pub + "/api/v1/session/files/", "", tok},
		{"files error", "GET", pub + "/api/v1/session/files/nope", "", tok},
		{"admin", "GET", adm + "/health/live", "", nil},
		{"admin error", "GET", adm + "/v1/apikeys", "", nil},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			code, h, b := do(t, call{c.method, c.url, c.body, c.header})
			id := h.Get("X-Correlation-Id")
			if n := len(h.Values("X-Correlation-Id")); n != 1 {
				t.Errorf("X-Correlation-Id given %d times: %q", n, h.Values("X-Correlation-Id"))
			}
			if !hex16.MatchString(id) {
				t.Fatalf("%d %s: X-Correlation-Id = %q, want a generated id", code, b, id)
			}
			// The Pip.Services dialects put it in their error bodies; the
			// gateway hands it to the backend.
			if code >= 400 && strings.Contains(string(b), `"correlation_id"`) && !strings.Contains(string(b), `"correlation_id":"`+id+`"`) {
				t.Errorf("error body %s does not carry the answered id %s", b, id)
			}
			if c.name == "gateway" && string(b) != "backend saw "+id {
				t.Errorf("backend: %s, want it to see %s", b, id)
			}

			// A client's own id is kept.
			hdr := map[string]string{"X-Correlation-Id": "client-id-1"}
			for k, v := range c.header {
				hdr[k] = v
			}
			if _, h, _ := do(t, call{c.method, c.url, c.body, hdr}); h.Get("X-Correlation-Id") != "client-id-1" {
				t.Errorf("client id: answered %q, want client-id-1", h.Get("X-Correlation-Id"))
			}
		})
	}
	// The Pip.Services error body carries the generated id.
	code, h, b := do(t, call{"POST", pub + "/v1/sessions/no_such_command", `{}`, nil})
	if code < 400 || !strings.Contains(string(b), `"correlation_id":"`+h.Get("X-Correlation-Id")+`"`) {
		t.Errorf("commandable error %d %s: no correlation_id %q", code, b, h.Get("X-Correlation-Id"))
	}
}
