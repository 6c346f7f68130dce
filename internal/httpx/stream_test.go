package httpx

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// largestWrite records the largest single Write an answer was given in.
type largestWrite struct {
	*httptest.ResponseRecorder
	max int
}

func (w *largestWrite) Write(b []byte) (int, error) {
	w.max = max(w.max, len(b))
	return w.ResponseRecorder.Write(b)
}

func TestStreamWritesInChunksAndPoolsNoLargeBuffer(t *testing.T) {
	w := &largestWrite{ResponseRecorder: httptest.NewRecorder()}
	s := NewStream(w, 200, "")
	big := strings.Repeat("x", 1<<20)
	s.Append(func(b []byte) []byte { return append(b, '[') })
	for i := range 20 {
		s.Append(func(b []byte) []byte {
			if i > 0 {
				b = append(b, ',')
			}
			return append(b, `"`+big[:50<<10]+`"`...)
		})
	}
	s.Append(func(b []byte) []byte { return append(b, `,"`+big+`"]`...) }) // one huge element
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var v []string
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || len(v) != 21 {
		t.Fatalf("answer does not decode to 21 strings: %v", err)
	}
	if w.max > StreamChunk+(1<<20)+100 {
		t.Errorf("largest write %d bytes", w.max)
	}
	if w.Header().Get("Content-Length") != "" {
		t.Errorf("a streamed answer has a Content-Length")
	}
	// The 1 MiB buffer the huge element needed is not pooled.
	for range 10 {
		bp := appendPool.Get().(*[]byte)
		if c := cap(*bp); c > maxPooledBuffer {
			t.Fatalf("pooled buffer of %d bytes", c)
		}
	}

	// A small answer goes out whole, with its length.
	w2 := httptest.NewRecorder()
	s = NewStream(w2, 201, "application/x")
	s.Append(func(b []byte) []byte { return append(b, `[]`...) })
	s.Close()
	if w2.Code != 201 || w2.Body.String() != "[]" || w2.Header().Get("Content-Length") != "2" || w2.Header().Get("Content-Type") != "application/x" {
		t.Errorf("small answer: %d %q %v", w2.Code, w2.Body, w2.Header())
	}
}
