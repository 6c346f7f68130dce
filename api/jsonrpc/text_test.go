package jsonrpc

import (
	"net/http"
	"strings"
	"testing"
)

// TestInvalidTextRefused checks that a body that is not UTF-8 text, or
// escapes a lone surrogate, is a parse error whatever field holds it, and
// changes nothing; the Service's limits answer in this dialect too.
func TestInvalidTextRefused(t *testing.T) {
	e := newEnv(t, Options{})
	before := e.snapshot(t)
	for _, body := range []string{
		"{\"jsonrpc\":\"2.0\",\"method\":\"session.open_session\",\"params\":{\"user_id\":\"u\xff\"},\"id\":1}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"session.open_session\",\"params\":{\"data\":{\"k\":\"\xc3\x28\"}},\"id\":1}",
		`{"jsonrpc":"2.0","method":"session.open_session","params":{"user_id":"u\udc00"},"id":1}`,
		`{"jsonrpc":"2.0","method":"session.open_session","params":{"data":["\ud800x"]},"id":1}`,
		`[{"jsonrpc":"2.0","method":"session.open_session","params":{"data":"ok"},"id":1},{"jsonrpc":"2.0","method":"session.open_session","params":{"data":"\ud800"},"id":2}]`,
	} {
		r := single(t, e.post(t, e.a.creds(), body), http.StatusOK)
		if r.Error == nil || r.Error.Code != CodeParseError || string(r.ID) != "null" {
			t.Errorf("%q: got %+v id %s, want a parse error with id null", body, r.Error, r.ID)
		}
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("refused bodies changed the store")
	}
	// A valid surrogate pair is a character like any other.
	e.open(t, e.a.creds(), map[string]any{"user_id": "u", "data": "\U0001F600"})
	r := single(t, e.post(t, e.a.creds(), `{"jsonrpc":"2.0","method":"session.open_session","params":{"data":"\ud83d\ude00"},"id":1}`), http.StatusOK)
	if r.Error != nil {
		t.Errorf("escaped surrogate pair refused: %+v", r.Error)
	}

	// Data over the Service's limit (64 KiB by default): 413 for a single
	// request, 200 in a batch (whose other answers stand).
	big := strings.Repeat("x", 64<<10)
	one := `{"jsonrpc":"2.0","method":"session.open_session","params":{"data":"` + big + `"},"id":1}`
	r = single(t, e.post(t, e.a.creds(), one), http.StatusRequestEntityTooLarge)
	if r.Error == nil || r.Error.Code != CodeInvalidRequest || r.Error.Data["limit"] == nil {
		t.Errorf("data over the limit: got %+v, want -32600 with data.limit", r.Error)
	}
	w := e.post(t, e.a.creds(), `[`+one+`,{"jsonrpc":"2.0","method":"session.open_session","params":{},"id":2}]`)
	if w.Code != http.StatusOK {
		t.Errorf("batch with a request over the limit: status %d, want 200", w.Code)
	}
}
