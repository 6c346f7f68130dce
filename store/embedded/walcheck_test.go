package embedded

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/wal"

	"sessiond"
)

// crashImage writes n sessions (the last with 10 KB of data) to a store
// and copies its directory while it is open, as kill -9 would leave it,
// into a new data directory, which it returns with the sessions and the
// path of the copy's newest log.
func crashImage(t *testing.T, n int) (dir string, sessions []*sessiond.Session, log string) {
	t.Helper()
	s := openTest(t, Options{})
	for i := range n {
		sess := testSession(i)
		if i == n-1 {
			sess.Data = json.RawMessage(`"` + strings.Repeat("x", 10_000) + `"`)
		}
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, sess)
	}
	dir = t.TempDir()
	to := filepath.Join(dir, DirName)
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var newest wal.NumWAL
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if num, _, ok := wal.ParseLogFilename(e.Name()); ok && num >= newest {
			newest, log = num, filepath.Join(to, e.Name())
		}
	}
	return dir, sessions, log
}

// logRecords returns the offsets of the records of a log, and the offset
// where they end.
func logRecords(t *testing.T, log string) (starts []int, end int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	num, _, _ := wal.ParseLogFilename(filepath.Base(log))
	i := 0
	for i+legacyHeader <= len(b) {
		if rest := logBlockSize - i%logBlockSize; rest < walSyncHeader && allZero(b[i:i+rest]) {
			i += rest
			continue
		}
		c, eof, ok := parseChunk(b, i, uint32(num))
		if !ok || eof {
			break
		}
		if c.pos == 'f' || c.pos == 'F' {
			starts = append(starts, i)
		}
		i += chunkHeader(b[i+6]) + len(c.data)
	}
	return starts, i
}

func flipByte(t *testing.T, name string, off int) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedLogRefused flips a byte in one of the last records of the
// newest log of a crashed store: pebble would drop it and every record
// after it silently. Open must refuse, naming the log, the offset and the
// sessions of the records that follow; cutting the log at that offset, as
// the message says, opens the store with every earlier session.
func TestDamagedLogRefused(t *testing.T) {
	dir, sessions, log := crashImage(t, 20)
	starts, _ := logRecords(t, log)
	if len(starts) < len(sessions) {
		t.Fatalf("%d records in the log for %d sessions", len(starts), len(sessions))
	}
	// The record of session 15 (records: the format key, then one per
	// session), in its payload.
	rec := len(starts) - len(sessions) + 15
	flipByte(t, log, starts[rec]+40)

	_, err := Open(dir, Options{})
	var d *logDamage
	if !errors.As(err, &d) {
		t.Fatalf("Open of a log damaged before its last records: %v, want a *logDamage", err)
	}
	var want []string
	for _, s := range sessions[16:] {
		want = append(want, s.ID)
	}
	slices.Sort(want)
	if d.path != log || d.off != int64(starts[rec]) || !slices.Equal(d.sessions, want) || d.records != 4 {
		t.Fatalf("damage reported at %s offset %d, %d records, sessions %v; want %s offset %d, 4 records, sessions %v",
			d.path, d.off, d.records, d.sessions, log, starts[rec], want)
	}
	msg := err.Error()
	for _, s := range []string{log, "offset " + itoa(starts[rec]), want[0], "truncate -s " + itoa(starts[rec])} {
		if !strings.Contains(msg, s) {
			t.Errorf("the refusal does not say %q:\n%s", s, msg)
		}
	}

	// The operator accepts the loss: cut at the damage.
	if err := os.Truncate(log, int64(starts[rec])); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after cutting the log at the damage: %v", err)
	}
	defer s.Close()
	for i, sess := range sessions {
		_, err := s.Get(t.Context(), sess.ID)
		if i < 15 && err != nil {
			t.Errorf("session %d before the damage: %v", i, err)
		}
		if i >= 15 && sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
			t.Errorf("session %d at or after the damage: %v, want not found", i, err)
		}
	}
}

// TestDamagedLastRecordRefused flips a byte in the last record: nothing
// follows it, but it was written whole, so it was not a torn write.
func TestDamagedLastRecordRefused(t *testing.T) {
	dir, _, log := crashImage(t, 5)
	starts, _ := logRecords(t, log)
	flipByte(t, log, starts[len(starts)-1]+5000)
	_, err := Open(dir, Options{})
	var d *logDamage
	if !errors.As(err, &d) || d.off != int64(starts[len(starts)-1]) {
		t.Fatalf("Open of a log whose last record is damaged: %v, want a *logDamage at %d", err, starts[len(starts)-1])
	}
}

// TestTornTailOpens zeroes the last record of the newest log from a page
// boundary on, as a crash in the middle of its write leaves it (its sync
// never returned, so it was never acknowledged): the store opens, with
// every earlier session.
func TestTornTailOpens(t *testing.T) {
	dir, sessions, log := crashImage(t, 5)
	starts, end := logRecords(t, log)
	last := starts[len(starts)-1]
	cut := (last/4096 + 1) * 4096
	if cut >= end {
		t.Fatalf("the last record (%d to %d) holds no page boundary", last, end)
	}
	f, err := os.OpenFile(log, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, end-cut), int64(cut)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open of a log with a torn tail: %v", err)
	}
	defer s.Close()
	for i, sess := range sessions {
		_, err := s.Get(t.Context(), sess.ID)
		if i < len(sessions)-1 && err != nil {
			t.Errorf("session %d: %v", i, err)
		}
		if i == len(sessions)-1 && sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
			t.Errorf("the torn session: %v, want not found", err)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestDamagedTableRefused flips a byte in a table: Open must refuse with
// an error naming the file (pebble's default would end the process with a
// stack trace).
func TestDamagedTableRefused(t *testing.T) {
	dir := t.TempDir()
	opts := Options{OnFatal: func(msg string) { t.Errorf("pebble found a fatal error: %s", msg) }}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := s.Create(t.Context(), testSession(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // flushes the sessions to a table
		t.Fatal(err)
	}
	tables, err := filepath.Glob(filepath.Join(dir, DirName, "*.sst"))
	if err != nil || len(tables) != 1 {
		t.Fatalf("tables: %v %v", tables, err)
	}
	st, err := os.Stat(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, tables[0], int(st.Size()/3))
	_, err = Open(dir, opts)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(tables[0])+" fails its checksums") || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("Open with a damaged table: %v, want a refusal naming %s", err, filepath.Base(tables[0]))
	}
}
