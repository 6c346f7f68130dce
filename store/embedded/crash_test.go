package embedded

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sessiond"
)

// crashChildEnv, when set to a directory, turns TestCrashDurability into
// the child that writes there until it is killed.
const crashChildEnv = "SESSIOND_EMBEDDED_CRASH_CHILD"

// TestCrashDurability runs a child process that writes concurrently and
// reports every acknowledged write on stdout, kills it with SIGKILL in the
// middle of its work, reopens the file and checks that every acknowledged
// write is there and the file is consistent.
//
// A killed process leaves the kernel's page cache behind, so this proves
// that acknowledged writes were handed to the file and that a commit cut
// at any point leaves a consistent file; that they also survive a power
// cut rests on the fsync before each acknowledgement.
func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		created []string
		counter int
		killed  bool
	)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		kind, val, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "created":
			created = append(created, val)
		case "counter":
			n, err := strconv.Atoi(val)
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			counter = max(counter, n)
		default:
			continue // test framework output
		}
		// Kill well inside the run, with writes in flight.
		if !killed && len(created) >= 10_000 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed (%d sessions acknowledged): %v", len(created), err)
	}

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	if err := checkConsistency(s); err != nil {
		t.Fatalf("after kill: %v", err)
	}
	for _, id := range created {
		if _, err := s.Get(t.Context(), id); err != nil {
			t.Fatalf("acknowledged session %s lost: %v", id, err)
		}
	}
	got, err := s.Get(t.Context(), "counter")
	if err != nil {
		t.Fatalf("Get(counter): %v", err)
	}
	var d struct{ N int }
	if err := json.Unmarshal(got.Data, &d); err != nil || d.N < counter {
		t.Errorf("counter = %s, want at least the acknowledged %d", got.Data, counter)
	}
	t.Logf("%d acknowledged creates and counter %d survived SIGKILL (stored counter %d)", len(created), counter, d.N)
}

// crashChild writes until killed: 16 goroutines create sessions, 4
// increment a counter. It stops by itself after 60 s. Its memtables are
// small, so that it is killed with flushes and compactions under way too.
func crashChild(dir string) {
	s, err := Open(dir, Options{MemTableSize: 1 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	counter := &sessiond.Session{ID: "counter", Active: true, Data: json.RawMessage(`{"n":0}`)}
	if _, err := s.Create(ctx, counter, 0); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // unbuffered: one write per line
		mu.Unlock()
	}
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				sess := testSession(w*10_000_000 + i)
				if _, err := s.Create(ctx, sess, 0); err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				say("created %s", sess.ID)
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				var n int
				_, err := s.Update(ctx, "counter", func(sess *sessiond.Session) error {
					var d struct{ N int }
					if err := json.Unmarshal(sess.Data, &d); err != nil {
						return err
					}
					n = d.N + 1
					sess.Data = json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
					return nil
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				say("counter %d", n)
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}
