package sessiondir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/clock"
	"sessiond/store/memory"
)

// ---- fixtures ----

type env struct {
	t    *testing.T
	clk  *clock.Fake
	svc  *sessiond.Service
	dirs *Dirs
	data string // the data directory: sessions live in data/sessions
}

func newEnv(t *testing.T, q Quota) *env {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{IdleTimeout: time.Hour}, nil)
	data := t.TempDir()
	dirs, err := NewDirs(filepath.Join(data, "sessions"), q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dirs.Close() })
	svc.OnEnd(dirs.Remove)
	return &env{t: t, clk: clk, svc: svc, dirs: dirs, data: data}
}

// open opens a session and returns its id.
func (e *env) open() string {
	e.t.Helper()
	s, _, err := e.svc.Open(context.Background(), sessiond.OpenRequest{UserID: "u"})
	if err != nil {
		e.t.Fatal(err)
	}
	return s.ID
}

func (e *env) sessionDir(id string) string { return filepath.Join(e.data, "sessions", id) }

// write puts a one-byte file at rel in the session's directory, as a
// backend or the files API would.
func (e *env) write(id, rel string) {
	e.t.Helper()
	dir, err := e.dirs.Ensure(id)
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// ---- lifetime ----

func TestDirectoryRemovedWhenSessionEnds(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		end  func(e *env, id string)
	}{
		{"closed", func(e *env, id string) { e.svc.CloseSession(ctx, id, sessiond.ReasonClosed) }},
		{"force-closed", func(e *env, id string) { e.svc.CloseSession(ctx, id, sessiond.ReasonForced) }},
		{"deleted", func(e *env, id string) { e.svc.Delete(ctx, id) }},
		{"expired", func(e *env, id string) {
			e.clk.Add(time.Hour + time.Millisecond)
			e.svc.Sweep(ctx)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Quota{})
			id := e.open()
			keepID := e.open()
			e.write(id, "d/f")
			if tt.name != "expired" {
				e.write(keepID, "kept")
			}
			tt.end(e, id)
			if _, err := os.Lstat(e.sessionDir(id)); !os.IsNotExist(err) {
				t.Errorf("the ended session's directory: got %v, want it gone", err)
			}
			if tt.name != "expired" {
				if _, err := os.Stat(filepath.Join(e.sessionDir(keepID), "kept")); err != nil {
					t.Errorf("another session's file: %v", err)
				}
			}
		})
	}
}

func TestDirectoryRemovedWhenKeyRevoked(t *testing.T) {
	e := newEnv(t, Quota{})
	ctx := context.Background()
	k, _, err := e.svc.CreateAPIKey(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := e.svc.Open(ctx, sessiond.OpenRequest{APIKeyID: k.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.write(s.ID, "f")
	if err := e.svc.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.sessionDir(s.ID)); !os.IsNotExist(err) {
		t.Errorf("the revoked key's session directory: got %v, want it gone", err)
	}
}

func TestReconcile(t *testing.T) {
	e := newEnv(t, Quota{})
	ctx := context.Background()
	// A second Service over the same store, without the OnEnd hook, plays
	// the sessions ending while the daemon was down.
	alive := e.open()
	closed := e.open()
	deleted := e.open()
	expiring := e.open()
	svc2 := sessiond.NewService(e.svc.Store(), e.clk, e.svc.Config(), nil)
	for _, id := range []string{alive, closed, deleted, expiring} {
		if _, err := e.dirs.Ensure(id); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(e.sessionDir(id), "f"), []byte("x"), 0o600)
	}
	svc2.CloseSession(ctx, closed, sessiond.ReasonClosed)
	svc2.Delete(ctx, deleted)
	svc2.Touch(alive)
	e.clk.Add(40 * time.Minute)
	svc2.Touch(alive)
	svc2.FlushTouches(ctx)
	e.clk.Add(40 * time.Minute) // expiring is now dead (idle 1h), not yet swept
	foreign := filepath.Join(e.data, "sessions", "not a session")
	os.Mkdir(foreign, 0o700)

	if err := e.dirs.Reconcile(ctx, svc2); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{alive: true, closed: false, deleted: false, expiring: false} {
		_, err := os.Stat(e.sessionDir(id))
		if got := err == nil; got != want {
			t.Errorf("directory of %s: got exists=%v, want %v", id, got, want)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("an entry that is no session's: got %v, want it left alone", err)
	}
}

func TestNewDirsAndEnsure(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data", "sessions")
	d, err := NewDirs(root, Quota{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if st, err := os.Stat(root); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("root: got %v, %v, want a 0700 directory", st, err)
	}
	if q := d.Quota(); q.MaxBytes != DefaultMaxBytes || q.MaxFiles != DefaultMaxFiles {
		t.Errorf("quota: got %+v, want the defaults", q)
	}
	tests := []struct {
		id      string
		wantErr bool
	}{
		{"0123456789abcdef0123456789abcdef", false},
		{"A_b-C", false},
		{strings.Repeat("a", 128), false},
		{"", true},
		{strings.Repeat("a", 129), true},
		{"..", true},
		{"a/b", true},
		{"a.b", true},
		{"a b", true},
		{"/etc", true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			p, err := d.Ensure(tt.id)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Ensure(%q): got %v, want error %v", tt.id, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if want := filepath.Join(root, tt.id); p != want {
				t.Errorf("path: got %q, want %q", p, want)
			}
			if st, err := os.Stat(p); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
				t.Errorf("directory: got %v, %v", st, err)
			}
			if again, err := d.Ensure(tt.id); err != nil || again != p {
				t.Errorf("second Ensure: got %q, %v", again, err)
			}
		})
	}
	// A file where a directory should be is not taken for one.
	os.WriteFile(filepath.Join(root, "plainfile"), nil, 0o600)
	if _, err := d.Ensure("plainfile"); err == nil {
		t.Error("Ensure over a file: got no error")
	}
}
