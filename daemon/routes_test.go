package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestUnroutedPathsAnswerInTheirAPIsFormat sends near misses of every API
// prefix to a running daemon: each is answered in the error format of the
// API whose prefix it is under, never with a redirect or plain text.
func TestUnroutedPathsAnswerInTheirAPIsFormat(t *testing.T) {
	m := startMain(t, "memory")
	base := "http://" + m.PublicAddr()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		method, path string
		status       int
		format       string // pip, jsonrpc (the Session API's envelope), rpcstyle (files and gateway)
	}{
		{"POST", "/v1/sessions", 404, "pip"},
		{"GET", "/v1/sessions", 404, "pip"},
		{"POST", "/v1/sessions/", 404, "pip"},
		{"POST", "/v1/sessions//open_session", 404, "pip"},
		{"POST", "/v1/sessions/./open_session", 404, "pip"},
		{"POST", "/v1/sessions/x/../open_session", 404, "pip"},
		{"POST", "/v1/other", 404, "pip"},
		{"GET", "/sessions//u1", 404, "pip"},
		{"GET", "/sessions/u1/../u2", 404, "pip"},
		{"GET", "/sessions/./u1", 404, "pip"},
		{"POST", "/api/v1/session/jsonrpc/", 404, "jsonrpc"},
		{"POST", "/api/v2/session/jsonrpc/x", 404, "jsonrpc"},
		{"GET", "/api/v1/session/files", 404, "rpcstyle"},
		{"PUT", "/api/v1/session/files", 404, "rpcstyle"},
		{"GET", "/api/v1/session", 404, "rpcstyle"},
		{"GET", "/api/v1/nothing", 404, "rpcstyle"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		what := tt.method + " " + tt.path
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d (Location %q), body %q; want %d", what, resp.StatusCode, resp.Header.Get("Location"), body, tt.status)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q, want JSON", what, ct)
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("%s: body %q is not JSON: %v", what, body, err)
			continue
		}
		switch tt.format {
		case "pip":
			if v["category"] != "NotFound" || v["code"] != "NOT_FOUND" || v["status"] != float64(404) {
				t.Errorf("%s: body %s, want a Pip.Services NotFound description", what, body)
			}
		case "jsonrpc":
			e, _ := v["error"].(map[string]any)
			if v["jsonrpc"] != "2.0" || e == nil || e["code"] == nil || v["id"] != nil {
				t.Errorf("%s: body %s, want a JSON-RPC error response", what, body)
			}
		case "rpcstyle":
			e, _ := v["error"].(map[string]any)
			if e == nil || e["code"] == nil || e["message"] == nil {
				t.Errorf("%s: body %s, want a JSON-RPC-style error body", what, body)
			}
		}
	}
}
