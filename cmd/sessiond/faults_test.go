package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessiond/internal/testfs"
)

// Tests of SPEC 10's faults on the real daemon process: a full disk.

// answer is one HTTP answer.
type answer struct {
	status int
	body   []byte
}

// call sends a JSON request and reads the answer; the client's timeout
// bounds how long a call may take.
func call(t *testing.T, c *http.Client, method, url string, body any, header ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, b}
}

// pipError is the Pip.Services ErrorDescription of the commandable and
// REST APIs.
type pipError struct {
	Category, Code, Message string
	Status                  int
}

// checkPipUnavailable checks a 503 ErrorDescription saying the disk is
// full.
func checkPipUnavailable(t *testing.T, what string, a answer) {
	t.Helper()
	var e pipError
	if err := json.Unmarshal(a.body, &e); err != nil || a.status != http.StatusServiceUnavailable ||
		e.Status != http.StatusServiceUnavailable || e.Code != "SERVICE_UNAVAILABLE" || !strings.Contains(e.Message, "disk is full") {
		t.Errorf("%s on a full disk: %d %s, want a 503 ErrorDescription with code SERVICE_UNAVAILABLE saying the disk is full", what, a.status, a.body)
	}
}

// TestFullDisk runs sessiond on a small tmpfs and fills it: writes must
// be refused at once with a 503-class error in each API's dialect,
// readiness must fail, reads go on; once space is freed writes resume by
// themselves, and every acknowledged session is there after a restart.
// Then the disk is filled again and SIGTERM must still stop the daemon.
func TestFullDisk(t *testing.T) {
	dir := testfs.MountTmpfs(t, 64<<20)
	d := startDaemon(t, dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the daemon's log:\n%s", d.log())
		}
	})
	c := &http.Client{Timeout: 10 * time.Second}

	// An API key for the JSON-RPC API, while there is room.
	a := call(t, c, http.MethodPost, d.admin+"/v1/apikeys", map[string]any{"data": map[string]any{"type": "apikeys", "attributes": map[string]string{"name": "full"}}},
		"Authorization", "Basic "+basicAuth("admin", "test-password"), "Content-Type", "application/vnd.api+json")
	var key struct {
		Data struct {
			ID         string
			Attributes struct{ Secret string }
		}
	}
	if err := json.Unmarshal(a.body, &key); err != nil || a.status != http.StatusCreated {
		t.Fatalf("creating an API key: %d %s", a.status, a.body)
	}
	rpcAuth := []string{"APIKey", key.Data.ID, "Secret", key.Data.Attributes.Secret}

	ballast := testfs.FillDisk(t, dir, 6<<20)
	data := strings.Repeat("x", 60_000)
	var acked []string
	var token string // of the first session, for the files API
	var refused answer
	for i := 0; ; i++ {
		start := time.Now()
		a := call(t, c, http.MethodPost, d.public+"/v1/sessions/open_session", map[string]any{"user_id": "u", "data": data})
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("open_session %d took %v", i, el)
		}
		if a.status != http.StatusOK {
			refused = a
			break
		}
		var s wireSession
		if err := json.Unmarshal(a.body, &s); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, s.ID)
		if token == "" {
			var o struct {
				AccessToken string `json:"access_token"`
			}
			json.Unmarshal(a.body, &o)
			token = o.AccessToken
		}
		if i == 1000 {
			t.Fatal("1000 opens of 60 KB fit on a full disk")
		}
	}
	t.Logf("%d opens acknowledged before the disk filled", len(acked))
	if len(acked) == 0 {
		t.Fatal("no open fit before the disk filled")
	}
	checkPipUnavailable(t, "commandable open_session", refused)
	checkPipUnavailable(t, "REST store data", call(t, c, http.MethodPost, d.public+"/sessions/u?session_id="+acked[0], map[string]any{"data": 1}))
	a = call(t, c, http.MethodPost, d.public+"/api/v1/session/jsonrpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "session.open_session", "params": map[string]any{"user_id": "r"}}, rpcAuth...)
	var rpc struct {
		Error *struct {
			Code    int
			Message string
		}
	}
	if err := json.Unmarshal(a.body, &rpc); err != nil || a.status != http.StatusServiceUnavailable || rpc.Error == nil || rpc.Error.Code != -32005 || !strings.Contains(rpc.Error.Message, "disk is full") {
		t.Errorf("JSON-RPC open_session on a full disk: %d %s, want 503 with error -32005 saying the disk is full", a.status, a.body)
	}
	if a := call(t, c, http.MethodGet, d.admin+"/health/ready", nil); a.status != http.StatusServiceUnavailable {
		t.Errorf("/health/ready on a full disk: %d %s, want 503", a.status, a.body)
	}
	var s wireSession
	if code, err := command(context.Background(), c, d.public, "get_session_by_id", map[string]any{"session_id": acked[len(acked)-1]}, &s); err != nil || code != http.StatusOK || !s.Active {
		t.Errorf("get_session_by_id on a full disk: %d %v", code, err)
	}

	// Space returns: writes resume without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := call(t, c, http.MethodPost, d.public+"/v1/sessions/open_session", map[string]any{"user_id": "u", "data": "again"})
		if a.status == http.StatusOK {
			var s wireSession
			if err := json.Unmarshal(a.body, &s); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, s.ID)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume within 10s of space being freed: %d %s\n%s", a.status, a.body, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a := call(t, c, http.MethodGet, d.admin+"/health/ready", nil); a.status != http.StatusOK {
		t.Errorf("/health/ready after space was freed: %d %s, want 200", a.status, a.body)
	}

	// Full again, to the last byte: writes are refused within a megabyte
	// of log (the daemon checks the free space that often), and SIGTERM
	// stops the daemon within its drain time.
	testfs.FillDisk(t, dir, 0)
	for i := 0; ; i++ {
		a := call(t, c, http.MethodPost, d.public+"/v1/sessions/open_session", map[string]any{"user_id": "u", "data": data})
		if a.status == http.StatusServiceUnavailable {
			break
		}
		var s wireSession
		if err := json.Unmarshal(a.body, &s); a.status != http.StatusOK || err != nil {
			t.Fatalf("open_session on a full disk again: %d %s, want 200 or 503", a.status, a.body)
		}
		acked = append(acked, s.ID)
		if i == 40 {
			t.Fatal("40 opens of 60 KB acknowledged on a disk without a free byte")
		}
	}
	// The files API, on the same full disk (the store's ballast freed
	// above is filled too): the server's fault, 503.
	testfs.FillDisk(t, dir, 0)
	a = call(t, c, http.MethodPut, d.public+"/api/v1/session/files/big.bin", data, "Xdata-Session-Token", token)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), `"code":"unavailable"`) {
		t.Errorf("files PUT on a full disk: %d %s, want 503 unavailable", a.status, a.body)
	}
	// The files call touched its session: that request time cannot be
	// written at the stop, which says so and exits 1.
	sigterm(t, d, 30*time.Second, "flushing pending writes")

	// Every acknowledged session is there after a restart (with room).
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	d2 := startDaemon(t, dir)
	for i, id := range acked {
		if code, err := command(context.Background(), c, d2.public, "get_session_by_id", map[string]any{"session_id": id}, nil); err != nil || code != http.StatusOK {
			t.Errorf("acknowledged session %d of %d, %s, after the restart: %d %v", i, len(acked), id, code, err)
		}
	}
	sigterm(t, d2, 30*time.Second, "")
}

// sigterm sends SIGTERM and waits at most limit for the daemon to exit.
// sigterm stops d and expects it to exit within limit: with status 0, or,
// when failedStep is not empty, with status 1 after logging that step's
// failure.
func sigterm(t *testing.T, d *child, limit time.Duration, failedStep string) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		var ee *exec.ExitError
		switch {
		case failedStep != "" && errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(d.log(), failedStep):
		case err != nil:
			t.Errorf("exit after SIGTERM: %v\n%s", err, d.log())
		case failedStep != "":
			t.Errorf("exit 0 after SIGTERM, want 1 with %q logged\n%s", failedStep, d.log())
		}
	case <-time.After(limit):
		t.Fatalf("sessiond did not stop within %v of SIGTERM\n%s", limit, d.log())
	}
}

func basicAuth(user, pw string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pw))
}

// Tests of damaged data at start (SPEC 10: never dropped silently).

// runDaemonToExit starts `sessiond serve` on dataDir and expects it to exit
// (within a minute) without listening; it returns the exit error and the
// stderr.
func runDaemonToExit(t *testing.T, dataDir string) (error, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "SESSIOND_TEST_DAEMON=1", "SESSIOND_ADMIN_PASSWORD=test-password")
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err, stderr.String()
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("sessiond on damaged data did not exit:\n%s", stderr.String())
	}
	return nil, ""
}

// openSessions opens n sessions through the commandable API, the last
// with lastData bytes of data, and returns their ids.
func openSessions(t *testing.T, d *child, n, lastData int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		data := "d"
		if i == n-1 {
			data = strings.Repeat("x", lastData)
		}
		var s wireSession
		if code, err := command(context.Background(), http.DefaultClient, d.public, "open_session", map[string]any{"user_id": "u", "data": data}, &s); err != nil || code != http.StatusOK {
			t.Fatalf("open %d: %d %v", i, code, err)
		}
		ids = append(ids, s.ID)
	}
	return ids
}

// newestLog returns the path of the newest log of the store in dataDir
// and where its records end (the log is zeros after them).
func newestLog(t *testing.T, dataDir string) (string, int) {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dataDir, "store", "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no log in %s: %v", dataDir, err)
	}
	slices.Sort(logs) // the numbers have a fixed width
	log := logs[len(logs)-1]
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return log, end
}

func patchFile(t *testing.T, name string, off int, fn func([]byte)) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	fn(b[off:])
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkRefusal checks that sessiond exited with an error that says what
// is damaged, without a stack trace.
func checkRefusal(t *testing.T, err error, stderr string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("sessiond started on damaged data:\n%s", stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("the refusal does not say %q:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("a stack trace on damaged data:\n%s", stderr)
	}
}

// TestDamagedLogRefusedAtStart kills sessiond after acknowledged opens,
// flips one byte near the end of the newest log, and restarts it: it must
// refuse to start, naming the log, the offset and the sessions it would
// have lost, rather than start without them.
func TestDamagedLogRefusedAtStart(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	ids := openSessions(t, d, 30, 1000)
	d.kill(t)
	log, end := newestLog(t, dataDir)
	patchFile(t, log, end-1500, func(b []byte) { b[0] ^= 0xff }) // in the record of the next-to-last open
	err, stderr := runDaemonToExit(t, dataDir)
	checkRefusal(t, err, stderr, filepath.Base(log), "is damaged at offset", ids[len(ids)-1], "truncate -s")
}

// TestTornLogTailStarts kills sessiond after acknowledged opens and cuts
// the last record of the newest log at a page boundary, as a crash in the
// middle of its write leaves it (it was never acknowledged: its sync never
// returned): sessiond starts, with every other session.
func TestTornLogTailStarts(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	ids := openSessions(t, d, 10, 10_000)
	d.kill(t)
	log, end := newestLog(t, dataDir)
	cut := (end-9000)/4096*4096 + 4096 // inside the last record, of 10 KB
	patchFile(t, log, cut, func(b []byte) { clear(b[:end-cut]) })
	d2 := startDaemon(t, dataDir)
	for i, id := range ids {
		code, err := command(context.Background(), http.DefaultClient, d2.public, "get_session_by_id", map[string]any{"session_id": id}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i < len(ids)-1 && code != http.StatusOK {
			t.Errorf("session %d after a torn tail: %d", i, code)
		}
		if i == len(ids)-1 && code == http.StatusOK {
			t.Errorf("the torn session is there")
		}
	}
}

// TestDamagedTableRefusedAtStart stops sessiond (which flushes its
// sessions to a table), flips a byte in the table and restarts it: it
// must refuse to start with a message naming the file, not a stack trace.
func TestDamagedTableRefusedAtStart(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	openSessions(t, d, 200, 1000)
	sigterm(t, d, 30*time.Second, "")
	tables, err := filepath.Glob(filepath.Join(dataDir, "store", "*.sst"))
	if err != nil || len(tables) == 0 {
		t.Fatalf("no table after a clean stop: %v", err)
	}
	st, err := os.Stat(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	patchFile(t, tables[0], int(st.Size()/3), func(b []byte) { b[0] ^= 0xff })
	err, stderr := runDaemonToExit(t, dataDir)
	checkRefusal(t, err, stderr, filepath.Base(tables[0])+" fails its checksums", "backup")
}

// A second daemon on a data directory in use refuses to start, with a
// message naming the directory, and the first goes on serving.
func TestSecondDaemonOnOneDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	first := startDaemon(t, dir)
	err, stderr := runDaemonToExit(t, dir)
	if err == nil {
		t.Fatal("a second sessiond on the same data directory started")
	}
	checkRefusal(t, err, stderr, "in use by another process", dir)
	c := &http.Client{Timeout: 5 * time.Second}
	if a := call(t, c, http.MethodGet, first.admin+"/health/ready", nil); a.status != http.StatusOK {
		t.Errorf("the first daemon after the refusal: %d %s", a.status, a.body)
	}
}
