package embedded

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/testfs"
)

// bigSession is a session with 60 KB of data.
func bigSession(i int) *sessiond.Session {
	s := testSession(i)
	s.Data = json.RawMessage(`"` + strings.Repeat("x", 60_000) + `"`)
	return s
}

// TestFullDiskRefusesWritesAndRecovers fills the tmpfs the store is on
// and checks that writes are then refused at once with EUNAVAILABLE (no
// panic, no hang), Ping says so, reads go on, and that once space is
// freed writes resume by themselves, and every acknowledged write is
// there after a reopen.
func TestFullDiskRefusesWritesAndRecovers(t *testing.T) {
	dir := testfs.MountTmpfs(t, 48<<20)
	opts := Options{OnFatal: func(msg string) { t.Errorf("pebble found a fatal error: %s", msg) }}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	ctx := t.Context()
	ballast := testfs.FillDisk(t, dir, 12<<20)

	var acked []*sessiond.Session
	var refused error
	for i := 0; i < 1000 && refused == nil; i++ {
		sess := bigSession(i)
		start := time.Now()
		_, err := s.Create(ctx, sess, 0)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Create %d took %v", i, d)
		}
		if err != nil {
			refused = err
			break
		}
		acked = append(acked, sess)
	}
	if refused == nil {
		t.Fatal("1000 sessions of 60 KB fit on the full disk")
	}
	if sessiond.ErrorCode(refused) != sessiond.EUNAVAILABLE || !strings.Contains(sessiond.ErrorMessage(refused), "disk is full") {
		t.Fatalf("Create on a full disk: %v (code %s), want EUNAVAILABLE saying the disk is full", refused, sessiond.ErrorCode(refused))
	}
	t.Logf("%d sessions acknowledged before the disk filled: %v", len(acked), refused)
	if len(acked) == 0 {
		t.Fatal("no session fit before the disk filled")
	}
	if err := s.Ping(ctx); sessiond.ErrorCode(err) != sessiond.EUNAVAILABLE {
		t.Fatalf("Ping on a full disk: %v, want EUNAVAILABLE", err)
	}
	if _, err := s.Update(ctx, acked[0].ID, func(x *sessiond.Session) error { x.Data = json.RawMessage(`1`); return nil }); sessiond.ErrorCode(err) != sessiond.EUNAVAILABLE {
		t.Fatalf("Update on a full disk: %v, want EUNAVAILABLE", err)
	}
	if got, err := s.Get(ctx, acked[len(acked)-1].ID); err != nil || string(got.Data) != string(acked[len(acked)-1].Data) {
		t.Fatalf("Get on a full disk: %v", err)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 1000; ; i++ {
		sess := bigSession(i)
		_, err := s.Create(ctx, sess, 0)
		if err == nil {
			acked = append(acked, sess)
			break
		}
		if sessiond.ErrorCode(err) != sessiond.EUNAVAILABLE || time.Now().After(deadline) {
			t.Fatalf("Create after space was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after space was freed: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range acked {
		if _, err := s.Get(ctx, want.ID); err != nil {
			t.Fatalf("acknowledged session %s after reopening: %v", want.ID, err)
		}
	}
}

// TestFullDiskClose fills the disk to its last byte (so that the store's
// ballast is needed) and checks that Close returns, promptly and with the
// acknowledged writes kept, while the disk is full.
func TestFullDiskClose(t *testing.T) {
	dir := testfs.MountTmpfs(t, 48<<20)
	opts := Options{OnFatal: func(msg string) { t.Errorf("pebble found a fatal error: %s", msg) }}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ballast := testfs.FillDisk(t, dir, 0)
	var acked []*sessiond.Session
	for i := 0; ; i++ {
		sess := bigSession(i)
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Create %d: %v, want the disk full", i, err)
			}
			break
		}
		acked = append(acked, sess)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close on a full disk: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs on a full disk")
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, want := range acked {
		if _, err := s.Get(t.Context(), want.ID); err != nil {
			t.Fatalf("acknowledged session %s after reopening: %v", want.ID, err)
		}
	}
}
