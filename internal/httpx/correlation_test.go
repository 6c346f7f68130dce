package httpx

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Every request behind Middleware has a correlation id: the client's when
// it is valid, else a generated one; the handler sees it through
// CorrelationID and the response carries it in X-Correlation-Id.
func TestMiddlewareCorrelationID(t *testing.T) {
	tests := []struct {
		name   string
		target string
		header map[string]string
		want   string // "" : a generated id
	}{
		{name: "none", target: "/"},
		{name: "header kept", target: "/", header: map[string]string{"X-Correlation-Id": "abc-123"}, want: "abc-123"},
		{name: "pip.services header kept", target: "/", header: map[string]string{"correlation_id": "pip-1"}, want: "pip-1"},
		{name: "query kept", target: "/?correlation_id=q-1", header: map[string]string{"X-Correlation-Id": "h-1"}, want: "q-1"},
		{name: "longest kept", target: "/", header: map[string]string{"X-Correlation-Id": strings.Repeat("x", MaxCorrelationID)}, want: strings.Repeat("x", MaxCorrelationID)},
		{name: "too long replaced", target: "/", header: map[string]string{"X-Correlation-Id": strings.Repeat("x", MaxCorrelationID+1)}},
		{name: "45 KB replaced", target: "/", header: map[string]string{"X-Correlation-Id": strings.Repeat("x", 45<<10)}},
		{name: "space kept", target: "/", header: map[string]string{"X-Correlation-Id": "pip cid&1"}, want: "pip cid&1"},
		{name: "tab replaced", target: "/", header: map[string]string{"X-Correlation-Id": "a\tb"}},
		{name: "control character replaced", target: "/", header: map[string]string{"X-Correlation-Id": "a\x7fb"}},
		{name: "non-ASCII replaced", target: "/", header: map[string]string{"X-Correlation-Id": "\u00e9t\u00e9"}},
		{name: "bad query, good header", target: "/?correlation_id=a%0Ab", header: map[string]string{"X-Correlation-Id": "h-2"}, want: "h-2"},
		{name: "bad query only", target: "/?correlation_id=a%0Ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := Middleware(slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = CorrelationID(r)
				w.WriteHeader(http.StatusTeapot)
			}))
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			got := w.Header().Values("X-Correlation-Id")
			if len(got) != 1 {
				t.Fatalf("X-Correlation-Id = %q, want one value", got)
			}
			if tt.want != "" && got[0] != tt.want {
				t.Errorf("X-Correlation-Id = %q, want %q", got[0], tt.want)
			}
			if tt.want == "" && !generatedID.MatchString(got[0]) {
				t.Errorf("X-Correlation-Id = %q, want 16 generated hex digits", got[0])
			}
			if seen != got[0] {
				t.Errorf("CorrelationID in the handler = %q, want the answered %q", seen, got[0])
			}
		})
	}
}

func TestMiddlewareCorrelationIDsDiffer(t *testing.T) {
	h := Middleware(slog.New(slog.DiscardHandler), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	seen := map[string]bool{}
	for range 1000 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		id := w.Header().Get("X-Correlation-Id")
		if seen[id] {
			t.Fatalf("correlation id %q generated twice in 1000 requests", id)
		}
		seen[id] = true
	}
}
