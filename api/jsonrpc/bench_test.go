package jsonrpc

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"sessiond/internal/auth"
	"sessiond/internal/httpx"
	"sessiond/internal/httpx/httpxtest"
)

// The target (SPEC section 5, README "Performance"): verify_session_token
// with a valid token over HTTP reaches 0.8x the throughput of a bare
// net/http handler answering fixed JSON. Compare
//
//	go test -run '^$' -bench 'HTTP' -count 5 ./api/jsonrpc/
//
// BenchmarkBareHTTP against BenchmarkVerifyHTTP; BenchmarkVerifyHandler
// shows the handler's own cost and allocations without the network.

// benchEnv returns the handler (without middleware, with a failure
// limiter as the daemon has), the credentials of key A and a verify
// request body for a valid token of A.
func benchEnv(b *testing.B) (http.Handler, http.Header, []byte) {
	b.Helper()
	e := newEnv(b, Options{})
	tok := e.open(b, e.a.creds(), nil).AccessToken
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"session.verify_session_token","params":{"token":"` + tok + `"}}`)
	return New(e.svc, Options{Limiter: auth.NewLimiter(auth.LimiterOptions{})}), e.a.creds(), body
}

// bare is the baseline: a net/http handler that reads the body and answers
// fixed JSON, as cmd/sessiond-load's T does.
var bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	fixed := []byte(`{"jsonrpc":"2.0","result":{"active":true},"id":1}`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(fixed)))
	w.Write(fixed)
})

// BenchmarkVerifyHandler calls ServeHTTP directly with a reused request
// and response writer: the handler's and the Service's own cost.
func BenchmarkVerifyHandler(b *testing.B) {
	h, creds, body := benchEnv(b)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/session/jsonrpc", nil)
	r.Header = creds
	rd := &httpxtest.Body{}
	r.Body = rd
	r.ContentLength = int64(len(body))
	w := httpxtest.NewWriter()
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		w.Reset()
		h.ServeHTTP(w, r)
	}
	if w.Status != http.StatusOK || !bytes.Equal(w.Body, []byte(`{"jsonrpc":"2.0","result":{"active":true},"id":1}`)) {
		b.Fatalf("got %d %s", w.Status, w.Body)
	}
}

// BenchmarkVerifyMiddleware is BenchmarkVerifyHandler behind the shared
// middleware, which gives each request a generated correlation id.
func BenchmarkVerifyMiddleware(b *testing.B) {
	h, creds, body := benchEnv(b)
	h = httpx.Middleware(slog.New(slog.DiscardHandler), h)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/session/jsonrpc", nil)
	r.Header = creds
	rd := &httpxtest.Body{}
	r.Body = rd
	r.ContentLength = int64(len(body))
	w := httpxtest.NewWriter()
	b.ReportAllocs()
	for b.Loop() {
		delete(r.Header, "X-Correlation-Id") // set by the middleware last time
		rd.Reset(body)
		w.Reset()
		h.ServeHTTP(w, r)
	}
	if w.Status != http.StatusOK || w.H.Get("X-Correlation-Id") == "" {
		b.Fatalf("got %d %s %v", w.Status, w.Body, w.H)
	}
}

// BenchmarkVerifyHTTP and BenchmarkBareHTTP measure throughput over
// loopback with keep-alive connections and parallel clients.
func BenchmarkVerifyHTTP(b *testing.B) {
	h, creds, body := benchEnv(b)
	benchHTTP(b, h, creds, body)
}

func BenchmarkBareHTTP(b *testing.B) {
	_, creds, body := benchEnv(b)
	benchHTTP(b, bare, creds, body)
}

func benchHTTP(b *testing.B, h http.Handler, creds http.Header, body []byte) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 512)
		for pb.Next() {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, bytes.NewReader(body))
			req.Header = creds.Clone()
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.ReadFull(resp.Body, buf)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(buf[:n], []byte(`"active":true`)) {
				b.Errorf("got %d %s", resp.StatusCode, buf[:n])
				return
			}
		}
	})
}
