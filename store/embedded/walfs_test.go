package embedded

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// createWAL creates the log file base in a new directory through walFS,
// checks that walFS wrapped it, and returns it with its path.
func createWAL(t *testing.T, base string) (vfs.File, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), base)
	f, err := walFS{vfs.Default}.Create(name, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*walFile); !ok {
		t.Fatalf("a WAL file is not a walFile but a %T", f)
	}
	return f, name
}

// createPlain creates a file named base in a temporary directory on the
// default file system, without walFS's wrapping, for a test to wrap itself;
// it is closed when the test ends.
func createPlain(t *testing.T, base string) vfs.File {
	t.Helper()
	f, err := vfs.Default.Create(filepath.Join(t.TempDir(), base), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestWALFileZeroAhead writes a WAL file through walFS in pieces of many
// sizes and checks, after every write, that the file on disk is already as
// long as what has been written, in whole chunks, and at the end that it
// holds the data followed by nothing but zeros.
func TestWALFileZeroAhead(t *testing.T) {
	f, name := createWAL(t, "000007.log")
	r := rand.New(rand.NewPCG(1, 2))
	var data []byte
	for len(data) < 2*walZeroChunk+walZeroChunk/2 {
		p := make([]byte, 1+r.IntN(64<<10))
		for i := range p {
			p[i] = byte(1 + r.IntN(255)) // never 0, so that zeros are told apart
		}
		if n, err := f.Write(p); err != nil || n != len(p) {
			t.Fatalf("write: %d, %v", n, err)
		}
		data = append(data, p...)
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() < int64(len(data)) || st.Size()%walZeroChunk != 0 {
			t.Fatalf("after %d bytes written the file is %d bytes long; want whole chunks of %d covering them",
				len(data), st.Size(), walZeroChunk)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(data)], data) {
		t.Fatal("the file does not start with the data written")
	}
	if i := bytes.IndexFunc(got[len(data):], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d past the data is not zero", len(data)+i)
	}
	if len(got) != 3*walZeroChunk {
		t.Fatalf("file is %d bytes, want %d", len(got), 3*walZeroChunk)
	}
}

// TestWALFileRecycled checks that a recycled log, already as long as it
// was, is overwritten in place without extending until writes pass its
// old length, and that other files are not touched at all.
func TestWALFileRecycled(t *testing.T) {
	dir := t.TempDir()
	fs := walFS{vfs.Default}
	old := filepath.Join(dir, "000003.log")
	oldLen := walZeroChunk + 1000
	if err := os.WriteFile(old, bytes.Repeat([]byte{0xaa}, oldLen), 0o644); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "000009.log")
	f, err := fs.ReuseForWrite(old, name, "test")
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if _, err := f.Write(bytes.Repeat([]byte{1}, 100)); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != int64(oldLen) {
		t.Fatalf("recycled log is %d bytes after a short write, want its old %d", got, oldLen)
	}
	if _, err := f.Write(bytes.Repeat([]byte{2}, oldLen)); err != nil { // past the old end
		t.Fatal(err)
	}
	if got := size(); got != int64(oldLen+walZeroChunk) {
		t.Fatalf("recycled log is %d bytes after writing past its end, want %d", got, oldLen+walZeroChunk)
	}
	f.Close()

	other, err := fs.Create(filepath.Join(dir, "000010.sst"), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, ok := other.(*walFile); ok {
		t.Fatal("a table file is wrapped as a WAL file")
	}
}

// failingSync is a file whose first SyncData fails, as a sync does when
// the kernel could not write some of the file back.
type failingSync struct {
	vfs.File
	failed bool
}

var errWriteBack = errors.New("write-back failed")

func (f *failingSync) SyncData() error {
	if !f.failed {
		f.failed = true
		return errWriteBack
	}
	return nil
}

// TestWALFileSyncErrorSticks checks that a failed sync of an extension is
// reported to pebble's later syncs, which the kernel would not report it
// to again, and that writes go on without extending.
func TestWALFileSyncErrorSticks(t *testing.T) {
	inner := createPlain(t, "000004.log")
	f := newWALFile(&failingSync{File: inner})
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if !f.failed {
		t.Fatal("the failed extension was not noticed")
	}
	for i := 0; i < 2; i++ {
		if err := f.SyncData(); !errors.Is(err, errWriteBack) {
			t.Fatalf("SyncData %d after a failed extension sync: %v, want the failure", i, err)
		}
		if err := f.Sync(); !errors.Is(err, errWriteBack) {
			t.Fatalf("Sync %d after a failed extension sync: %v, want the failure", i, err)
		}
	}
	if _, err := f.Write(make([]byte, 2*walZeroChunk)); err != nil {
		t.Fatal(err)
	}
	if f.zeroed != 0 {
		t.Fatalf("extended to %d after a failure", f.zeroed)
	}
}

// TestStoreWALZeroedAhead checks that the store's WAL is written through
// walFS: after a synced write, the log on disk is whole chunks long.
func TestStoreWALZeroedAhead(t *testing.T) {
	s := openTest(t, Options{})
	if err := s.Create(t.Context(), testSession(1)); err != nil {
		t.Fatal(err)
	}
	logs, err := filepath.Glob(filepath.Join(s.dir, "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no WAL in %s: %v", s.dir, err)
	}
	for _, name := range logs {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() == 0 || st.Size()%walZeroChunk != 0 {
			t.Errorf("%s is %d bytes, want whole chunks of %d", name, st.Size(), walZeroChunk)
		}
	}
}

// TestWALFileBuffersUntilSync checks that pebble's writes reach the file
// at the next sync, at close, or at once when the buffer would overflow,
// always in order and at the offsets written.
func TestWALFileBuffersUntilSync(t *testing.T) {
	f, name := createWAL(t, "000011.log")
	var data []byte
	write := func(p []byte) {
		t.Helper()
		if n, err := f.Write(p); err != nil || n != len(p) {
			t.Fatalf("write: %d, %v", n, err)
		}
		data = append(data, p...)
	}
	onDisk := func() []byte {
		t.Helper()
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	hasData := func(what string) {
		t.Helper()
		if got := onDisk(); !bytes.Equal(got[:len(data)], data) {
			t.Fatalf("%s: the file does not hold the %d bytes written", what, len(data))
		}
	}

	write(bytes.Repeat([]byte{1}, 100))
	write(bytes.Repeat([]byte{2}, 200))
	if got := onDisk(); bytes.Contains(got, []byte{1}) {
		t.Fatal("a write reached the file before any sync")
	}
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	hasData("after SyncData")

	write(bytes.Repeat([]byte{3}, walBuffer-10))
	write(bytes.Repeat([]byte{4}, 20)) // overflows: the buffered write goes first
	if got := onDisk(); !bytes.Equal(got[:len(data)-20], data[:len(data)-20]) {
		t.Fatal("a full buffer was not written when the next write overflowed it")
	}
	write(bytes.Repeat([]byte{5}, walBuffer+1)) // larger than the buffer: written at once
	hasData("after a write larger than the buffer")

	write([]byte("tail"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	hasData("after Close")
	if i := bytes.IndexFunc(onDisk()[len(data):], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d past the data is not zero", len(data)+i)
	}
}

// failingWrite is a file whose writes fail, as on a full disk.
type failingWrite struct{ vfs.File }

var errDiskFull = errors.New("no space left")

func (failingWrite) Write(p []byte) (int, error) { return 0, errDiskFull }

// TestWALFileWriteErrorSticks checks that a failed write of the buffer is
// reported by the sync that made it and by every later call: what pebble
// wrote after the lost bytes must not be taken as durable.
func TestWALFileWriteErrorSticks(t *testing.T) {
	inner := createPlain(t, "000012.log")
	f := newWALFile(failingWrite{inner})
	if _, err := f.Write([]byte("record")); err != nil {
		t.Fatalf("a buffered write failed: %v", err)
	}
	if err := f.SyncData(); !errors.Is(err, errDiskFull) {
		t.Fatalf("SyncData: %v, want the write's failure", err)
	}
	if _, err := f.Write([]byte("next")); !errors.Is(err, errDiskFull) {
		t.Fatalf("Write after a failed write: %v, want the failure", err)
	}
	if err := f.Sync(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Sync after a failed write: %v, want the failure", err)
	}
	if _, err := f.SyncTo(1); !errors.Is(err, errDiskFull) {
		t.Fatalf("SyncTo after a failed write: %v, want the failure", err)
	}
}
