package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the real daemon: when
// SESSIOND_TEST_DAEMON is set it runs `sessiond <args>` and exits, so the
// process tests below can start, kill and restart sessiond as a child.
func TestMain(m *testing.M) {
	if os.Getenv("SESSIOND_TEST_DAEMON") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
		stop()
		os.Exit(code)
	}
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the sessiond binary that builtSessiond builds once per run.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

// builtSessiond builds sessiond as users build it (no race detector, which
// the test binary carries and which slows a process several times), once,
// for tests that measure the real process.
func builtSessiond(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "sessiond-bin-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "sessiond")
		out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// daemon is sessiond running as a child process.
type child struct {
	cmd    *exec.Cmd
	public string // base URL of the public listener
	admin  string // base URL of the admin listener
	exited chan error
	stderr *bytes.Buffer
	mu     sync.Mutex
}

// startDaemon runs `sessiond serve` on dataDir with ephemeral ports and
// waits until it listens.
func startDaemon(t *testing.T, dataDir string, extra ...string) *child {
	t.Helper()
	return startBinary(t, os.Args[0], dataDir, extra...)
}

// startBinary is startDaemon with the sessiond binary bin: the test
// binary itself (which acts as sessiond) or a built one (builtSessiond).
func startBinary(t *testing.T, bin, dataDir string, extra ...string) *child {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SESSIOND_TEST_DAEMON=1", "SESSIOND_ADMIN_PASSWORD=test-password")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &child{cmd: cmd, exited: make(chan error, 1), stderr: new(bytes.Buffer)}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			d.mu.Lock()
			d.stderr.Write(line)
			d.stderr.WriteByte('\n')
			d.mu.Unlock()
			var rec struct{ Msg, Public, Admin string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "sessiond listening" {
				ready <- [2]string{rec.Public, rec.Admin}
			}
		}
	}()
	go func() { d.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.exited
		}
	})
	select {
	case addrs := <-ready:
		d.public, d.admin = "http://"+addrs[0], "http://"+addrs[1]
	case err := <-d.exited:
		t.Fatalf("sessiond exited before listening: %v\n%s", err, d.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("sessiond did not start listening\n%s", d.log())
	}
	return d
}

func (d *child) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// kill sends SIGKILL: no handler runs, nothing is flushed.
func (d *child) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
}

// command calls a commandable API command and decodes a 200 answer into out.
func command(ctx context.Context, c *http.Client, base, name string, params any, out any) (int, error) {
	body, _ := json.Marshal(params)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sessions/"+name, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

type wireSession struct {
	ID     string          `json:"id"`
	Active bool            `json:"active"`
	Data   json.RawMessage `json:"data"`
}

// record is what the load acknowledged for one session.
type record struct {
	acked          int  // highest data version acknowledged
	attempted      int  // highest data version sent (acknowledged or not)
	closeAttempted bool // close sent (acknowledged or not)
	closed         bool // close acknowledged
}

// TestKill9KeepsAcknowledgedWrites runs sessiond as a child process, puts it
// under concurrent load (open, store, close), kills it with SIGKILL in the
// middle, restarts it on the same data directory and checks that every
// acknowledged write is there.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)

	var (
		mu      sync.Mutex
		records = map[string]*record{}
		acks    int
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var s wireSession
				code, err := command(ctx, client, d.public, "open_session", map[string]any{"user_id": "u", "data": map[string]int{"v": 0}}, &s)
				if err != nil || code != http.StatusOK {
					return
				}
				mu.Lock()
				rec := &record{}
				records[s.ID] = rec
				acks++
				mu.Unlock()
				for v := 1; v <= 5 && ctx.Err() == nil; v++ {
					mu.Lock()
					rec.attempted = v
					mu.Unlock()
					code, err := command(ctx, client, d.public, "store_session_data", map[string]any{"session_id": s.ID, "data": map[string]int{"v": v}}, nil)
					if err != nil || code != http.StatusOK {
						return
					}
					mu.Lock()
					rec.acked = v
					acks++
					mu.Unlock()
				}
				mu.Lock()
				rec.closeAttempted = true
				mu.Unlock()
				if code, err := command(ctx, client, d.public, "close_session", map[string]any{"session_id": s.ID}, nil); err == nil && code == http.StatusOK {
					mu.Lock()
					rec.closed = true
					acks++
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number of writes has been acknowledged, while the
	// workers are still writing.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := acks
		mu.Unlock()
		if n >= 10000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.kill(t)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if acks < 500 {
		t.Fatalf("only %d writes acknowledged before the kill; the load did not run", acks)
	}
	t.Logf("%d writes acknowledged on %d sessions before SIGKILL", acks, len(records))

	d2 := startDaemon(t, dataDir)
	check := context.Background()
	for id, rec := range records {
		var s wireSession
		code, err := command(check, client, d2.public, "get_session_by_id", map[string]any{"session_id": id}, &s)
		if err != nil || code != http.StatusOK {
			t.Fatalf("session %s: acknowledged open lost after SIGKILL (status %d, err %v)", id, code, err)
		}
		if rec.closed {
			if s.Active {
				t.Errorf("session %s: acknowledged close lost: still active", id)
			}
			continue
		}
		if !s.Active {
			// A close may have been applied without its answer arriving
			// before the kill; closing clears the data.
			if !rec.closeAttempted {
				t.Errorf("session %s: closed, but no close was sent", id)
			}
			continue
		}
		var data struct{ V int }
		if err := json.Unmarshal(s.Data, &data); err != nil {
			t.Fatalf("session %s: data %s: %v", id, s.Data, err)
		}
		if data.V < rec.acked || data.V > rec.attempted {
			t.Errorf("session %s: data version %d, want between acknowledged %d and attempted %d", id, data.V, rec.acked, rec.attempted)
		}
	}
}

// TestSIGTERMStopsGracefully checks that SIGTERM drains and exits 0, and
// that what was written is there after a restart.
func TestSIGTERMStopsGracefully(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	ctx := context.Background()
	var s wireSession
	if code, err := command(ctx, http.DefaultClient, d.public, "open_session", map[string]any{"user_id": "u1", "data": "kept"}, &s); err != nil || code != 200 {
		t.Fatalf("open: %d %v", code, err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, d.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sessiond did not stop after SIGTERM")
	}
	if !strings.Contains(d.log(), `"msg":"stopped"`) {
		t.Errorf("no 'stopped' log line:\n%s", d.log())
	}
	d2 := startDaemon(t, dataDir)
	var got wireSession
	if code, err := command(ctx, http.DefaultClient, d2.public, "get_session_by_id", map[string]any{"session_id": s.ID}, &got); err != nil || code != 200 {
		t.Fatalf("get after restart: %d %v", code, err)
	}
	if string(got.Data) != `"kept"` || !got.Active {
		t.Fatalf("after restart got %+v, want active with data \"kept\"", got)
	}
}
