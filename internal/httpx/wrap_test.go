package httpx

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRedactQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a=1&b=2", "a=1&b=2"},
		{"token=abc&page=2", "token=REDACTED&page=2"},
		{"access_token=abc", "access_token=REDACTED"},
		{"Secret=s&APIKey=k&password=p&sig=x", "Secret=REDACTED&APIKey=REDACTED&password=REDACTED&sig=REDACTED"},
		{"%74oken=abc", "%74oken=REDACTED"}, // escaped name
		{"token", "token"},                  // no value to hide
		{"correlation_id=c1&x=", "correlation_id=c1&x="},
	}
	for _, tt := range tests {
		if got := RedactQuery(tt.in); got != tt.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// observed is what an Observe hook was told.
type observed struct {
	api    string
	status int
	n      int
}

func observing(o *observed) Options {
	return Options{API: func(*http.Request) string { return "rest" },
		Observe: func(api string, status int, _ time.Duration) { o.api, o.status = api, status; o.n++ }}
}

// Wrap tells Observe the status the client got, whatever way the handler
// answered: nothing written (200), WriteHeader, a panic (500), an abort.
func TestWrapObservesTheStatus(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    int
	}{
		{"nothing written", func(http.ResponseWriter, *http.Request) {}, 200},
		{"write only", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "x") }, 200},
		{"status", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404); w.WriteHeader(500) }, 404},
		{"informational first", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(103); w.WriteHeader(204) }, 204},
		{"read from", func(w http.ResponseWriter, _ *http.Request) { io.Copy(w, strings.NewReader("body")) }, 200},
		{"panic", func(http.ResponseWriter, *http.Request) { panic("boom") }, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o observed
			h := Wrap(tt.handler, observing(&o))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/sessions/u", nil))
			// (The recorder keeps the first status written, even 103.)
			if o.n != 1 || o.api != "rest" || o.status != tt.want || (w.Code != tt.want && w.Code != 103) {
				t.Errorf("observed %+v, client got %d; want one request of rest, %d", o, w.Code, tt.want)
			}
		})
	}
	t.Run("abort", func(t *testing.T) {
		var o observed
		h := Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			panic(http.ErrAbortHandler)
		}), observing(&o))
		func() {
			defer func() {
				if v := recover(); v != http.ErrAbortHandler {
					t.Errorf("recovered %v, want http.ErrAbortHandler passed on", v)
				}
			}()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		}()
		if o.n != 1 || o.status != 200 {
			t.Errorf("an aborted request was observed %+v, want once with 200", o)
		}
	})
}

// A Wrap inside another passes requests through: one observation, one
// log line, one correlation id.
func TestWrapNested(t *testing.T) {
	var o, inner observed
	var buf bytes.Buffer
	on := new(atomic.Bool)
	on.Store(true)
	log := slog.New(slog.NewTextHandler(&buf, nil))
	in := Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(202) }), Options{Log: log, AccessLog: on,
		Observe: func(string, int, time.Duration) { inner.n++ }})
	opts := observing(&o)
	opts.Log, opts.AccessLog = log, on
	w := httptest.NewRecorder()
	Wrap(in, opts).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if o.n != 1 || o.status != 202 || inner.n != 0 {
		t.Errorf("outer observed %+v, inner %d times; want the outer once", o, inner.n)
	}
	if n := strings.Count(buf.String(), "msg=request"); n != 1 {
		t.Errorf("%d access log lines, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "correlation_id="+w.Header().Get(CorrelationHeader)) {
		t.Errorf("the line does not carry the response's correlation id %q:\n%s", w.Header().Get(CorrelationHeader), buf.String())
	}
}
