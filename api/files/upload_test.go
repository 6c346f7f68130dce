package files

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/gwerr"
	"sessiond/sessiondir"
)

// rawPut sends a PUT over a real socket: the headers, then (unless
// waitFirst) the whole body, and only then reads the answer, as simple
// clients do. With waitFirst it reads the answer right after the headers,
// as a client waiting for 100 Continue does.
func rawPut(t *testing.T, srvURL, path, token string, hdr []string, body io.Reader, waitFirst bool) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	head := "PUT " + DefaultPrefix + path + " HTTP/1.1\r\nHost: sessiond\r\nXdata-Session-Token: " + token + "\r\n" +
		strings.Join(hdr, "\r\n") + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if !waitFirst {
		if _, err := io.Copy(conn, body); err != nil {
			t.Fatalf("sending the body: %v", err)
		}
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, string(b)
}

// chunked encodes n bytes as a chunked body, in 32 KiB chunks.
func chunked(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		chunk := strings.Repeat("x", 32<<10)
		bw := bufio.NewWriter(pw)
		for sent := 0; sent < n; sent += len(chunk) {
			fmt.Fprintf(bw, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		io.WriteString(bw, "0\r\n\r\n")
		bw.Flush()
		pw.Close()
	}()
	return pr
}

// A PUT refused for its size answers a 413 the client can read, however
// it sends its body: announced and never sent (Expect: 100-continue),
// announced and sent anyway, or chunked and cut off by the quota.
func TestOverQuotaUploadGetsA413(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{MaxBytes: 1000})
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	_, token := e.open()
	if rec := e.do("PUT", "half", token, strings.NewReader(strings.Repeat("h", 600))); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: got %d", rec.Code)
	}
	const big = 32 << 20
	tests := []struct {
		name      string
		hdr       []string
		body      io.Reader
		waitFirst bool
	}{
		{"expect 100-continue, over the quota", []string{fmt.Sprintf("Content-Length: %d", big), "Expect: 100-continue"}, nil, true},
		{"expect 100-continue, over what is left", []string{"Content-Length: 500", "Expect: 100-continue"}, nil, true},
		{"expect 100-continue, body sent anyway", []string{fmt.Sprintf("Content-Length: %d", big), "Expect: 100-continue"},
			io.LimitReader(zeros{}, big), false},
		{"content-length, body sent", []string{fmt.Sprintf("Content-Length: %d", big)}, io.LimitReader(zeros{}, big), false},
		{"chunked", []string{"Transfer-Encoding: chunked"}, chunked(big), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawPut(t, srv.URL, "big", token, tt.hdr, tt.body, tt.waitFirst)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"too_large"`) {
				t.Fatalf("got %d %s, want 413 too_large", resp.StatusCode, body)
			}
		})
	}
	checkError(t, e.do("GET", "big", token, nil), 404, gwerr.CodeNotFound, sessiond.ENOTFOUND)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
