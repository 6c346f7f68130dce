package jsonrpc

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestWalkthrough runs the walk-through of docs/api-jsonrpc.md and compares
// every exchange, with tokens, ids and secrets replaced by placeholders,
// to testdata/walkthrough.golden. Run with -update to rewrite it, and
// review the diff.
func TestWalkthrough(t *testing.T) {
	e := newEnv(t, Options{})
	var tr transcript
	key := http.Header{"Apikey": {e.a.id}, "Secret": {e.a.secret}, "User-Agent": {"curl/8.5.0"}}
	tr.names = map[string]string{e.a.id: "<api_key_id>", e.a.secret: "<secret>"}

	w := tr.post(t, e, "Open a session with the API key", key,
		`{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":3600,"user_id":"u-1001","user_name":"Ada Lovelace","data":{"cart":[]}},"id":1}`)
	var o openResponse
	json.Unmarshal(decodeResponse(t, w.Body.Bytes()).Result, &o)
	e.secrets = append(e.secrets, o.AccessToken)
	tr.names[o.AccessToken] = "<access_token>"
	tr.names[o.SessionID] = "<session_id>"
	tok := o.AccessToken
	byToken := http.Header{"Xdata-Session-Token": {tok}, "User-Agent": {"curl/8.5.0"}}

	tr.post(t, e, "Verify the token", key,
		`{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"`+tok+`"},"id":2}`)
	tr.post(t, e, "Read the session, authenticated by its own token", byToken,
		`{"jsonrpc":"2.0","method":"session.get_session","params":{"token":"`+tok+`"},"id":3}`)
	e.clk.Add(5 * time.Second)
	tr.post(t, e, "Store data (five seconds later)", key,
		`{"jsonrpc":"2.0","method":"session.store_session_data","params":{"token":"`+tok+`","data":{"cart":[42]}},"id":4}`)
	tr.post(t, e, "Close the session", key,
		`{"jsonrpc":"2.0","method":"session.close_session","params":{"token":"`+tok+`"},"id":5}`)
	tr.post(t, e, "Verify after closing", key,
		`{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"`+tok+`"},"id":6}`)
	tr.post(t, e, "Read after closing", key,
		`{"jsonrpc":"2.0","method":"session.get_session","params":{"token":"`+tok+`"},"id":7}`)
	tr.post(t, e, "A batch: answers in order, the notification (no id) gets none", key,
		`[{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"`+tok+`"},"id":"a"},`+
			`{"jsonrpc":"2.0","method":"session.close_session","params":{"token":"`+tok+`"}},`+
			`{"jsonrpc":"2.0","method":"session.get_sessions","id":"b"},`+
			`{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":7},"id":"c"},`+
			`{"foo":"boo"}]`)
	tr.post(t, e, "A wrong secret", http.Header{"Apikey": {e.a.id}, "Secret": {"wrong"}, "User-Agent": {"curl/8.5.0"}},
		`{"jsonrpc":"2.0","method":"session.open_session","id":8}`)
	tr.post(t, e, "Not JSON", key, `{"jsonrpc":"2.0","method":`)

	got := []byte(tr.hide(tr.buf.String()))
	path := filepath.Join("testdata", "walkthrough.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the walk-through differs from %s (run with -update and review the diff):\n%s", path, got)
	}
}

// transcript records HTTP exchanges in a readable form; hide then replaces
// the secret values it was told of.
type transcript struct {
	buf   bytes.Buffer
	names map[string]string // secret values -> placeholders
}

func (tr *transcript) hide(s string) string {
	// Longest first, so that no value is replaced inside another.
	vals := make([]string, 0, len(tr.names))
	for v := range tr.names {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		s = strings.ReplaceAll(s, v, tr.names[v])
	}
	return s
}

func (tr *transcript) post(t *testing.T, e *testEnv, title string, hdr http.Header, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := e.post(t, hdr, body)
	fmt.Fprintf(&tr.buf, "### %s\n\nPOST /api/v1/session/jsonrpc\n", title)
	names := make([]string, 0, len(hdr))
	for k := range hdr {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&tr.buf, "%s: %s\n", k, hdr.Get(k))
	}
	fmt.Fprintf(&tr.buf, "\n%s\n\nHTTP %d %s\n", body, w.Code, http.StatusText(w.Code))
	for _, k := range []string{"Content-Type", "Allow", "WWW-Authenticate"} {
		if v := w.Header().Get(k); v != "" {
			fmt.Fprintf(&tr.buf, "%s: %s\n", k, v)
		}
	}
	if w.Body.Len() > 0 {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, w.Body.Bytes(), "", "  "); err != nil {
			t.Fatalf("%s: response %s: %v", title, w.Body, err)
		}
		fmt.Fprintf(&tr.buf, "\n%s\n", pretty.String())
	}
	tr.buf.WriteString("\n")
	return w
}
