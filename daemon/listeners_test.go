package daemon

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/admin"
	"sessiond/config"
	"sessiond/internal/httpx/httpxtest"
	"sessiond/internal/testcert"
	"sessiond/store/memory"
)

// testConfig is a configuration on ephemeral ports and a fresh directory.
func testConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.Store = "memory"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

// httpxtest.LogBuffer is a log destination the test reads while the daemon writes.
func openMain(t *testing.T, cfg config.Config, log io.Writer) *Main {
	t.Helper()
	level := new(slog.LevelVar)
	m := &Main{Config: cfg, Stdout: io.Discard, AdminPassword: "pw", Log: NewLogger(cfg, log, level), Level: level}
	if err := m.Open(); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestTrustedAPIsRefusedOnPublicAddress(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		t.Run(listen, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Listen = listen
			var stdout bytes.Buffer
			m := &Main{Config: cfg, Stdout: &stdout}
			err := m.Open()
			m.Close()
			var refused *TrustedAPIsExposedError
			if !errors.As(err, &refused) {
				t.Fatalf("Open: %v, want TrustedAPIsExposedError", err)
			}
			for _, want := range []string{"--internal-listen", "--allow-public-trusted-apis"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal does not name %s: %v", want, err)
				}
			}
			if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
				t.Errorf("data directory created by a refused start: %v", err)
			}
			if stdout.Len() > 0 {
				t.Errorf("refused start printed %q", stdout.String())
			}
		})
	}

	t.Run("allowed, with a warning", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Listen, cfg.AllowPublicTrustedAPIs = "0.0.0.0:0", true
		var log httpxtest.LogBuffer
		openMain(t, cfg, &log)
		if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "allow-public-trusted-apis") {
			t.Errorf("no warning in the log:\n%s", log.String())
		}
	})
	t.Run("moved to the internal listener", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Listen, cfg.InternalListen = "0.0.0.0:0", "127.0.0.1:0"
		openMain(t, cfg, io.Discard)
	})
}

func TestTrustedExposure(t *testing.T) {
	tests := []struct {
		listen  string
		exposed bool
	}{
		{"127.0.0.1:8080", false}, {"[::1]:8080", false}, {"127.0.0.2:1", false}, {"localhost:8080", false},
		{"0.0.0.0:8080", true}, {":8080", true}, {"[::]:8080", true}, {"10.1.2.3:8080", true},
		{"[2001:db8::1]:8080", true}, {"no-such-host.invalid:8080", true},
	}
	for _, tt := range tests {
		why := trustedExposure(context.Background(), tt.listen)
		if got := why != ""; got != tt.exposed {
			t.Errorf("%s: exposed %v (%q), want %v", tt.listen, got, why, tt.exposed)
		}
	}
}

// TestInternalListener: with --internal-listen the trusted APIs answer
// there, and the public listener answers their paths as unrouted, in the
// Pip.Services error format.
func TestInternalListener(t *testing.T) {
	cfg := testConfig(t)
	cfg.InternalListen = "127.0.0.1:0"
	m := openMain(t, cfg, io.Discard)
	pub, internal := "http://"+m.PublicAddr(), "http://"+m.InternalAddr()

	for _, c := range []call{
		{"POST", pub + "/v1/sessions/open_session", `{"user_id":"u1"}`, nil},
		{"POST", pub + "/v1/sessions", `{}`, nil},
		{"GET", pub + "/sessions/u1", "", nil},
		{"GET", pub + "/sessions", "", nil},
	} {
		code, _, b := do(t, c)
		var desc struct{ Code, Category string }
		decode(t, b, &desc)
		if code != 404 || desc.Code != "NOT_FOUND" {
			t.Errorf("public %s %s: %d %s, want 404 NOT_FOUND", c.method, c.url, code, b)
		}
	}
	code, _, b := do(t, call{"POST", internal + "/v1/sessions/open_session", `{"user_id":"u1"}`, nil})
	if code != 200 {
		t.Fatalf("internal open_session: %d %s", code, b)
	}
	if code, _, b = do(t, call{"GET", internal + "/sessions/u1", "", nil}); code != 200 || !bytes.Contains(b, []byte(`"opened"`)) {
		t.Fatalf("internal GET /sessions/u1: %d %s", code, b)
	}
	// The internal listener serves nothing else.
	if code, _, b = do(t, call{"POST", internal + "/api/v1/session/jsonrpc", `{}`, nil}); code != 404 || !bytes.Contains(b, []byte("NOT_FOUND")) {
		t.Errorf("internal JSON-RPC: %d %s, want 404 NOT_FOUND", code, b)
	}
}

// TestStartFailureCreatesNothing: a listener that cannot be bound stops the
// start before the data directory or an admin password is created.
func TestStartFailureCreatesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, which := range []string{"public", "admin", "internal", "certificate"} {
		t.Run(which, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Store = "embedded"
			switch which {
			case "public":
				cfg.Listen = busy.Addr().String()
			case "admin":
				cfg.AdminListen = busy.Addr().String()
			case "internal":
				cfg.InternalListen = busy.Addr().String()
			case "certificate":
				cfg.TLSCert, cfg.TLSKey = filepath.Join(t.TempDir(), "none.pem"), filepath.Join(t.TempDir(), "none.key")
			}
			var stdout bytes.Buffer
			m := &Main{Config: cfg, Stdout: &stdout} // no AdminPassword: one would be generated
			err := m.Open()
			if cerr := m.Close(); cerr != nil {
				t.Errorf("Close after a failed Open: %v", cerr)
			}
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
				t.Errorf("data directory exists after a failed start: %v", err)
			}
			if stdout.Len() > 0 {
				t.Errorf("failed start printed %q", stdout.String())
			}
		})
	}
}

// TestTLSEveryListenerAndReload serves TLS on the three listeners with
// generated certificates, reloads a second certificate (seen by a new
// connection), then a broken file (the second one stays).
func TestTLSEveryListenerAndReload(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.InternalListen = "127.0.0.1:0"
	files := map[string][2]string{}
	first := map[string]*x509.Certificate{}
	for _, l := range []string{"public", "internal", "admin"} {
		files[l] = [2]string{filepath.Join(dir, l+".crt"), filepath.Join(dir, l+".key")}
		first[l] = testcert.Write(t, files[l][0], files[l][1], l+"-1")
	}
	cfg.TLSCert, cfg.TLSKey = files["public"][0], files["public"][1]
	cfg.InternalTLSCert, cfg.InternalTLSKey = files["internal"][0], files["internal"][1]
	cfg.AdminTLSCert, cfg.AdminTLSKey = files["admin"][0], files["admin"][1]
	var log httpxtest.LogBuffer
	m := openMain(t, cfg, &log)
	urls := map[string]string{
		"public":   "https://" + m.PublicAddr() + "/nope",
		"internal": "https://" + m.InternalAddr() + "/sessions/u1",
		"admin":    "https://" + m.AdminAddr() + "/health/live",
	}
	for l, u := range urls {
		if _, got := testcert.Get(t, u, first[l]); got.Subject.CommonName != l+"-1" {
			t.Errorf("%s: certificate %q, want %s-1", l, got.Subject.CommonName, l)
		}
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + m.PublicAddr() + "/nope"); err == nil {
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on a TLS listener: %d", resp.StatusCode)
		}
		resp.Body.Close()
	}

	second := testcert.Write(t, files["public"][0], files["public"][1], "public-2")
	m.Reload(cfg)
	if _, got := testcert.Get(t, urls["public"], second); got.Subject.CommonName != "public-2" {
		t.Errorf("after reload: certificate %q, want public-2", got.Subject.CommonName)
	}
	if _, got := testcert.Get(t, urls["admin"], first["admin"]); got.Subject.CommonName != "admin-1" {
		t.Errorf("admin after reload: certificate %q, want admin-1 (unchanged file)", got.Subject.CommonName)
	}

	os.WriteFile(files["public"][0], []byte("not a certificate"), 0o600)
	m.Reload(cfg)
	if _, got := testcert.Get(t, urls["public"], second); got.Subject.CommonName != "public-2" {
		t.Errorf("after a broken file: certificate %q, want public-2 kept", got.Subject.CommonName)
	}
	if !strings.Contains(log.String(), "keeping the old TLS certificate") {
		t.Errorf("broken certificate not logged:\n%s", log.String())
	}
}

// TestReloadGatewayAndLogLevel swaps the gateway routes while a request is
// in flight on the old ones (it finishes there), and changes the log level.
func TestReloadGatewayAndLogLevel(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "A")
	}))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "B") }))
	defer b.Close()

	cfg := testConfig(t)
	cfg.Gateway = []string{"/api/=" + a.URL}
	var log httpxtest.LogBuffer
	m := openMain(t, cfg, &log)
	pub := "http://" + m.PublicAddr()
	_, token, err := m.Service.Open(context.Background(), sessiond.OpenRequest{UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{"Xdata-Session-Token": token}

	slow := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", pub+"/api/slow", nil)
		req.Header.Set("Xdata-Session-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(body)
	}()
	<-entered

	next := cfg
	next.Gateway = []string{"/api/=" + b.URL, "/other/=" + b.URL}
	next.LogLevel = "debug"
	m.Reload(next)
	if code, _, body := do(t, call{"GET", pub + "/api/x", "", tok}); code != 200 || string(body) != "B" {
		t.Errorf("after reload: %d %s, want B", code, body)
	}
	if code, _, body := do(t, call{"GET", pub + "/other/x", "", tok}); code != 200 || string(body) != "B" {
		t.Errorf("new route after reload: %d %s, want B", code, body)
	}
	close(release)
	if got := <-slow; got != "A" {
		t.Errorf("request in flight during the reload: %q, want A", got)
	}
	if m.Level.Level() != slog.LevelDebug {
		t.Errorf("log level %s, want DEBUG", m.Level.Level())
	}
	if !strings.Contains(log.String(), "configuration reloaded") || !strings.Contains(log.String(), "gateway") {
		t.Errorf("reload not logged:\n%s", log.String())
	}

	// Routes removed: the prefix is an unrouted path again.
	none := next
	none.Gateway = nil
	m.Reload(none)
	if code, _, body := do(t, call{"GET", pub + "/api/x", "", tok}); code != 404 {
		t.Errorf("after removing the routes: %d %s, want 404", code, body)
	}
}

// hangingStore is a memory store whose Close never returns: a store wedged
// by a fault (a full disk, a lost connection) during shutdown.
type hangingStore struct {
	sessiond.Store
	closing chan struct{}
}

func (s *hangingStore) Close() error {
	close(s.closing)
	select {}
}

// TestCloseIsBounded: Close returns within the drain timeout even when the
// store's Close hangs, and says what did not finish.
func TestCloseIsBounded(t *testing.T) {
	cfg := testConfig(t)
	cfg.DrainTimeout = 500 * time.Millisecond
	var log httpxtest.LogBuffer
	st := &hangingStore{Store: memory.New(), closing: make(chan struct{})}
	m := &Main{Config: cfg, Stdout: io.Discard, AdminPassword: "pw", Store: st, Log: NewLogger(cfg, &log, new(slog.LevelVar))}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closing the store did not finish") {
			t.Errorf("Close: %v, want the store step reported", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return with a hung store")
	}
	<-st.closing
	if !strings.Contains(log.String(), "did not finish within the drain timeout") {
		t.Errorf("not logged:\n%s", log.String())
	}
}

// TestReloadAdminUsers: a reload replaces the admin users (plain and
// hashed passwords); a bad set keeps the old ones.
func TestReloadAdminUsers(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminUsers = map[string]string{"ops": "old-password"}
	var log httpxtest.LogBuffer
	m := openMain(t, cfg, &log)
	get := func(user, password string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+m.AdminAddr()+"/v1/apikeys", nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("ops", "old-password"); code != 200 {
		t.Fatalf("before reload: %d", code)
	}
	hash, err := admin.HashPassword("new-password")
	if err != nil {
		t.Fatal(err)
	}
	next := cfg
	next.AdminUsers = map[string]string{"ops": hash}
	m.Reload(next)
	if code := get("ops", "new-password"); code != 200 {
		t.Errorf("new password after reload: %d, want 200", code)
	}
	if code := get("ops", "old-password"); code != 401 {
		t.Errorf("old password after reload: %d, want 401", code)
	}

	bad := cfg
	bad.AdminUsers = map[string]string{"ops": "$argon2id$v=19$broken"}
	m.Reload(bad)
	if code := get("ops", "new-password"); code != 200 {
		t.Errorf("after a bad reload: %d, want the previous users kept", code)
	}
	if !strings.Contains(log.String(), "keeping the old admin users") {
		t.Errorf("bad users not logged:\n%s", log.String())
	}
}
