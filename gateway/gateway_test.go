package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessiond"
	"sessiond/gateway"
	"sessiond/internal/clock"
	"sessiond/internal/gwerr"
	"sessiond/internal/httpx"
	"sessiond/sessiondir"
	"sessiond/store/memory"
)

// ---- fixtures ----

// newDirs returns real session directories in a temporary directory.
func newDirs(t testing.TB) *sessiondir.Dirs {
	t.Helper()
	d, err := sessiondir.NewDirs(filepath.Join(t.TempDir(), "sessions"), sessiondir.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// upstream is a real HTTP server that records what reaches it.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last *http.Request // headers, URL and RequestURI of the last request
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from upstream") }
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = &http.Request{Header: r.Header.Clone(), URL: r.URL, RequestURI: r.RequestURI, Host: r.Host}
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) lastRequest(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		t.Fatal("the upstream got no request")
	}
	return u.last
}

type env struct {
	clk  *clock.Fake
	svc  *sessiond.Service
	gw   *gateway.Gateway
	srv  *httptest.Server
	dirs *sessiondir.Dirs
}

const prefix = "/api/v1/dataproc/"

func newEnv(t testing.TB, up *url.URL, opts gateway.Options) *env {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{IdleTimeout: time.Hour}, nil)
	dirs := newDirs(t)
	if opts.Dirs == nil {
		opts.Dirs = dirs
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	gw, err := gateway.New(svc, []gateway.Route{{Prefix: prefix, Upstream: up}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })
	return &env{clk: clk, svc: svc, gw: gw, srv: srv, dirs: dirs}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// key creates an API key and opens a session with it.
func (e *env) key(t testing.TB) (keyID, secret, sessionID, token string) {
	t.Helper()
	ctx := context.Background()
	k, secret, err := e.svc.CreateAPIKey(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	s, token, err := e.svc.Open(ctx, sessiond.OpenRequest{APIKeyID: k.ID, UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	return k.ID, secret, s.ID, token
}

func do(t testing.TB, method, url string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = []string{v} // as given: no canonicalization, so variants reach the server
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// checkError checks a section 6 error answer.
func checkError(t *testing.T, resp *http.Response, body []byte, wantStatus, wantCode int) {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Fatalf("status: got %d, want %d (body %s)", resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var got struct {
		JSONRPC string `json:"jsonrpc"`
		Error   struct {
			Code    int            `json:"code"`
			Message string         `json:"message"`
			Data    map[string]any `json:"data"`
		} `json:"error"`
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if got.JSONRPC != "2.0" || got.Error.Code != wantCode || got.Error.Message == "" || string(got.ID) != "null" {
		t.Errorf("error body: got %s, want jsonrpc 2.0, code %d, a message and id null", body, wantCode)
	}
	if c, _ := got.Error.Data["code"].(string); c == "" {
		t.Errorf("error body: got %s, want error.data.code", body)
	}
}

// norm is how header names are compared when looking for forged variants.
func norm(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "-") }

// headerVariants returns every value the upstream got under a name that
// normalizes to name.
func headerVariants(h http.Header, name string) []string {
	var out []string
	for k, vs := range h {
		if norm(k) == norm(name) {
			out = append(out, vs...)
		}
	}
	return out
}

// ---- identity and credentials ----

func TestForwardsOwnSessionHeadersOnly(t *testing.T) {
	up := newUpstream(t, nil)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, secret, sid, token := e.key(t)
	forged := map[string]string{
		"Xdata-Session-Id":  "forged-id",
		"xdata_session_id":  "forged-id-2",
		"XDATA-SESSION-DIR": "/etc",
		"Xdata_Session_Dir": "/root",
		"APIKey":            "someone-else",
		"Secret":            secret,
	}
	tests := []struct {
		name string
		auth map[string]string
	}{
		{"token header", map[string]string{"Xdata-Session-Token": token}},
		{"lowercase token header", map[string]string{"xdata-session-token": token}},
		{"bearer", map[string]string{"Authorization": "Bearer " + token}},
		{"bearer lowercase scheme", map[string]string{"Authorization": "bearer " + token}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			for k, v := range forged {
				hdr[k] = v
			}
			for k, v := range tt.auth {
				hdr[k] = v
			}
			resp, body := do(t, "GET", e.srv.URL+prefix+"jsonrpc", hdr, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
			}
			got := up.lastRequest(t).Header
			if v := headerVariants(got, "Xdata-Session-Id"); len(v) != 1 || v[0] != sid {
				t.Errorf("session id headers: got %q, want only [%s]", v, sid)
			}
			wantDir := filepath.Join(e.dirs.Path(), sid)
			if v := headerVariants(got, "Xdata-Session-Dir"); len(v) != 1 || v[0] != wantDir {
				t.Errorf("session dir headers: got %q, want only [%s]", v, wantDir)
			}
			for _, name := range []string{"Xdata-Session-Token", "Secret", "APIKey", "Authorization"} {
				if v := headerVariants(got, name); len(v) != 0 {
					t.Errorf("%s reached the upstream: %q", name, v)
				}
			}
			for name, vs := range got {
				for _, v := range vs {
					if strings.Contains(v, token) || strings.Contains(v, secret) {
						t.Errorf("a credential reached the upstream in %s", name)
					}
				}
			}
		})
	}
}

func TestNoDirsNoDirHeader(t *testing.T) {
	up := newUpstream(t, nil)
	svc := sessiond.NewService(memory.New(), nil, sessiond.Config{}, nil)
	gw, err := gateway.New(svc, []gateway.Route{{Prefix: prefix, Upstream: mustURL(t, up.URL)}}, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	s, token, err := svc.Open(context.Background(), sessiond.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	do(t, "GET", srv.URL+prefix+"x", map[string]string{"Xdata-Session-Token": token, "Xdata-Session-Dir": "/etc"}, nil)
	got := up.lastRequest(t).Header
	if v := headerVariants(got, "Xdata-Session-Dir"); len(v) != 0 {
		t.Errorf("session dir: got %q, want none", v)
	}
	if v := got.Get("Xdata-Session-Id"); v != s.ID {
		t.Errorf("session id: got %q, want %q", v, s.ID)
	}
}

func TestAPIKeyAuthHasNoSession(t *testing.T) {
	up := newUpstream(t, nil)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	keyID, secret, sid, _ := e.key(t)
	resp, body := do(t, "GET", e.srv.URL+prefix+"x", map[string]string{
		"APIKey": keyID, "Secret": secret,
		"Xdata-Session-Id": "forged", // still removed
		"Authorization":    "Basic dXNlcjpwYXNz",
	}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
	}
	got := up.lastRequest(t).Header
	for _, name := range []string{"Xdata-Session-Id", "Xdata-Session-Dir", "Secret", "APIKey"} {
		if v := headerVariants(got, name); len(v) != 0 {
			t.Errorf("%s: got %q, want none", name, v)
		}
	}
	// Another scheme's Authorization is the backend's own business.
	if got, want := got.Get("Authorization"), "Basic dXNlcjpwYXNz"; got != want {
		t.Errorf("Authorization: got %q, want %q", got, want)
	}
	if c, _ := e.svc.Connections(context.Background(), sid); len(c) != 0 {
		t.Errorf("connections of the key's session: got %+v, want none", c)
	}
}

func TestRefusedRequestsNeverReachUpstream(t *testing.T) {
	up := newUpstream(t, nil)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	ctx := context.Background()
	keyID, secret, _, _ := e.key(t)

	_, _, closedSID, closedToken := e.key(t)
	if _, err := e.svc.CloseSession(ctx, closedSID, sessiond.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	revokedKey, _, _, revokedToken := e.key(t)
	if err := e.svc.RevokeAPIKey(ctx, revokedKey); err != nil {
		t.Fatal(err)
	}
	_, _, _, idleToken := e.key(t)

	tests := []struct {
		name    string
		hdr     map[string]string
		advance time.Duration
	}{
		{"no credentials", nil, 0},
		{"unknown token", map[string]string{"Xdata-Session-Token": "nope"}, 0},
		{"unknown bearer", map[string]string{"Authorization": "Bearer nope"}, 0},
		{"closed session token", map[string]string{"Xdata-Session-Token": closedToken}, 0},
		{"revoked key's token", map[string]string{"Xdata-Session-Token": revokedToken}, 0},
		{"wrong secret", map[string]string{"APIKey": keyID, "Secret": secret + "x"}, 0},
		{"key without secret", map[string]string{"APIKey": keyID}, 0},
		{"secret without key", map[string]string{"Secret": secret}, 0},
		// The token takes precedence: a bad token with a good key is refused.
		{"bad token with good key", map[string]string{"Xdata-Session-Token": "nope", "APIKey": keyID, "Secret": secret}, 0},
		{"expired token, not yet swept", map[string]string{"Xdata-Session-Token": idleToken}, time.Hour + time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clk.Add(tt.advance)
			resp, body := do(t, "POST", e.srv.URL+prefix+"jsonrpc", tt.hdr, strings.NewReader(`{"jsonrpc":"2.0","method":"x","id":1}`))
			checkError(t, resp, body, http.StatusUnauthorized, gwerr.CodeUnauthenticated)
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate: got %q, want Bearer", resp.Header.Get("WWW-Authenticate"))
			}
			if n := up.hits.Load(); n != 0 {
				t.Errorf("upstream hits: got %d, want 0", n)
			}
		})
	}
}

func TestRevokedKeyTokenRefusedAtOnce(t *testing.T) {
	up := newUpstream(t, nil)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	keyID, _, _, token := e.key(t)
	hdr := map[string]string{"Xdata-Session-Token": token}
	if resp, body := do(t, "GET", e.srv.URL+prefix+"a", hdr, nil); resp.StatusCode != 200 {
		t.Fatalf("before revoking: got %d, want 200 (%s)", resp.StatusCode, body)
	}
	if err := e.svc.RevokeAPIKey(context.Background(), keyID); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, "GET", e.srv.URL+prefix+"a", hdr, nil)
	checkError(t, resp, body, http.StatusUnauthorized, gwerr.CodeUnauthenticated)
	if got, want := up.hits.Load(), int64(1); got != want {
		t.Errorf("upstream hits: got %d, want %d", got, want)
	}
}

// ---- forwarding ----

func TestForwardedHeaders(t *testing.T) {
	up := newUpstream(t, nil)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, _, _, token := e.key(t)
	do(t, "GET", e.srv.URL+prefix+"x", map[string]string{
		"Xdata-Session-Token": token,
		"X-Forwarded-For":     "6.6.6.6", // a client cannot choose its address
		"X-Forwarded-Host":    "evil.example",
		"Forwarded":           "for=6.6.6.6",
	}, nil)
	got := up.lastRequest(t)
	gwHost := strings.TrimPrefix(e.srv.URL, "http://")
	for name, want := range map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  gwHost,
		"Forwarded":         "",
	} {
		if v := got.Header.Get(name); v != want {
			t.Errorf("%s: got %q, want %q", name, v, want)
		}
	}
	if got, want := got.Host, strings.TrimPrefix(up.URL, "http://"); got != want {
		t.Errorf("Host: got %q, want the upstream's %q", got, want)
	}
}

func TestPathAndQueryUnchanged(t *testing.T) {
	up := newUpstream(t, nil)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, _, _, token := e.key(t)
	tests := []struct {
		name, path, query string
	}{
		{"plain", prefix + "jsonrpc", ""},
		{"encoded slash", prefix + "a%2Fb/c", "x=1"},
		{"encoded dots", prefix + "a/%2e%2e/b", ""},
		{"encoded braces", prefix + "%7Bid%7D", ""},
		{"needless escape", prefix + "%41bc", ""},
		{"utf-8", prefix + "caf%C3%A9", "q=caf%C3%A9"},
		{"plus", prefix + "a+b", "q=a+b&r=%2B"},
		{"unparsable query kept", prefix + "x", "a=b;c&d=%zz&e"},
		{"empty query", prefix + "x", ""},
		{"repeated keys", prefix + "x", "a=1&a=2&a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", e.srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tt.path // sent byte for byte
			req.URL.RawQuery = tt.query
			req.Header.Set("Xdata-Session-Token", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			want := tt.path
			if tt.query != "" {
				want += "?" + tt.query
			}
			if got := up.lastRequest(t).RequestURI; got != want {
				t.Errorf("request URI at the upstream: got %q, want %q", got, want)
			}
		})
	}
}

func TestLongestPrefixWins(t *testing.T) {
	a := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") })
	b := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	c := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "c") })
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{}, nil)
	var routes []gateway.Route
	for _, s := range []string{
		"/api/v1/dataproc/=" + a.URL,
		"/api/v1/dataproc/admin/=" + b.URL,
		"/metrics=" + c.URL,
	} {
		r, err := gateway.ParseRoute(s)
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, r)
	}
	gw, err := gateway.New(svc, routes, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if got, want := strings.Join(gw.Prefixes(), " "), "/api/v1/dataproc/admin/ /api/v1/dataproc/ /metrics /metrics/"; got != want {
		t.Errorf("Prefixes: got %q, want %q", got, want)
	}
	// The gateway matches on its own (a ServeMux in front would redirect
	// /api/v1/dataproc/admin to /api/v1/dataproc/admin/ first).
	srv := httptest.NewServer(gw)
	defer srv.Close()
	k, secret, _ := svc.CreateAPIKey(context.Background(), "k")
	hdr := map[string]string{"APIKey": k.ID, "Secret": secret}

	tests := []struct {
		path   string
		status int
		want   string
	}{
		{"/api/v1/dataproc/jsonrpc", 200, "a"},
		{"/api/v1/dataproc/admin/x", 200, "b"},
		{"/api/v1/dataproc/admin", 200, "a"},
		{"/metrics", 200, "c"},
		{"/metrics/x", 200, "c"},
		{"/metricsx", 404, ""},
		{"/api/v1/other", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+tt.path, hdr, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 200 && string(body) != tt.want {
				t.Errorf("upstream: got %q, want %q", body, tt.want)
			}
		})
	}
	for path, want := range map[string]bool{"/api/v1/dataproc/a/../b": true, "/metrics": true, "/metricsx": false, "/": false} {
		if got := gw.Covers(path); got != want {
			t.Errorf("Covers(%q): got %v, want %v", path, got, want)
		}
	}
	// The gateway itself answers paths no route covers in its dialect.
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/nowhere", nil))
	checkError(t, rec.Result(), rec.Body.Bytes(), http.StatusNotFound, gwerr.CodeNotFound)
}

// ---- streaming ----

func TestLargeBodiesStreamIntactAndAreCounted(t *testing.T) {
	const size = 5 << 20
	respData := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(respData)
	respSum := sha256.Sum256(respData)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Got-Sha256", hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("X-Got-Bytes", strconv.FormatInt(n, 10))
		w.Write(respData)
	})
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, _, sid, token := e.key(t)

	reqData := make([]byte, size)
	rand.NewChaCha8([32]byte{2}).Read(reqData)
	reqSum := sha256.Sum256(reqData)
	tests := []struct {
		name    string
		chunked bool
	}{
		{"content-length", false},
		{"chunked", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(reqData)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length
			}
			resp, got := do(t, "PUT", e.srv.URL+prefix+"blob", map[string]string{"Xdata-Session-Token": token}, body)
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			if h := resp.Header.Get("X-Got-Sha256"); h != hex.EncodeToString(reqSum[:]) {
				t.Errorf("request body at the upstream: got sha256 %s, want %x", h, reqSum)
			}
			if s := sha256.Sum256(got); s != respSum {
				t.Errorf("response body at the client: got sha256 %x (%d bytes), want %x", s, len(got), respSum)
			}
			stats := mustConnections(t, e.svc, sid)
			if len(stats) != 1 {
				t.Fatalf("connections: got %+v, want one", stats)
			}
			st := stats[0]
			n := int64(i + 1)
			if st.Service != prefix || st.Requests != n || st.Reads != n*size || st.Writes != n*size || st.Errors != 0 {
				t.Errorf("connections: got %+v, want service %s, %d requests, %d bytes each way, no errors", st, prefix, n, n*size)
			}
			if !st.LastUsed.Equal(e.clk.Now()) {
				t.Errorf("last used: got %v, want %v", st.LastUsed, e.clk.Now())
			}
		})
	}
}

// Each piece reaches the other side before the next one is sent: nothing
// is buffered whole, in either direction, for event streams and for any
// response of unknown length.
func TestStreamsBothWays(t *testing.T) {
	for _, contentType := range []string{"text/event-stream", "application/x-ndjson"} {
		t.Run(contentType, func(t *testing.T) {
			gotPing := make(chan string, 1)
			sendPong := make(chan struct{})
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				buf := make([]byte, 4)
				if _, err := io.ReadFull(r.Body, buf); err != nil {
					t.Error(err)
					return
				}
				gotPing <- string(buf) // the body's start arrived while the client still sends
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", contentType)
				io.WriteString(w, "first\n")
				w.(http.Flusher).Flush()
				<-sendPong // hold the rest until the client has seen the first part
				io.WriteString(w, "second\n")
			})
			e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
			_, _, _, token := e.key(t)

			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", e.srv.URL+prefix+"stream", pr)
			req.Header.Set("Xdata-Session-Token", token)
			type result struct {
				resp *http.Response
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				done <- result{resp, err}
			}()
			pw.Write([]byte("ping"))
			if got := <-gotPing; got != "ping" {
				t.Fatalf("upstream read %q, want ping", got)
			}
			pw.Close()
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			defer res.resp.Body.Close()
			line := make([]byte, len("first\n"))
			if _, err := io.ReadFull(res.resp.Body, line); err != nil || string(line) != "first\n" {
				t.Fatalf("first part: got %q, %v", line, err)
			}
			close(sendPong)
			rest, _ := io.ReadAll(res.resp.Body)
			if string(rest) != "second\n" {
				t.Errorf("second part: got %q", rest)
			}
		})
	}
}

// ---- failures ----

func TestUpstreamDownIs502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	e := newEnv(t, mustURL(t, "http://"+addr), gateway.Options{})
	_, _, sid, token := e.key(t)
	resp, body := do(t, "GET", e.srv.URL+prefix+"x", map[string]string{"Xdata-Session-Token": token}, nil)
	checkError(t, resp, body, http.StatusBadGateway, gwerr.CodeBadGateway)
	if strings.Contains(string(body), addr) {
		t.Errorf("the answer reveals the upstream address: %s", body)
	}
	if st := mustConnections(t, e.svc, sid); len(st) != 1 || st[0].Errors != 1 || st[0].Requests != 1 {
		t.Errorf("connections: got %+v, want 1 request, 1 error", st)
	}
}

func TestSlowUpstreamIs504(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the upstream closes
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{ResponseHeaderTimeout: 50 * time.Millisecond})
	_, _, sid, token := e.key(t)
	resp, body := do(t, "GET", e.srv.URL+prefix+"slow", map[string]string{"Xdata-Session-Token": token}, nil)
	checkError(t, resp, body, http.StatusGatewayTimeout, gwerr.CodeGatewayTimeout)
	if st := mustConnections(t, e.svc, sid); len(st) != 1 || st[0].Errors != 1 {
		t.Errorf("connections: got %+v, want 1 error", st)
	}
}

func TestClientCancellationReachesUpstream(t *testing.T) {
	started := make(chan struct{})
	canceled := make(chan error, 1)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		canceled <- r.Context().Err()
	})
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, _, _, token := e.key(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+prefix+"long", nil)
	req.Header.Set("Xdata-Session-Token", token)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; err == nil {
		t.Error("the client's request succeeded; want it canceled")
	}
	select {
	case err := <-canceled:
		if err == nil {
			t.Error("upstream context: got no error, want canceled")
		}
	case <-time.After(30 * time.Second): // a guard against hanging, not a timing assertion
		t.Fatal("the upstream never saw the client's cancellation")
	}
}

// ---- routes ----

func TestParseRoute(t *testing.T) {
	tests := []struct {
		name, in   string
		wantPrefix string
		wantHost   string
		wantErr    bool
	}{
		{"spec example", "/api/v1/dataproc/=http://127.0.0.1:9000", "/api/v1/dataproc/", "127.0.0.1:9000", false},
		{"https, trailing slash", "/x=https://backend.internal/", "/x", "backend.internal", false},
		{"ipv6", "/x/=http://[::1]:9000", "/x/", "[::1]:9000", false},
		{"root prefix", "/=http://h:1", "/", "h:1", false},
		{"no equals", "/x http://h", "", "", true},
		{"empty", "", "", "", true},
		{"relative prefix", "x/=http://h", "", "", true},
		{"empty prefix", "=http://h", "", "", true},
		{"dot dot prefix", "/a/../b/=http://h", "", "", true},
		{"double slash prefix", "//a/=http://h", "", "", true},
		{"pattern prefix", "/a/{id}/=http://h", "", "", true},
		{"space in prefix", "/a b/=http://h", "", "", true},
		{"percent in prefix", "/a%2F/=http://h", "", "", true},
		{"query in prefix", "/a?x/=http://h", "", "", true},
		{"ftp", "/x/=ftp://h", "", "", true},
		{"no scheme", "/x/=127.0.0.1:9000", "", "", true},
		{"no host", "/x/=http://", "", "", true},
		{"port only", "/x/=http://:9000", "", "", true},
		{"path", "/x/=http://h/base", "", "", true},
		{"query", "/x/=http://h/?a=1", "", "", true},
		{"fragment", "/x/=http://h#f", "", "", true},
		{"user info", "/x/=http://u:p@h", "", "", true},
		{"bad port", "/x/=http://h:port", "", "", true},
		{"opaque", "/x/=http:h", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := gateway.ParseRoute(tt.in)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ParseRoute(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r.Prefix != tt.wantPrefix || r.Upstream.Host != tt.wantHost {
				t.Errorf("ParseRoute(%q): got %q → %q, want %q → %q", tt.in, r.Prefix, r.Upstream.Host, tt.wantPrefix, tt.wantHost)
			}
		})
	}
}

func TestNewRejectsBadRoutes(t *testing.T) {
	svc := sessiond.NewService(memory.New(), nil, sessiond.Config{}, nil)
	u := &url.URL{Scheme: "http", Host: "h:1"}
	tests := []struct {
		name   string
		routes []gateway.Route
	}{
		{"duplicate", []gateway.Route{{Prefix: "/a/", Upstream: u}, {Prefix: "/a/", Upstream: u}}},
		{"nil upstream", []gateway.Route{{Prefix: "/a/"}}},
		{"bad prefix", []gateway.Route{{Prefix: "a/", Upstream: u}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := gateway.New(svc, tt.routes, gateway.Options{}); err == nil {
				t.Error("New: got no error, want one")
			}
		})
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/api/v1/dataproc/=http://127.0.0.1:9000", "/x=https://h/", "/=http://[::1]:1", "x=y",
		"/a/../b=http://h", "/a=http://u@h", "/%=http://h", "/a{b}=http://h",
	} {
		f.Add(s)
	}
	svc := sessiond.NewService(memory.New(), nil, sessiond.Config{}, nil)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := gateway.ParseRoute(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(r.Prefix, "/") || strings.Contains(r.Prefix, "//") || strings.Contains(r.Prefix, "/../") {
			t.Fatalf("accepted prefix %q", r.Prefix)
		}
		if (r.Upstream.Scheme != "http" && r.Upstream.Scheme != "https") || r.Upstream.Hostname() == "" {
			t.Fatalf("accepted upstream %q", r.Upstream)
		}
		again, err := gateway.ParseRoute(r.String())
		if err != nil || again.Prefix != r.Prefix || again.Upstream.String() != r.Upstream.String() {
			t.Fatalf("round trip of %q: got %v, %v", r, again, err)
		}
		// Whatever it accepts, a ServeMux takes as a plain path pattern.
		gw, err := gateway.New(svc, []gateway.Route{r}, gateway.Options{})
		if err != nil {
			t.Fatalf("New refused an accepted route %q: %v", r, err)
		}
		mux := http.NewServeMux()
		for _, p := range gw.Prefixes() {
			mux.Handle(p, gw)
		}
	})
}

// ---- errors ----

func TestErrorShape(t *testing.T) {
	rec := httptest.NewRecorder()
	gwerr.WriteError(rec, httptest.NewRequest("GET", "/", nil), &sessiond.Error{
		Code: sessiond.ETOOLARGE, Message: "too big", Details: map[string]any{"limit": 10},
	})
	if got, want := rec.Code, http.StatusRequestEntityTooLarge; got != want {
		t.Errorf("status: got %d, want %d", got, want)
	}
	want := `{"jsonrpc":"2.0","error":{"code":-32013,"message":"too big","data":{"code":"too_large","limit":10}},"id":null}` + "\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body:\n got %s\nwant %s", got, want)
	}

	// Internal causes never reach the client.
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(httpx.WithLogger(req.Context(), slog.New(slog.DiscardHandler)))
	gwerr.WriteError(rec, req, sessiond.Internal(io.ErrUnexpectedEOF))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "EOF") {
		t.Errorf("internal error: got %d %s", rec.Code, rec.Body.String())
	}
}

// TestRequestBodyStillFlowsAfterResponseStarts: an upstream that answers
// before it has read the whole request (a streaming echo) must keep
// receiving the request body through the gateway. An HTTP/1 server closes
// the request body once the response starts unless full duplex is on; the
// gateway turns it on, or this request body would be cut off and the
// upstream connection dropped mid-response.
func TestRequestBodyStillFlowsAfterResponseStarts(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("upstream: %v", err)
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "started\n")
		rc.Flush()
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "read %d bytes, err %v\n", n, err)
	})
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, _, _, token := e.key(t)

	const part = 64 << 10
	pr, pw := io.Pipe()
	// Without full duplex the body is cut and the upstream waits for the
	// rest forever: the deadline turns that hang into a failure.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); pw.CloseWithError(ctx.Err()) }()
	req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+prefix+"echo", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 2 * part
	req.Header.Set("Xdata-Session-Token", token)
	go func() {
		pw.Write(make([]byte, part)) // the first half, before any answer
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "started\n" {
		t.Fatalf("first line: %q, %v", line, err)
	}
	// The response has started; only now does the second half go.
	go func() {
		pw.Write(make([]byte, part))
		pw.Close()
	}()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading the rest of the response: %v", err)
	}
	if want := fmt.Sprintf("read %d bytes, err <nil>\n", 2*part); string(rest) != want {
		t.Fatalf("upstream reported %q, want %q", rest, want)
	}
}

// sessiond's own unavailability (its store down, its disk full) is 503; an
// upstream's is 502 (TestUpstreamDownIs502).
func TestStoreUnavailableIs503(t *testing.T) {
	w := httptest.NewRecorder()
	gwerr.WriteError(w, httptest.NewRequest("GET", "/api/v1/dataproc/x", nil),
		sessiond.Errorf(sessiond.EUNAVAILABLE, "the store cannot write: its disk is full"))
	resp := w.Result()
	body, _ := io.ReadAll(resp.Body)
	checkError(t, resp, body, http.StatusServiceUnavailable, gwerr.CodeUnavailable)
	if !strings.Contains(string(body), "disk is full") || !strings.Contains(string(body), `"code":"unavailable"`) {
		t.Errorf("body %s, want the reason and data.code unavailable", body)
	}
}

func mustConnections(t *testing.T, svc *sessiond.Service, sid string) []sessiond.ConnStat {
	t.Helper()
	st, err := svc.Connections(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
