package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/config"
	"sessiond/store/postgres/pgtest"
	"sessiond/store/redis/redistest"
)

// startMain runs a whole daemon in-process on ephemeral ports.
func startMain(t testing.TB, store string, gateway ...string) *Main {
	t.Helper()
	cfg := config.Default()
	cfg.Store = store
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway = gateway
	m := &Main{Config: cfg, Stdout: io.Discard, AdminPassword: "pw"}
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

type call struct {
	method, url, body string
	header            map[string]string
}

func do(t *testing.T, c call) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

// TestEndToEnd drives every API of a running daemon once, through its real
// listeners, in the order a newcomer would: the commandable and REST APIs,
// an API key from the admin API, the JSON-RPC API with it, the gateway to a
// real upstream, and a session file.
func TestEndToEnd(t *testing.T) {
	for _, engine := range []string{"embedded", "memory", "postgres", "redis", "redis-cluster"} {
		t.Run(engine, func(t *testing.T) {
			store := engine
			switch engine {
			case "postgres":
				store = pgtest.Schema(t)
			case "redis":
				store = redistest.PrefixURL(t, redistest.BaseURL())
			case "redis-cluster":
				store = redistest.StartCluster(t).URL()
			}
			var seen http.Header
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r.Header.Clone()
				io.WriteString(w, "backend:"+r.URL.RequestURI())
			}))
			defer upstream.Close()
			m := startMain(t, store, "/api/v1/dataproc/="+upstream.URL)
			pub, adm := "http://"+m.PublicAddr(), "http://"+m.AdminAddr()

			// Commandable API.
			code, _, b := do(t, call{"POST", pub + "/v1/sessions/open_session", `{"user_id":"u1","user_name":"Ann","data":{"cart":1}}`, nil})
			if code != 200 {
				t.Fatalf("open_session: %d %s", code, b)
			}
			var opened struct {
				ID          string `json:"id"`
				AccessToken string `json:"access_token"`
			}
			decode(t, b, &opened)
			if code, _, b = do(t, call{"POST", pub + "/v1/sessions/get_session_by_id", `{"session_id":"` + opened.ID + `"}`, nil}); code != 200 || !bytes.Contains(b, []byte(`"cart":1`)) {
				t.Fatalf("get_session_by_id: %d %s", code, b)
			}
			// REST API sees the same session.
			if code, _, b = do(t, call{"GET", pub + "/sessions/u1", "", nil}); code != 200 || !bytes.Contains(b, []byte(opened.ID)) {
				t.Fatalf("GET /sessions/u1: %d %s", code, b)
			}
			// Admin API: health, then a key.
			if code, _, b = do(t, call{"GET", adm + "/health/ready", "", nil}); code != 200 {
				t.Fatalf("ready: %d %s", code, b)
			}
			if code, _, _ = do(t, call{"GET", adm + "/v1/apikeys", "", nil}); code != 401 {
				t.Fatalf("admin without credentials: %d, want 401", code)
			}
			req, _ := http.NewRequest("POST", adm+"/v1/apikeys", strings.NewReader(`{"data":{"attributes":{"name":"e2e"}}}`))
			req.SetBasicAuth("admin", "pw")
			req.Header.Set("Content-Type", "application/vnd.api+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("create key: %d %s", resp.StatusCode, b)
			}
			var key struct {
				Data struct {
					ID         string
					Attributes struct{ Secret string }
				}
			}
			decode(t, b, &key)
			// JSON-RPC with the key.
			keyHdr := map[string]string{"APIKey": key.Data.ID, "Secret": key.Data.Attributes.Secret}
			code, _, b = do(t, call{"POST", pub + "/api/v1/session/jsonrpc", `{"jsonrpc":"2.0","id":1,"method":"session.open_session","params":{"user_id":"u2"}}`, keyHdr})
			if code != 200 {
				t.Fatalf("session.open_session: %d %s", code, b)
			}
			var rpc struct {
				Result struct {
					AccessToken string `json:"access_token"`
					SessionID   string `json:"session_id"`
				}
			}
			decode(t, b, &rpc)
			tokHdr := map[string]string{"Xdata-Session-Token": rpc.Result.AccessToken, "Xdata-Session-Id": "forged"}
			// Gateway: the backend sees our session id, never the token.
			code, _, b = do(t, call{"GET", pub + "/api/v1/dataproc/jsonrpc?x=1", "", tokHdr})
			if code != 200 || string(b) != "backend:/api/v1/dataproc/jsonrpc?x=1" {
				t.Fatalf("gateway: %d %s", code, b)
			}
			if got := seen.Get("Xdata-Session-Id"); got != rpc.Result.SessionID {
				t.Errorf("backend saw session id %q, want %q", got, rpc.Result.SessionID)
			}
			if seen.Get("Xdata-Session-Token") != "" || seen.Get("Xdata-Session-Dir") == "" {
				t.Errorf("backend headers: token %q, dir %q", seen.Get("Xdata-Session-Token"), seen.Get("Xdata-Session-Dir"))
			}
			if code, _, _ = do(t, call{"GET", pub + "/api/v1/dataproc/x", "", nil}); code != 401 {
				t.Errorf("gateway without credentials: %d, want 401", code)
			}
			// Session files.
			if code, _, b = do(t, call{"PUT", pub + "/api/v1/session/files/notes/a.txt", "hello", tokHdr}); code/100 != 2 {
				t.Fatalf("PUT file: %d %s", code, b)
			}
			if code, _, b = do(t, call{"GET", pub + "/api/v1/session/files/notes/a.txt", "", tokHdr}); code != 200 || string(b) != "hello" {
				t.Fatalf("GET file: %d %s", code, b)
			}
			if code, _, _ = do(t, call{"GET", pub + "/api/v1/session/files/../etc/passwd", "", tokHdr}); code != 400 {
				t.Errorf("GET ../etc/passwd: %d, want 400", code)
			}
			// Unknown public route: JSON 404.
			if code, h, _ := do(t, call{"GET", pub + "/nope", "", nil}); code != 404 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("unknown route: %d %s", code, h.Get("Content-Type"))
			}
		})
	}
}

// After the stream resumes from a gap, the directories of sessions that
// ended meanwhile unseen are removed (reconciled with the store).
func TestDirectoriesReconciledAfterAGap(t *testing.T) {
	m := startMain(t, "memory")
	ctx := t.Context()
	sess, _, err := m.Service.Open(ctx, sessiond.OpenRequest{UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := m.Dirs.Ensure(sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Deleted behind the stream's back: no event, as if it was missed.
	if _, err := m.Store.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	stream := m.Service.Events().(*sessiond.LocalStream)
	stream.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the directory went before the stream resumed: %v", err)
	}
	stream.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the directory of a session deleted during the gap is still there 5 s after the stream resumed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
