package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/clock"
	"sessiond/internal/httpx"
	"sessiond/internal/httpx/httpxtest"
	"sessiond/store/memory"
)

// The shared test environment: a Service over the memory store and a fake
// clock, two API keys, and the handler behind httpx.Middleware with a
// Debug-level logger whose output is checked, when the test ends, to hold
// no secret and no token the test saw.

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type apiKey struct{ id, secret string }

type testEnv struct {
	clk   *clock.Fake
	store sessiond.Store
	svc   *sessiond.Service
	h     http.Handler
	a, b  apiKey

	logs    *httpxtest.LogBuffer
	secrets []string // every secret and token handed out, checked against logs
}

// newEnv builds an environment over a memory store.
func newEnv(t testing.TB, opts Options) *testEnv {
	t.Helper()
	return newEnvStore(t, memory.New(), opts)
}

func newEnvStore(t testing.TB, store sessiond.Store, opts Options) *testEnv {
	t.Helper()
	e := &testEnv{clk: clock.NewFake(t0), store: store, logs: &httpxtest.LogBuffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = sessiond.NewService(store, e.clk, sessiond.Config{}, log)
	e.h = httpx.Middleware(log, New(e.svc, opts))
	e.a = e.newKey(t, "tenant-a")
	e.b = e.newKey(t, "tenant-b")
	t.Cleanup(func() {
		logs := e.logs.String()
		for _, s := range e.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("a secret or token was logged:\n%s", logs)
				return
			}
		}
	})
	return e
}

func (e *testEnv) newKey(t testing.TB, name string) apiKey {
	t.Helper()
	k, secret, err := e.svc.CreateAPIKey(context.Background(), name)
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	e.secrets = append(e.secrets, secret)
	return apiKey{id: k.ID, secret: secret}
}

// creds returns the headers that authenticate with k.
func (k apiKey) creds() http.Header {
	return http.Header{"Apikey": {k.id}, "Secret": {k.secret}}
}

// tokenCreds returns the headers that authenticate with a session token.
func tokenCreds(token string) http.Header {
	return http.Header{"Xdata-Session-Token": {token}}
}

// post sends body to the handler with the given headers.
func (e *testEnv) post(t testing.TB, hdr http.Header, body string) *httptest.ResponseRecorder {
	t.Helper()
	return e.do(t, http.MethodPost, hdr, strings.NewReader(body))
}

func (e *testEnv) do(t testing.TB, method string, hdr http.Header, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "/api/v1/session/jsonrpc", body)
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// response is a decoded JSON-RPC response.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
	ID      json.RawMessage `json:"id"`
}

// decodeResponse decodes and checks one response object: exactly the
// members of JSON-RPC 2.0, and either a result or an error.
func decodeResponse(t testing.TB, b []byte) response {
	t.Helper()
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	_, hasResult := members["result"]
	_, hasError := members["error"]
	_, hasID := members["id"]
	if hasResult == hasError || !hasID || len(members) != 3 {
		t.Fatalf("response %s: want jsonrpc, id and one of result or error", b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r response
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	if r.JSONRPC != "2.0" {
		t.Fatalf("response %s: jsonrpc %q, want \"2.0\"", b, r.JSONRPC)
	}
	return r
}

// single checks that w holds one response object with the given status.
func single(t testing.TB, w *httptest.ResponseRecorder, status int) response {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	return decodeResponse(t, w.Body.Bytes())
}

// batch checks that w holds an array of response objects (HTTP 200).
func batch(t testing.TB, w *httptest.ResponseRecorder) []response {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", w.Code, w.Body)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("batch response %s: %v", w.Body, err)
	}
	out := make([]response, len(raw))
	for i, b := range raw {
		out[i] = decodeResponse(t, b)
	}
	return out
}

// reqBody encodes a request object with id 1.
func reqBody(t testing.TB, method string, params any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// call calls method with hdr credentials and returns its response.
func (e *testEnv) call(t testing.TB, hdr http.Header, method string, params any) response {
	t.Helper()
	return single(t, e.post(t, hdr, reqBody(t, method, params)), http.StatusOK)
}

// result calls method and returns its result, failing on an error.
func (e *testEnv) result(t testing.TB, hdr http.Header, method string, params any) json.RawMessage {
	t.Helper()
	r := e.call(t, hdr, method, params)
	if r.Error != nil {
		t.Fatalf("%s: error %d %q", method, r.Error.Code, r.Error.Message)
	}
	return r.Result
}

// rpcError calls method and returns its error, failing on a result.
func (e *testEnv) rpcError(t testing.TB, hdr http.Header, method string, params any) *Error {
	t.Helper()
	r := e.call(t, hdr, method, params)
	if r.Error == nil {
		t.Fatalf("%s: result %s, want an error", method, r.Result)
	}
	return r.Error
}

type openResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	SessionID   string `json:"session_id"`
}

// open opens a session with hdr credentials.
func (e *testEnv) open(t testing.TB, hdr http.Header, params any) openResponse {
	t.Helper()
	var o openResponse
	if err := json.Unmarshal(e.result(t, hdr, "session.open_session", params), &o); err != nil {
		t.Fatal(err)
	}
	e.secrets = append(e.secrets, o.AccessToken)
	return o
}

// active reports what verify_session_token says of token to hdr.
func (e *testEnv) active(t testing.TB, hdr http.Header, token string) bool {
	t.Helper()
	var v struct{ Active *bool }
	if err := json.Unmarshal(e.result(t, hdr, "session.verify_session_token", map[string]any{"token": token}), &v); err != nil || v.Active == nil {
		t.Fatalf("verify result: %v", err)
	}
	return *v.Active
}

// snapshot returns the observable state of the store: every session (with
// pending request times) and every API key.
func (e *testEnv) snapshot(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	page, err := e.svc.List(ctx, sessiond.Filter{}, sessiond.Paging{Take: 1000})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e.svc.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"sessions": page.Data, "keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
