package httpx

import (
	"net/http"
)

// StreamChunk is how many bytes a Stream gathers before it writes them out.
const StreamChunk = 32 << 10

// Stream writes one JSON answer in pieces, so that a long list never sits
// whole in memory: what is appended goes out to the client whenever it
// passes StreamChunk bytes. An answer that stays below that is written at
// Close in one piece, with a Content-Length, exactly as WriteJSON would.
// Its buffer comes from WriteJSON's pool and goes back only if it stayed
// within maxPooledBuffer, so a large element never stays pooled.
type Stream struct {
	w           http.ResponseWriter
	status      int
	contentType string
	bp          *[]byte
	b           []byte
	started     bool
	err         error
}

// NewStream starts an answer with the given status and content type
// (application/json when empty). The caller must call Close.
func NewStream(w http.ResponseWriter, status int, contentType string) *Stream {
	if contentType == "" {
		contentType = "application/json"
	}
	bp := appendPool.Get().(*[]byte)
	return &Stream{w: w, status: status, contentType: contentType, bp: bp, b: (*bp)[:0]}
}

// Append appends to the answer what fn appends to its argument, and
// writes the answer so far out once it passes StreamChunk bytes.
func (s *Stream) Append(fn func(b []byte) []byte) {
	if s.err != nil {
		return
	}
	s.b = fn(s.b)
	if len(s.b) >= StreamChunk {
		s.flush()
	}
}

// Started reports whether some of the answer has gone out: from then on
// its status can no longer change, and a failure can only abort it.
func (s *Stream) Started() bool { return s.started }

func (s *Stream) flush() {
	if !s.started {
		s.started = true
		h := s.w.Header()
		h["Content-Type"] = []string{s.contentType}
		s.w.WriteHeader(s.status)
	}
	if _, err := s.w.Write(s.b); err != nil {
		s.err = err
	}
	s.b = s.b[:0]
}

// Close writes what is left and returns the buffer. It returns the first
// write error (the client went away).
func (s *Stream) Close() error {
	if s.err == nil {
		if s.started {
			s.flush()
		} else {
			WriteRaw(s.w, s.status, s.contentType, s.b)
		}
	}
	s.release()
	return s.err
}

// Abort gives up an answer that failed midway: if nothing went out, the
// caller can still answer with an error; otherwise the connection is cut
// (http.ErrAbortHandler), so that the client never takes a truncated
// list for a whole one.
func (s *Stream) Abort() {
	started := s.started
	s.release()
	if started {
		panic(http.ErrAbortHandler)
	}
}

func (s *Stream) release() {
	if s.bp == nil {
		return
	}
	if cap(s.b) <= maxPooledBuffer {
		*s.bp = s.b[:0]
	}
	appendPool.Put(s.bp)
	s.bp, s.b = nil, nil
}
