package daemon

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"sessiond/config"
	"sessiond/metrics"
	"sessiond/store/postgres/pgtest"
)

// startWith runs a whole daemon in-process on ephemeral ports, with cfg's
// settings and log.
func startWith(t testing.TB, log *slog.Logger, set func(*config.Config)) *Main {
	t.Helper()
	cfg := config.Default()
	cfg.Store = "memory"
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	if set != nil {
		set(&cfg)
	}
	m := &Main{Config: cfg, Stdout: io.Discard, AdminPassword: "pw", Log: log,
		// Every scrape reads the active sessions from the store afresh.
		MetricsOptions: metrics.Options{ActiveTTL: time.Nanosecond}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// scrape reads GET /metrics of m's admin listener and parses it with the
// Prometheus text-format parser.
func scrape(t *testing.T, m *Main) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+m.AdminAddr()+"/metrics", nil)
	req.SetBasicAuth("admin", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("GET /metrics is not in the Prometheus text format: %v\n%s", err, b)
	}
	return fams
}

// value returns the value of the metric of family name whose labels
// include labels (name=value pairs): a counter's or gauge's value, a
// histogram's count; -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// sum adds the histogram counts of every metric of family name whose
// labels include labels.
func sum(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		total += float64(m.GetHistogram().GetSampleCount())
	}
	return total
}

// rpc calls the JSON-RPC Session API and returns its result.
func rpc(t *testing.T, pub string, hdr map[string]string, method, params string) map[string]any {
	t.Helper()
	_, _, b := do(t, call{"POST", pub + "/api/v1/session/jsonrpc", `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + params + `}`, hdr})
	var out struct {
		Result any
	}
	decode(t, b, &out)
	r, _ := out.Result.(map[string]any)
	return r
}

// adminKey creates an API key through the admin API: its id and secret.
func adminKey(t *testing.T, m *Main) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+m.AdminAddr()+"/v1/apikeys", strings.NewReader(`{"data":{"attributes":{"name":"m"}}}`))
	req.SetBasicAuth("admin", "pw")
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var key struct {
		Data struct {
			ID         string
			Attributes struct{ Secret string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&key); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create key: %d %v", resp.StatusCode, err)
	}
	return key.Data.ID, key.Data.Attributes.Secret
}

func adminCall(t *testing.T, m *Main, method, path, password string) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+m.AdminAddr()+path, nil)
	if password != "" {
		req.SetBasicAuth("admin", password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsAfterKnownTraffic drives known traffic through every API of a
// running daemon and finds its exact counts in GET /metrics.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/fail") {
			w.WriteHeader(500)
		}
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close() // nothing listens there: 502
	m := startWith(t, nil, func(c *config.Config) {
		c.Gateway = []string{"/api/v1/up/=" + upstream.URL, "/api/v1/down/=" + deadURL}
	})
	pub := "http://" + m.PublicAddr()

	// Before any traffic: every close reason is there, at zero; the store
	// counts no active session.
	fams := scrape(t, m)
	for _, reason := range []string{"closed", "expired", "forced", "revoked", "evicted"} {
		if got := value(fams, "sessiond_sessions_closed_total", "reason", reason); got != 0 {
			t.Errorf("closed{reason=%s} before traffic = %v, want 0", reason, got)
		}
	}
	if got := value(fams, "sessiond_sessions_active"); got != 0 {
		t.Errorf("active before traffic = %v, want 0", got)
	}

	// Three sessions from the commandable API: one closed by its client,
	// one deleted, one force-closed by the admin API.
	var ids []string
	for i := 0; i < 3; i++ {
		code, _, b := do(t, call{"POST", pub + "/v1/sessions/open_session", `{"user_id":"c"}`, nil})
		if code != 200 {
			t.Fatalf("open_session: %d %s", code, b)
		}
		var s struct{ ID string }
		decode(t, b, &s)
		ids = append(ids, s.ID)
	}
	do(t, call{"POST", pub + "/v1/sessions/close_session", `{"session_id":"` + ids[0] + `"}`, nil})
	do(t, call{"POST", pub + "/v1/sessions/delete_session_by_id", `{"session_id":"` + ids[1] + `"}`, nil})
	if code := adminCall(t, m, "DELETE", "/v1/sessions/"+ids[2], "pw"); code != 204 {
		t.Fatalf("force-close: %d", code)
	}

	// An API key opens two sessions on the JSON-RPC API; one stays open,
	// the other is closed by its client.
	keyID, secret := adminKey(t, m)
	keyHdr := map[string]string{"APIKey": keyID, "Secret": secret}
	kept := rpc(t, pub, keyHdr, "session.open_session", `{"user_id":"k"}`)
	closed := rpc(t, pub, keyHdr, "session.open_session", `{"user_id":"k"}`)
	rpc(t, pub, keyHdr, "session.close_session", `{"token":"`+closed["access_token"].(string)+`"}`)
	tokHdr := map[string]string{"Xdata-Session-Token": kept["access_token"].(string)}

	// Wrong credentials, per API: 2 JSON-RPC, 1 gateway, 1 files, 1 admin.
	// Missing credentials are not failures.
	wrong := map[string]string{"APIKey": keyID, "Secret": "wrong"}
	rpc(t, pub, wrong, "session.verify_session_token", `{"token":"x"}`)
	rpc(t, pub, wrong, "session.verify_session_token", `{"token":"x"}`)
	do(t, call{"GET", pub + "/api/v1/up/x", "", map[string]string{"Xdata-Session-Token": "no-such-token"}})
	do(t, call{"GET", pub + "/api/v1/up/x", "", nil})
	do(t, call{"GET", pub + "/api/v1/session/files/a.txt", "", map[string]string{"Xdata-Session-Token": "no-such-token"}})
	if code := adminCall(t, m, "GET", "/v1/apikeys", "wrong"); code != 401 {
		t.Fatalf("admin with a wrong password: %d", code)
	}

	// Gateway: 3 requests on /api/v1/up/ (one answered 500), 1 on the
	// dead upstream (502).
	for _, p := range []string{"/api/v1/up/a", "/api/v1/up/b", "/api/v1/up/fail", "/api/v1/down/a"} {
		do(t, call{"GET", pub + p, "", tokHdr})
	}
	// A session file, with the session's token.
	if code, _, b := do(t, call{"PUT", pub + "/api/v1/session/files/a.txt", "hi", tokHdr}); code/100 != 2 {
		t.Fatalf("PUT file: %d %s", code, b)
	}
	// Revoking the key closes its open session (revoked).
	if code := adminCall(t, m, "DELETE", "/v1/apikeys/"+keyID, "pw"); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	// One session stays active: one more open.
	do(t, call{"POST", pub + "/v1/sessions/open_session", `{"user_id":"c"}`, nil})

	fams = scrape(t, m)
	exact := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sessiond_sessions_opened_total", nil, 6},
		{"sessiond_sessions_closed_total", []string{"reason", "closed"}, 2},
		{"sessiond_sessions_closed_total", []string{"reason", "forced"}, 1},
		{"sessiond_sessions_closed_total", []string{"reason", "revoked"}, 1},
		{"sessiond_sessions_closed_total", []string{"reason", "expired"}, 0},
		{"sessiond_sessions_closed_total", []string{"reason", "evicted"}, 0},
		{"sessiond_sessions_deleted_total", nil, 1},
		{"sessiond_apikeys_created_total", nil, 1},
		{"sessiond_apikeys_revoked_total", nil, 1},
		{"sessiond_sessions_active", nil, 1},
		{"sessiond_auth_failures_total", []string{"api", "jsonrpc"}, 2},
		{"sessiond_auth_failures_total", []string{"api", "gateway"}, 1},
		{"sessiond_auth_failures_total", []string{"api", "files"}, 1},
		{"sessiond_auth_failures_total", []string{"api", "admin"}, 1},
		{"sessiond_gateway_requests_total", []string{"route", "/api/v1/up/"}, 3},
		{"sessiond_gateway_errors_total", []string{"route", "/api/v1/up/"}, 1},
		{"sessiond_gateway_upstream_duration_seconds", []string{"route", "/api/v1/up/"}, 3},
		{"sessiond_gateway_requests_total", []string{"route", "/api/v1/down/"}, 1},
		{"sessiond_gateway_errors_total", []string{"route", "/api/v1/down/"}, 1},
		{"sessiond_gateway_upstream_duration_seconds", []string{"route", "/api/v1/down/"}, 0}, // never answered
		// Requests per API and status class.
		{"sessiond_http_request_duration_seconds", []string{"api", "commandable", "status", "2xx"}, 6},
		{"sessiond_http_request_duration_seconds", []string{"api", "jsonrpc", "status", "2xx"}, 3},
		{"sessiond_http_request_duration_seconds", []string{"api", "files", "status", "2xx"}, 1},
		{"sessiond_http_request_duration_seconds", []string{"api", "files", "status", "4xx"}, 1},
		{"sessiond_http_request_duration_seconds", []string{"api", "gateway", "status", "2xx"}, 2},
		{"sessiond_http_request_duration_seconds", []string{"api", "gateway", "status", "4xx"}, 2},
		{"sessiond_http_request_duration_seconds", []string{"api", "gateway", "status", "5xx"}, 2},
	}
	for _, e := range exact {
		if got := value(fams, e.name, e.labels...); got != e.want {
			t.Errorf("%s%v = %v, want %v", e.name, e.labels, got, e.want)
		}
	}
	// JSON-RPC answers wrong credentials in its envelope; whatever the
	// status, the API saw 5 requests.
	if got := sum(fams, "sessiond_http_request_duration_seconds", "api", "jsonrpc"); got != 5 {
		t.Errorf("jsonrpc requests = %v, want 5", got)
	}
	// Store calls are timed: every open was a create.
	if got := value(fams, "sessiond_store_duration_seconds", "method", "create"); got != 6 {
		t.Errorf("store create calls = %v, want 6", got)
	}
	// Admin requests, this scrape not yet among them: 1 before-traffic
	// scrape, a force-close, a key, a refused list, a revoke.
	if got := sum(fams, "sessiond_http_request_duration_seconds", "api", "admin"); got != 5 {
		t.Errorf("admin requests = %v, want 5", got)
	}
	// The runtime collectors are there too, in the daemon's own registry.
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Error("the Go and process collectors are missing")
	}
	// No label carries a session id or a user.
	for name, f := range fams {
		for _, mt := range f.Metric {
			for _, l := range mt.Label {
				for _, id := range append(ids, keyID, "c", "k") {
					if l.GetValue() == id {
						t.Errorf("%s has a label %s=%s", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// /metrics is authenticated like the rest of the admin API.
func TestMetricsNeedAdminCredentials(t *testing.T) {
	m := startWith(t, nil, nil)
	if code := adminCall(t, m, "GET", "/metrics", ""); code != 401 {
		t.Errorf("GET /metrics without credentials: %d, want 401", code)
	}
	if code := adminCall(t, m, "GET", "/metrics", "wrong"); code != 401 {
		t.Errorf("GET /metrics with a wrong password: %d, want 401", code)
	}
}

// Two daemons in one process keep their own registries: no collision at
// start, and each counts only its own traffic.
func TestMetricsTwoDaemonsInOneProcess(t *testing.T) {
	a, b := startWith(t, nil, nil), startWith(t, nil, nil)
	if a.Registry == b.Registry {
		t.Fatal("the daemons share a registry")
	}
	for i := 0; i < 2; i++ {
		do(t, call{"POST", "http://" + a.PublicAddr() + "/v1/sessions/open_session", `{"user_id":"a"}`, nil})
	}
	do(t, call{"POST", "http://" + b.PublicAddr() + "/v1/sessions/open_session", `{"user_id":"b"}`, nil})
	if got := value(scrape(t, a), "sessiond_sessions_opened_total"); got != 2 {
		t.Errorf("a opened %v, want 2", got)
	}
	if got := value(scrape(t, b), "sessiond_sessions_opened_total"); got != 1 {
		t.Errorf("b opened %v, want 1", got)
	}
}

// Two instances sharing PostgreSQL: each counts the sessions it opened
// (the sum is the cluster's), both show the same active sessions, and
// the events of the other instance feed the lag histogram.
func TestMetricsTwoInstancesOnPostgres(t *testing.T) {
	store := pgtest.Schema(t)
	a := startWith(t, nil, func(c *config.Config) { c.Store = store })
	b := startWith(t, nil, func(c *config.Config) { c.Store = store })
	for i := 0; i < 3; i++ {
		do(t, call{"POST", "http://" + a.PublicAddr() + "/v1/sessions/open_session", `{"user_id":"a"}`, nil})
	}
	do(t, call{"POST", "http://" + b.PublicAddr() + "/v1/sessions/open_session", `{"user_id":"b"}`, nil})
	// b learns of a's three opens through the stream (LISTEN/NOTIFY).
	deadline := time.Now().Add(10 * time.Second)
	for value(scrape(t, b), "sessiond_event_lag_seconds") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("b's lag histogram did not see a's three events in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fa, fb := scrape(t, a), scrape(t, b)
	if got := value(fa, "sessiond_sessions_opened_total"); got != 3 {
		t.Errorf("a opened %v, want 3", got)
	}
	if got := value(fb, "sessiond_sessions_opened_total"); got != 1 {
		t.Errorf("b opened %v, want 1", got)
	}
	if ga, gb := value(fa, "sessiond_sessions_active"), value(fb, "sessiond_sessions_active"); ga != 4 || gb != 4 {
		t.Errorf("active sessions: a %v, b %v, want 4 on both", ga, gb)
	}
}

// On a shared engine the store's histogram counts trips to the store, not
// the cache's hits: ten reads of one session on another instance are one
// store read; on the memory engine, which has no cache, they are ten.
func TestStoreMetricsCountTripsNotCacheHits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store string
		max   float64 // store reads for the ten reads
		min   float64
	}{
		{"postgres", pgtest.Schema(t), 2, 1}, // 2: a stream's reconnection drops the cache
		{"memory", "memory", 10, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startWith(t, nil, func(c *config.Config) { c.Store = tc.store })
			b := a
			if tc.store != "memory" {
				// Opened on another instance, so that b's cache starts empty.
				b = startWith(t, nil, func(c *config.Config) { c.Store = tc.store })
			}
			_, _, body := do(t, call{"POST", "http://" + a.PublicAddr() + "/v1/sessions/open_session", `{"user_id":"u"}`, nil})
			var opened struct{ ID string }
			if err := json.Unmarshal(body, &opened); err != nil || opened.ID == "" {
				t.Fatalf("open: %s", body)
			}
			before := value(scrape(t, b), "sessiond_store_duration_seconds", "method", "get")
			for i := 0; i < 10; i++ {
				if code, _, body := do(t, call{"POST", "http://" + b.PublicAddr() + "/v1/sessions/get_session_by_id",
					`{"session_id":"` + opened.ID + `"}`, nil}); code != 200 {
					t.Fatalf("get: %d %s", code, body)
				}
			}
			got := value(scrape(t, b), "sessiond_store_duration_seconds", "method", "get") - before
			if got < tc.min || got > tc.max {
				t.Errorf("store gets for 10 reads = %v, want %v to %v", got, tc.min, tc.max)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAccessLog: with --access-log, every request of every listener is
// logged once, with its API, method, path, status, duration and
// correlation id; never a token, secret or password, whether sent in
// headers, JSON-RPC params or the query.
func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer upstream.Close()
	m := startWith(t, log, func(c *config.Config) {
		c.AccessLog = true
		c.Gateway = []string{"/api/v1/up/=" + upstream.URL}
	})
	pub := "http://" + m.PublicAddr()
	keyID, secret := adminKey(t, m)
	keyHdr := map[string]string{"APIKey": keyID, "Secret": secret}
	opened := rpc(t, pub, keyHdr, "session.open_session", `{"user_id":"u"}`)
	token := opened["access_token"].(string)
	rpc(t, pub, keyHdr, "session.verify_session_token", `{"token":"`+token+`"}`)
	do(t, call{"GET", pub + "/api/v1/up/x?token=" + token + "&Secret=" + secret + "&page=2", "",
		map[string]string{"Xdata-Session-Token": token, "X-Correlation-Id": "corr-1"}})
	do(t, call{"GET", pub + "/api/v1/up/y", "", map[string]string{"Authorization": "Bearer " + token}})
	do(t, call{"GET", pub + "/api/v1/session/files/a.txt?correlation_id=corr-2", "", map[string]string{"Xdata-Session-Token": token}})
	adminCall(t, m, "GET", "/v1/apikeys", "pw")

	type line struct {
		Msg, API, Method, Path, Query, CorrelationID, Client string
		Status                                               int
		Duration                                             *float64
		Level                                                string
	}
	var lines []line
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var v struct {
			Msg, Level, API, Method, Path, Query, Client string
			Status                                       int
			Duration                                     *float64
			CorrelationID                                string `json:"correlation_id"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if v.Msg == "request" {
			lines = append(lines, line{v.Msg, v.API, v.Method, v.Path, v.Query, v.CorrelationID, v.Client, v.Status, v.Duration, v.Level})
		}
	}
	want := []struct{ api, method, path string }{
		{"admin", "POST", "/v1/apikeys"},
		{"jsonrpc", "POST", "/api/v1/session/jsonrpc"},
		{"jsonrpc", "POST", "/api/v1/session/jsonrpc"},
		{"gateway", "GET", "/api/v1/up/x"},
		{"gateway", "GET", "/api/v1/up/y"},
		{"files", "GET", "/api/v1/session/files/a.txt"},
		{"admin", "GET", "/v1/apikeys"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d request lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		l := lines[i]
		if l.API != w.api || l.Method != w.method || l.Path != w.path || l.Status == 0 || l.Duration == nil ||
			l.CorrelationID == "" || l.Client != "127.0.0.1" || l.Level != "INFO" {
			t.Errorf("line %d = %+v, want %+v with a status, a duration, a correlation id and the client, at INFO", i, l, w)
		}
	}
	if l := lines[3]; l.CorrelationID != "corr-1" || l.Query != "token=REDACTED&Secret=REDACTED&page=2" || l.Status != 200 {
		t.Errorf("gateway line = %+v, want the client's correlation id, the query redacted, 200", l)
	}
	if l := lines[5]; l.CorrelationID != "corr-2" || l.Status != 404 {
		t.Errorf("files line = %+v, want corr-2 and 404", l)
	}
	for _, s := range []string{token, secret, "pw"} {
		if strings.Contains(buf.String(), s) {
			t.Errorf("the log holds a credential %q:\n%s", s, buf.String())
		}
	}

	// Switched off by a reload: no more lines.
	cfg := m.Config
	cfg.AccessLog = false
	m.Reload(cfg)
	before := strings.Count(buf.String(), `"msg":"request"`)
	do(t, call{"GET", pub + "/nope", "", nil})
	if after := strings.Count(buf.String(), `"msg":"request"`); after != before {
		t.Errorf("a request was logged after the access log was switched off")
	}
}

// publicAPI names, for metrics and the access log, the API that routing
// sends a path to; near misses belong to the API whose prefix they are
// under, and paths of no API to none.
func TestPublicAPIFollowsRouting(t *testing.T) {
	m := startWith(t, nil, func(c *config.Config) {
		c.Gateway = []string{"/api/v1/up/=http://127.0.0.1:1", "/metrics=http://127.0.0.1:1"}
	})
	tests := map[string]string{
		"/v1/sessions/open_session":      "commandable",
		"/v1/other":                      "commandable",
		"/sessions/u1":                   "rest",
		"/sessions":                      "rest",
		"/api/v1/session/jsonrpc":        "jsonrpc",
		"/api/v2/session/jsonrpc/x":      "jsonrpc",
		"/api/v1/session/files/a.txt":    "files",
		"/api/v1/up/x":                   "gateway",
		"/metrics":                       "gateway",
		"/metricsx":                      "none",
		"/api/v1/nothing":                "none",
		"/":                              "none",
		"/api/v1/session/files":          "none",
		"/api/v1/session/jsonrpcx":       "none",
		"/api/v1/session/files/../x.txt": "files",
	}
	for p, want := range tests {
		if got := m.publicAPI(&http.Request{URL: &url.URL{Path: p}}); got != want {
			t.Errorf("publicAPI(%s) = %s, want %s", p, got, want)
		}
	}
	// With an internal listener, the trusted APIs are not the public
	// listener's.
	mi := startWith(t, nil, func(c *config.Config) { c.InternalListen = "127.0.0.1:0" })
	if got := mi.publicAPI(&http.Request{URL: &url.URL{Path: "/v1/sessions/open_session"}}); got != "none" {
		t.Errorf("publicAPI with an internal listener = %s, want none", got)
	}
	if got := internalAPI(&http.Request{URL: &url.URL{Path: "/sessions/u"}}); got != "rest" {
		t.Errorf("internalAPI(/sessions/u) = %s, want rest", got)
	}
}
