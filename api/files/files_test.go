package files

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/clock"
	"sessiond/internal/gwerr"
	"sessiond/internal/httpx"
	"sessiond/sessiondir"
	"sessiond/store/memory"
)

// ---- fixtures ----

type env struct {
	t    *testing.T
	clk  *clock.Fake
	svc  *sessiond.Service
	dirs *sessiondir.Dirs
	h    http.Handler
	data string // the data directory: sessions live in data/sessions
}

func newEnv(t *testing.T, q sessiondir.Quota) *env {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{IdleTimeout: time.Hour}, nil)
	data := t.TempDir()
	dirs, err := sessiondir.NewDirs(filepath.Join(data, "sessions"), q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dirs.Close() })
	svc.OnEnd(dirs.Remove)
	// Something outside every session directory that must stay out of reach.
	if err := os.WriteFile(filepath.Join(data, "secret"), []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, clk: clk, svc: svc, dirs: dirs, h: New(svc, dirs, Options{}), data: data}
}

// open opens a session and returns its id and token.
func (e *env) open() (string, string) {
	e.t.Helper()
	s, token, err := e.svc.Open(context.Background(), sessiond.OpenRequest{UserID: "u"})
	if err != nil {
		e.t.Fatal(err)
	}
	return s.ID, token
}

func (e *env) sessionDir(id string) string { return filepath.Join(e.data, "sessions", id) }

// do sends a request straight to the handler, with the path as given
// (escapes and all).
func (e *env) do(method, path, token string, body io.Reader) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, "http://sessiond"+DefaultPrefix+path, body)
	req = req.WithContext(httpx.WithLogger(req.Context(), slog.New(slog.DiscardHandler)))
	if token != "" {
		req.Header.Set("Xdata-Session-Token", token)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// checkError checks a section 6 error answer.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, wantStatus, wantCode int, wantDataCode string) {
	t.Helper()
	if rec.Code != wantStatus {
		t.Fatalf("status: got %d, want %d (body %s)", rec.Code, wantStatus, rec.Body)
	}
	var got gwerr.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body)
	}
	if got.JSONRPC != "2.0" || got.Error.Code != wantCode || got.Error.Message == "" || got.Error.Data["code"] != wantDataCode {
		t.Errorf("error body: got %s, want code %d, data.code %q and a message", rec.Body, wantCode, wantDataCode)
	}
}

// tree returns every path under dir (relative, slash-separated), with
// file contents, so that tests can assert that nothing changed.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "-> " + target
		case d.Type().IsRegular():
			b, _ := os.ReadFile(p)
			out[filepath.ToSlash(rel)] = string(b)
		default:
			out[filepath.ToSlash(rel)] = "/"
		}
		return nil
	})
	return out
}

func sameTree(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func listing(t *testing.T, rec *httptest.ResponseRecorder) []Entry {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("list: got %d, want 200 (%s)", rec.Code, rec.Body)
	}
	var out []Entry
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("list body: %v: %s", err, rec.Body)
	}
	return out
}

func names(es []Entry) []string {
	var out []string
	for _, e := range es {
		n := e.Name
		if e.Dir {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

// ---- confinement ----

func TestEscapesAreRefused(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	_, token := e.open()
	otherID, _ := e.open()
	if _, err := e.dirs.Ensure(otherID); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.sessionDir(otherID), "theirs"), []byte("theirs"), 0o600)
	if rec := e.do("PUT", "mine", token, strings.NewReader("mine")); rec.Code != http.StatusCreated {
		t.Fatalf("PUT mine: got %d", rec.Code)
	}
	before := tree(t, e.data)

	// Malformed escapes ("%zz") never get this far: net/http refuses the
	// request line. TestCleanPath covers them.
	paths := []struct{ name, path string }{
		{"dot dot", "../secret"},
		{"dot dot twice", "../../secret"},
		{"dot dot inside", "a/../../secret"},
		{"dot dot to other session", "../" + otherID + "/theirs"},
		{"dot dot alone", ".."},
		{"trailing dot dot", "a/.."},
		{"encoded dots", "%2e%2e/secret"},
		{"encoded dots mixed case", "%2E%2e/secret"},
		{"half encoded dots", ".%2e/secret"},
		{"encoded dots and slash", "%2e%2e%2fsecret"},
		{"encoded slash", "a%2Fb"},
		{"encoded slash lowercase", "a%2fb"},
		{"encoded slash to other session", "..%2F" + otherID + "%2Ftheirs"},
		{"absolute", "/etc/passwd"},
		{"absolute encoded", "%2Fetc%2Fpasswd"},
		{"backslash", `..\secret`},
		{"encoded backslash", "..%5Csecret"},
		{"NUL", "mine%00.txt"},
		{"NUL alone", "%00"},
		{"control character", "a%0Ab"},
		{"dot", "./mine"},
		{"empty element", "a//b"},
		{"invalid UTF-8", "a%FFb"},
		{"reserved name", sessiondir.TempPrefix + "x"},
		{"too long element", strings.Repeat("a", 256)},
		{"too long path", strings.Repeat("abcdefghi/", 103)},
	}
	for _, p := range paths {
		for _, method := range []string{"GET", "HEAD", "PUT", "DELETE"} {
			t.Run(p.name+"/"+method, func(t *testing.T) {
				var body io.Reader
				if method == "PUT" {
					body = strings.NewReader("pwned")
				}
				rec := e.do(method, p.path, token, body)
				checkError(t, rec, http.StatusBadRequest, gwerr.CodeInvalidParams, sessiond.EINVALID)
				if strings.Contains(rec.Body.String(), "top secret") || strings.Contains(rec.Body.String(), "theirs\"") {
					t.Errorf("the answer leaks a file: %s", rec.Body)
				}
			})
		}
	}
	if after := tree(t, e.data); !sameTree(before, after) {
		t.Errorf("the data directory changed:\nbefore %v\n after %v", before, after)
	}
}

func TestSymlinksOutAreRefused(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	id, token := e.open()
	otherID, _ := e.open()
	dir, err := e.dirs.Ensure(id)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := e.dirs.Ensure(otherID)
	os.WriteFile(filepath.Join(other, "theirs"), []byte("theirs"), 0o600)
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("inside"), 0o600)
	// What a careless backend (or an attacker with a shell) might leave.
	for name, target := range map[string]string{
		"etc":       "/etc",
		"other-abs": other,
		"other-rel": "../" + otherID,
		"up":        "..",
		"secret":    "../../secret",
		"in":        "sub", // stays inside: allowed
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	before := tree(t, e.data)

	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "etc/passwd", 400},
		{"GET", "etc", 400},
		{"GET", "other-abs/theirs", 400},
		{"GET", "other-rel/theirs", 400},
		{"GET", "other-rel/", 400},
		{"GET", "up/secret", 400},
		{"GET", "secret", 400},
		{"PUT", "etc/x", 400},
		{"PUT", "other-abs/new", 400},
		{"PUT", "other-rel/theirs", 400},
		{"PUT", "other-rel/deep/new", 400},
		{"PUT", "up/" + otherID + "/new", 400},
		{"DELETE", "other-abs/theirs", 400},
		{"DELETE", "other-rel/theirs", 400},
		{"GET", "in/f", 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body io.Reader
			if tt.method == "PUT" {
				body = strings.NewReader("pwned")
			}
			rec := e.do(tt.method, tt.path, token, body)
			if tt.status != 200 {
				checkError(t, rec, tt.status, gwerr.CodeInvalidParams, sessiond.EINVALID)
				return
			}
			if rec.Code != 200 || rec.Body.String() != "inside" {
				t.Errorf("got %d %q, want 200 inside", rec.Code, rec.Body)
			}
		})
	}
	if after := tree(t, e.data); !sameTree(before, after) {
		t.Errorf("the data directory changed:\nbefore %v\n after %v", before, after)
	}
	// Deleting a link removes the link, never its target.
	if rec := e.do("DELETE", "other-abs", token, nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE link: got %d (%s)", rec.Code, rec.Body)
	}
	if b, err := os.ReadFile(filepath.Join(other, "theirs")); err != nil || string(b) != "theirs" {
		t.Errorf("the other session's file: got %q, %v", b, err)
	}
}

func TestOtherSessionsCannotSeeFiles(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	_, tokenA := e.open()
	_, tokenB := e.open()
	if rec := e.do("PUT", "dir/a.txt", tokenA, strings.NewReader("A's")); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: got %d", rec.Code)
	}
	checkError(t, e.do("GET", "dir/a.txt", tokenB, nil), 404, gwerr.CodeNotFound, sessiond.ENOTFOUND)
	checkError(t, e.do("DELETE", "dir/a.txt", tokenB, nil), 404, gwerr.CodeNotFound, sessiond.ENOTFOUND)
	if got := listing(t, e.do("GET", "", tokenB, nil)); len(got) != 0 {
		t.Errorf("B's listing: got %v, want empty", names(got))
	}
	if rec := e.do("GET", "dir/a.txt", tokenA, nil); rec.Body.String() != "A's" {
		t.Errorf("A's file: got %q", rec.Body)
	}
}

// ---- authentication ----

func TestAuthentication(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	ctx := context.Background()
	k, secret, err := e.svc.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	closedID, closedToken := e.open()
	e.svc.CloseSession(ctx, closedID, sessiond.ReasonClosed)
	_, token := e.open()
	e.do("PUT", "f", token, strings.NewReader("x"))

	tests := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"none", nil, 401},
		{"api key and secret only", map[string]string{"APIKey": k.ID, "Secret": secret}, 401},
		{"unknown token", map[string]string{"Xdata-Session-Token": "nope"}, 401},
		{"closed session's token", map[string]string{"Xdata-Session-Token": closedToken}, 401},
		{"token header", map[string]string{"Xdata-Session-Token": token}, 200},
		{"bearer", map[string]string{"Authorization": "Bearer " + token}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", DefaultPrefix+"f", nil)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if tt.status == 401 {
				checkError(t, rec, 401, gwerr.CodeUnauthenticated, sessiond.EUNAUTHORIZED)
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate header")
				}
				return
			}
			if rec.Code != tt.status {
				t.Errorf("status: got %d, want %d", rec.Code, tt.status)
			}
		})
	}
}

func TestAccessTouchesSession(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	id, token := e.open()
	e.clk.Add(50 * time.Minute)
	if rec := e.do("GET", "", token, nil); rec.Code != 200 {
		t.Fatalf("GET: got %d", rec.Code)
	}
	s, err := e.svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !s.RequestTime.Equal(e.clk.Now()) {
		t.Errorf("request_time: got %v, want %v", s.RequestTime, e.clk.Now())
	}
	// Still alive 50 minutes later, thanks to the touch (idle timeout 1h).
	e.clk.Add(50 * time.Minute)
	if rec := e.do("GET", "", token, nil); rec.Code != 200 {
		t.Errorf("GET after the touch: got %d, want 200", rec.Code)
	}
}

// ---- reading, writing, listing, deleting ----

func TestPutGetListDelete(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	id, token := e.open()

	rec := e.do("PUT", "results/run%201/out.csv", token, strings.NewReader("a,b\n1,2\n"))
	if rec.Code != http.StatusCreated {
		t.Fatalf("PUT new: got %d, want 201 (%s)", rec.Code, rec.Body)
	}
	var ent Entry
	json.Unmarshal(rec.Body.Bytes(), &ent)
	if ent.Name != "out.csv" || ent.Size != 8 || ent.Dir {
		t.Errorf("PUT answer: got %+v, want out.csv of 8 bytes", ent)
	}
	if got, want := rec.Header().Get("Location"), DefaultPrefix+"results/run%201/out.csv"; got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(e.sessionDir(id), "results", "run 1", "out.csv")); err != nil || string(b) != "a,b\n1,2\n" {
		t.Errorf("on disk: got %q, %v", b, err)
	}

	rec = e.do("PUT", "results/run%201/out.csv", token, strings.NewReader("replaced"))
	if rec.Code != http.StatusOK {
		t.Errorf("PUT existing: got %d, want 200", rec.Code)
	}
	rec = e.do("GET", "results/run%201/out.csv", token, nil)
	if rec.Code != 200 || rec.Body.String() != "replaced" {
		t.Errorf("GET: got %d %q, want 200 replaced", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type: got %q, want application/octet-stream", ct)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}

	req := httptest.NewRequest("GET", DefaultPrefix+"results/run%201/out.csv", nil)
	req.Header.Set("Xdata-Session-Token", token)
	req.Header.Set("Range", "bytes=2-4")
	rr := httptest.NewRecorder()
	e.h.ServeHTTP(rr, req)
	if rr.Code != http.StatusPartialContent || rr.Body.String() != "pla" {
		t.Errorf("range GET: got %d %q, want 206 pla", rr.Code, rr.Body)
	}

	e.do("PUT", "a.txt", token, strings.NewReader("aaa"))
	for _, p := range []string{"", "results", "results/"} {
		got := names(listing(t, e.do("GET", p, token, nil)))
		want := map[string][]string{"": {"a.txt", "results/"}, "results": {"run 1/"}, "results/": {"run 1/"}}[p]
		if !slices.Equal(got, want) {
			t.Errorf("list %q: got %v, want %v", p, got, want)
		}
	}
	// The bare prefix lists the root too.
	req = httptest.NewRequest("GET", strings.TrimSuffix(DefaultPrefix, "/"), nil)
	req.Header.Set("Xdata-Session-Token", token)
	rr = httptest.NewRecorder()
	e.h.ServeHTTP(rr, req)
	if got := names(listing(t, rr)); !slices.Equal(got, []string{"a.txt", "results/"}) {
		t.Errorf("list of the bare prefix: got %v", got)
	}
	entries := listing(t, e.do("GET", "", token, nil))
	if entries[0].Size != 3 || time.Time(entries[0].Modified).IsZero() {
		t.Errorf("entry: got %+v, want size 3 and a modification time", entries[0])
	}

	checkError(t, e.do("GET", "missing", token, nil), 404, gwerr.CodeNotFound, sessiond.ENOTFOUND)
	checkError(t, e.do("GET", "a.txt/x", token, nil), 404, gwerr.CodeNotFound, sessiond.ENOTFOUND)
	checkError(t, e.do("PUT", "results", token, strings.NewReader("x")), 409, gwerr.CodeConflict, sessiond.ECONFLICT)
	checkError(t, e.do("PUT", "a.txt/x", token, strings.NewReader("x")), 409, gwerr.CodeConflict, sessiond.ECONFLICT)
	checkError(t, e.do("PUT", "results/", token, strings.NewReader("x")), 400, gwerr.CodeInvalidParams, sessiond.EINVALID)
	checkError(t, e.do("PUT", "", token, strings.NewReader("x")), 400, gwerr.CodeInvalidParams, sessiond.EINVALID)
	checkError(t, e.do("DELETE", "results", token, nil), 409, gwerr.CodeConflict, sessiond.ECONFLICT)
	checkError(t, e.do("DELETE", "", token, nil), 400, gwerr.CodeInvalidParams, sessiond.EINVALID)
	checkError(t, e.do("DELETE", "missing", token, nil), 404, gwerr.CodeNotFound, sessiond.ENOTFOUND)

	for _, p := range []string{"results/run%201/out.csv", "results/run%201", "results/", "a.txt"} {
		if rec := e.do("DELETE", p, token, nil); rec.Code != http.StatusNoContent {
			t.Errorf("DELETE %s: got %d, want 204 (%s)", p, rec.Code, rec.Body)
		}
	}
	if got := listing(t, e.do("GET", "", token, nil)); len(got) != 0 {
		t.Errorf("after deleting everything: got %v", names(got))
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	_, token := e.open()
	for _, m := range []string{"POST", "PATCH", "OPTIONS", "MKCOL"} {
		t.Run(m, func(t *testing.T) {
			rec := e.do(m, "f", token, nil)
			checkError(t, rec, http.StatusMethodNotAllowed, gwerr.CodeMethodNotAllowed, gwerr.CodeMethodNotAllowedName)
			if rec.Header().Get("Allow") == "" {
				t.Error("no Allow header")
			}
		})
	}
}

func TestFIFOIsNotRead(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	id, token := e.open()
	dir, _ := e.dirs.Ensure(id)
	if err := mkfifo(filepath.Join(dir, "pipe")); err != nil {
		if runtime.GOOS == "linux" { // where CI runs: a FIFO must be possible
			t.Fatal("mkfifo:", err)
		}
		t.Skip("no FIFOs here:", err)
	}
	checkError(t, e.do("GET", "pipe", token, nil), 400, gwerr.CodeInvalidParams, sessiond.EINVALID)
}

// ---- quota ----

func TestQuotaBytes(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{MaxBytes: 1000, MaxFiles: 100})
	id, token := e.open()
	if rec := e.do("PUT", "first", token, bytes.NewReader(make([]byte, 600))); rec.Code != http.StatusCreated {
		t.Fatalf("PUT first: got %d (%s)", rec.Code, rec.Body)
	}
	before := tree(t, e.sessionDir(id))

	tests := []struct {
		name    string
		path    string
		size    int
		chunked bool // no Content-Length: refused while streaming
	}{
		{"announced", "second", 600, false},
		{"streamed", "second", 600, true},
		{"streamed into new directories", "new/deep/second", 600, true},
		{"announced beyond the whole quota", "big", 1001, false},
		{"streamed beyond the whole quota", "big", 64 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(make([]byte, tt.size))
			if tt.chunked {
				body = io.MultiReader(body)
			}
			req := httptest.NewRequest("PUT", DefaultPrefix+tt.path, body)
			if tt.chunked {
				req.ContentLength = -1
			}
			req.Header.Set("Xdata-Session-Token", token)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			checkError(t, rec, http.StatusRequestEntityTooLarge, gwerr.CodeTooLarge, sessiond.ETOOLARGE)
			if after := tree(t, e.sessionDir(id)); !sameTree(before, after) {
				t.Errorf("the session directory changed:\nbefore %v\n after %v", before, after)
			}
		})
	}

	// Replacing a file counts its new size, not both.
	if rec := e.do("PUT", "first", token, bytes.NewReader(make([]byte, 1000))); rec.Code != http.StatusOK {
		t.Errorf("replacing within the quota: got %d, want 200 (%s)", rec.Code, rec.Body)
	}
	// Deleting frees space.
	e.do("DELETE", "first", token, nil)
	if rec := e.do("PUT", "second", token, bytes.NewReader(make([]byte, 1000))); rec.Code != http.StatusCreated {
		t.Errorf("after deleting: got %d, want 201 (%s)", rec.Code, rec.Body)
	}
}

func TestQuotaFiles(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{MaxBytes: 1 << 20, MaxFiles: 3})
	id, token := e.open()
	put := func(p string) *httptest.ResponseRecorder { return e.do("PUT", p, token, strings.NewReader("x")) }
	for _, p := range []string{"a", "b"} {
		if rec := put(p); rec.Code != http.StatusCreated {
			t.Fatalf("PUT %s: got %d", p, rec.Code)
		}
	}
	before := tree(t, e.sessionDir(id))
	// A file in a new directory needs two entries; one is left.
	checkError(t, put("d/c"), 413, gwerr.CodeTooLarge, sessiond.ETOOLARGE)
	if after := tree(t, e.sessionDir(id)); !sameTree(before, after) {
		t.Errorf("the session directory changed:\nbefore %v\n after %v", before, after)
	}
	if rec := put("c"); rec.Code != http.StatusCreated {
		t.Fatalf("PUT c: got %d (%s)", rec.Code, rec.Body)
	}
	if rec := put("c"); rec.Code != http.StatusOK {
		t.Errorf("replacing c: got %d, want 200 (%s)", rec.Code, rec.Body)
	}
	checkError(t, put("e"), 413, gwerr.CodeTooLarge, sessiond.ETOOLARGE)
	// Files a backend wrote directly count too.
	e.do("DELETE", "c", token, nil)
	os.WriteFile(filepath.Join(e.sessionDir(id), "by-backend"), []byte("b"), 0o600)
	checkError(t, put("e"), 413, gwerr.CodeTooLarge, sessiond.ETOOLARGE)
}

// Two uploads in flight share the quota: the second cannot use what the
// first is still writing.
func TestQuotaConcurrentUploads(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{MaxBytes: 1000, MaxFiles: 100})
	id, token := e.open()
	pr, pw := io.Pipe()
	req := httptest.NewRequest("PUT", DefaultPrefix+"a", pr)
	req.ContentLength = -1
	req.Header.Set("Xdata-Session-Token", token)
	recA := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		e.h.ServeHTTP(recA, req)
		close(done)
	}()
	pw.Write(make([]byte, 600))
	// This write returns once the handler reads again, so the 600 bytes
	// above are already counted.
	pw.Write([]byte{1})

	checkError(t, e.do("PUT", "b", token, bytes.NewReader(make([]byte, 600))), 413, gwerr.CodeTooLarge, sessiond.ETOOLARGE)
	if rec := e.do("PUT", "c", token, bytes.NewReader(make([]byte, 399))); rec.Code != http.StatusCreated {
		t.Errorf("PUT within what is left: got %d (%s)", rec.Code, rec.Body)
	}
	pw.Close()
	<-done
	if recA.Code != http.StatusCreated {
		t.Fatalf("PUT a: got %d (%s)", recA.Code, recA.Body)
	}
	got := tree(t, e.sessionDir(id))
	if len(got) != 3 || len(got["a"]) != 601 || len(got["c"]) != 399 {
		t.Errorf("directory: got %d entries (a %d bytes, c %d bytes), want . a c", len(got), len(got["a"]), len(got["c"]))
	}
}

// An upload the client abandons leaves nothing behind.
func TestBrokenUploadLeavesNothing(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	id, token := e.open()
	e.dirs.Ensure(id)
	before := tree(t, e.sessionDir(id))
	req := httptest.NewRequest("PUT", DefaultPrefix+"x/y/z", io.MultiReader(strings.NewReader("partial"), errReader{}))
	req.ContentLength = -1
	req.Header.Set("Xdata-Session-Token", token)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	checkError(t, rec, 400, gwerr.CodeInvalidParams, sessiond.EINVALID)
	if after := tree(t, e.sessionDir(id)); !sameTree(before, after) {
		t.Errorf("the session directory changed:\nbefore %v\n after %v", before, after)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// Behind a ServeMux, as the daemon mounts it, no escape gets anything
// either: the mux may redirect a path it cleans, but never serves a file
// from outside.
func TestEscapesThroughServeMux(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	_, token := e.open()
	mux := http.NewServeMux()
	mux.Handle(DefaultPrefix, e.h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"../../secret", "%2e%2e/%2e%2e/secret", "..%2f..%2fsecret", "/../../secret", "a/../../../secret"} {
		t.Run(p, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.URL.Opaque = DefaultPrefix + p
			req.Header.Set("Xdata-Session-Token", token)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 300 || strings.Contains(string(b), "top secret") {
				t.Errorf("got %d %q, want a refusal or a redirect", resp.StatusCode, b)
			}
		})
	}
}

// A session's directory replaced by a symbolic link to another session's
// (both inside the root, which os.Root alone would follow) is not
// followed: the first session sees none of the second's files, and can
// write nothing into it.
func TestSessionDirReplacedByLinkIsRefused(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	idA, tokenA := e.open()
	idB, tokenB := e.open()
	if rec := e.do("PUT", "b.txt", tokenB, strings.NewReader("B's")); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: got %d", rec.Code)
	}
	if rec := e.do("GET", "", tokenA, nil); rec.Code != 200 {
		t.Fatalf("A's listing: got %d", rec.Code)
	}
	before := tree(t, e.sessionDir(idB))
	for _, target := range []string{idB, e.sessionDir(idB)} { // relative and absolute
		if err := os.RemoveAll(e.sessionDir(idA)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, e.sessionDir(idA)); err != nil {
			t.Fatal(err)
		}
		for _, rec := range []*httptest.ResponseRecorder{
			e.do("GET", "", tokenA, nil),
			e.do("GET", "b.txt", tokenA, nil),
			e.do("PUT", "a.txt", tokenA, strings.NewReader("A's")),
			e.do("DELETE", "b.txt", tokenA, nil),
		} {
			if rec.Code < 400 || strings.Contains(rec.Body.String(), "b.txt") || strings.Contains(rec.Body.String(), "B's") {
				t.Errorf("link to %s: got %d %s, want an error that shows nothing of B's", target, rec.Code, rec.Body)
			}
		}
		if after := tree(t, e.sessionDir(idB)); !sameTree(before, after) {
			t.Errorf("B's directory changed: %v, was %v", after, before)
		}
	}
}

// A directory larger than a listing's bound (here 2,500 entries a backend
// wrote, against the default bound of the quota's 1,000) is listed page by
// page: each answer at most the bound, sorted, with a Link to the next
// page while more follow, and every entry exactly once in all.
func TestListingIsBoundedAndPaged(t *testing.T) {
	e := newEnv(t, sessiondir.Quota{})
	id, token := e.open()
	e.do("GET", "", token, nil) // creates the directory
	var want []string
	for i := range 2500 {
		name := fmt.Sprintf("f%05d", (i*7919)%2500) // not in creation order
		if err := os.WriteFile(filepath.Join(e.sessionDir(id), name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	if err := os.WriteFile(filepath.Join(e.sessionDir(id), sessiondir.TempPrefix+"x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)

	var got []string
	next, pages := "", 0
	for {
		rec := e.do("GET", next, token, nil)
		page := names(listing(t, rec))
		pages++
		if len(page) > 1000 || !slices.IsSorted(page) {
			t.Fatalf("page %d: %d entries, sorted %v; want at most 1000, sorted", pages, len(page), slices.IsSorted(page))
		}
		got = append(got, page...)
		link := rec.Header().Get("Link")
		if link == "" {
			break
		}
		u, ok := strings.CutPrefix(link, "<"+DefaultPrefix)
		u, ok2 := strings.CutSuffix(u, `>; rel="next"`)
		if !ok || !ok2 || pages > 3 {
			t.Fatalf("page %d: Link %q", pages, link)
		}
		next = u
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("%d pages, %d entries (first %v); want 3 pages and every entry once", pages, len(got), got[:3])
	}
}
