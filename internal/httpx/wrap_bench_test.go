package httpx

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWrap measures what the middleware adds to a request: bare, with
// an Observe hook (as the daemon's metrics), and with the access log on
// (a text handler; its writes go nowhere, so a real log's write costs
// more).
func BenchmarkWrap(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	on := new(atomic.Bool)
	on.Store(true)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"bare", Options{}},
		{"observe", Options{API: func(*http.Request) string { return "jsonrpc" }, Observe: func(string, int, time.Duration) {}}},
		{"accesslog", Options{API: func(*http.Request) string { return "jsonrpc" }, Observe: func(string, int, time.Duration) {},
			AccessLog: on, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}},
	} {
		b.Run(c.name, func(b *testing.B) {
			wrapped := Wrap(h, c.opts)
			r := httptest.NewRequest("POST", "/api/v1/session/jsonrpc", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				wrapped.ServeHTTP(w, r)
			}
		})
	}
}
