package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"sessiond/config"
)

// With --trusted-proxies, the JSON-RPC Session API records, and the gateway
// sends on, the same client address; a path out of a gateway prefix is
// refused by the daemon as by the gateway (no redirect first).
func TestTrustedProxiesAgree(t *testing.T) {
	var seen http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	}))
	defer upstream.Close()
	cfg := config.Default()
	cfg.Store = "memory"
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway = []string{"/api/v1/dataproc/=" + upstream.URL}
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	m := &Main{Config: cfg, Stdout: io.Discard, AdminPassword: "pw"}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pub := "http://" + m.PublicAddr()

	k, secret, err := m.Service.CreateAPIKey(context.Background(), "proxy")
	if err != nil {
		t.Fatal(err)
	}
	code, _, b := do(t, call{"POST", pub + "/api/v1/session/jsonrpc",
		`{"jsonrpc":"2.0","id":1,"method":"session.open_session","params":{"user_id":"u"}}`,
		map[string]string{"APIKey": k.ID, "Secret": secret, "X-Forwarded-For": "6.6.6.6, 203.0.113.5", "X-Real-IP": "6.6.6.6"}})
	if code != 200 {
		t.Fatalf("open_session: %d %s", code, b)
	}
	var rpc struct {
		Result struct {
			AccessToken string `json:"access_token"`
			SessionID   string `json:"session_id"`
		}
	}
	decode(t, b, &rpc)
	s, err := m.Service.Get(context.Background(), rpc.Result.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Address != "203.0.113.5" {
		t.Errorf("recorded address: got %q, want 203.0.113.5", s.Address)
	}

	hdr := map[string]string{"Xdata-Session-Token": rpc.Result.AccessToken, "X-Forwarded-For": "6.6.6.6, 203.0.113.5"}
	if code, _, b = do(t, call{"GET", pub + "/api/v1/dataproc/x", "", hdr}); code != 200 {
		t.Fatalf("gateway: %d %s", code, b)
	}
	if got, want := seen.Values("X-Forwarded-For"), "203.0.113.5, 127.0.0.1"; len(got) != 1 || got[0] != want {
		t.Errorf("X-Forwarded-For at the upstream: got %q, want %q", got, want)
	}

	req, _ := http.NewRequest("GET", pub, nil)
	req.URL.Opaque = "/api/v1/dataproc/../../secret"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("path out of the prefix: got %d, want 400", resp.StatusCode)
	}
}
