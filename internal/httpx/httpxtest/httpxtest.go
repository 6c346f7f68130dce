// Package httpxtest holds helpers that tests of several HTTP edges share.
package httpxtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// DecodeAs checks a recorded response's status and JSON content type and
// decodes its body.
func DecodeAs[T any](t testing.TB, w *httptest.ResponseRecorder, status int) T {
	t.Helper()
	var v T
	if got, want := w.Code, status; got != want {
		t.Fatalf("status = %d, want %d; body %s", got, want, w.Body)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		t.Fatalf("Content-Type = %q, want %q", got, want)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", w.Body, err)
	}
	return v
}

// LogBuffer collects what a logger writes, safe for the concurrent writes
// of a running server and the test's reads.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Body is a request body that a benchmark rewinds (Seek or Reset) to serve
// one request again and again without allocating.
type Body struct{ bytes.Reader }

func (*Body) Close() error { return nil }

// Writer is a ResponseWriter for benchmarks that call a handler directly:
// it keeps the header, the status and the body, and Reset readies it for
// the next request without allocating.
type Writer struct {
	H      http.Header
	Status int
	Body   []byte
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer { return &Writer{H: http.Header{}} }

func (w *Writer) Header() http.Header { return w.H }
func (w *Writer) WriteHeader(s int)   { w.Status = s }
func (w *Writer) Write(p []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	w.Body = append(w.Body, p...)
	return len(p), nil
}

// Reset clears the header, the status and the body.
func (w *Writer) Reset() {
	clear(w.H)
	w.Status, w.Body = 0, w.Body[:0]
}
