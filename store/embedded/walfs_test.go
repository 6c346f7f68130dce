package embedded

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"sessiond"
)

// createWAL creates the log file base in a new directory through walFS,
// checks that walFS wrapped it, and returns it with its path.
func createWAL(t *testing.T, base string) (vfs.File, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), base)
	f, err := walFS{FS: vfs.Default}.Create(name, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*walFile); !ok {
		t.Fatalf("a WAL file is not a walFile but a %T", f)
	}
	return f, name
}

// createPlain creates a file named base in a temporary directory on the
// default file system, without walFS's wrapping, for a test to wrap itself
// (see wrapPlain); it is closed when the test ends.
func createPlain(t *testing.T, base string) (vfs.File, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), base)
	f, err := vfs.Default.Create(name, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, name
}

// wrapPlain wraps f, a file named name, as walFS wraps a log, reporting to
// fault.
func wrapPlain(f vfs.File, name string, fault *writeFault) *walFile {
	return walFS{FS: vfs.Default, fault: fault}.newWALFile(f, name)
}

// roundUp rounds n up to whole chunks.
func roundUp(n int64) int64 { return (n + walZeroChunk - 1) / walZeroChunk * walZeroChunk }

// TestWALFileZeroAhead writes a WAL file through walFS in pieces of many
// sizes and checks, after every write, that the file on disk is already
// walReserve longer than what has been written, in whole chunks, and at
// the end that it holds the data followed by nothing but zeros.
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
		if st.Size() < int64(len(data))+walReserve || st.Size()%walZeroChunk != 0 {
			t.Fatalf("after %d bytes written the file is %d bytes long; want whole chunks of %d covering them and %d more",
				len(data), st.Size(), walZeroChunk, walReserve)
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
	if want := roundUp(int64(len(data)) + walReserve); int64(len(got)) != want {
		t.Fatalf("file is %d bytes, want %d", len(got), want)
	}
}

// TestWALFileRecycled checks that a recycled log, already as long as it
// was, is overwritten in place without extending until writes come within
// walReserve of its old length, and that other files are not touched at
// all.
func TestWALFileRecycled(t *testing.T) {
	dir := t.TempDir()
	fs := walFS{FS: vfs.Default}
	old := filepath.Join(dir, "000003.log")
	oldLen := walReserve + walZeroChunk + 1000
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
	if got, want := size(), int64(oldLen)+roundUp(100+walReserve); got != want {
		t.Fatalf("recycled log is %d bytes after writing past its end, want %d", got, want)
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
	inner, name := createPlain(t, "000004.log")
	fault := newWriteFault(slog.Default())
	f := wrapPlain(&failingSync{File: inner}, name, fault)
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if f.syncErr == nil || !errors.Is(fault.check(), errWriteBack) {
		t.Fatalf("the failed extension was not noticed: sync error %v, fault %v", f.syncErr, fault.check())
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
	if _, err := s.Create(t.Context(), testSession(1), 0); err != nil {
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

// failingWrite is a file whose next fails writes fail with err, having
// written half of what they were given, as on a full disk.
type failingWrite struct {
	vfs.File
	fails int
	err   error
}

var errIO = errors.New("input/output error")

func (f *failingWrite) Write(p []byte) (int, error) {
	if f.fails > 0 {
		f.fails--
		n, _ := f.File.Write(p[:len(p)/2])
		return n, f.err
	}
	return f.File.Write(p)
}

// TestWALFileWriteError checks that a failed write of the buffer is
// reported by the sync that made it and by every later one until a write
// succeeds, and that nothing is lost or written twice meanwhile: the log
// never has a hole.
func TestWALFileWriteError(t *testing.T) {
	inner, name := createPlain(t, "000012.log")
	fw := &failingWrite{File: inner, fails: 2, err: errIO}
	f := wrapPlain(fw, name, newWriteFault(slog.Default()))
	var data []byte
	for i, p := range []string{"record", "next", "last"} {
		if _, err := f.Write([]byte(p)); err != nil {
			t.Fatalf("a buffered write failed: %v", err)
		}
		data = append(data, p...)
		err := f.SyncData()
		if i < 2 && !errors.Is(err, errIO) {
			t.Fatalf("SyncData %d: %v, want the write's failure", i, err)
		}
		if i == 2 && err != nil {
			t.Fatalf("SyncData once writes work again: %v", err)
		}
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(data)], data) {
		t.Fatalf("the log holds %q, want %q", got[:len(data)], data)
	}
}

// TestWALFileWriteRetriedOnFullDisk checks that a write of the buffer
// that fails for want of space frees the ballast, raises the fault and is
// tried again at once: pebble's sync succeeds.
func TestWALFileWriteRetriedOnFullDisk(t *testing.T) {
	inner, name := createPlain(t, "000014.log")
	fw := &failingWrite{File: inner, fails: 1, err: &os.PathError{Op: "write", Path: name, Err: syscall.ENOSPC}}
	fault := newWriteFault(slog.Default())
	fault.ballast = &ballast{path: filepath.Join(t.TempDir(), "ballast"), log: slog.Default()}
	if err := fault.ballast.make(); err != nil {
		t.Fatal(err)
	}
	f := wrapPlain(fw, name, fault)
	if _, err := f.Write([]byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncData(); err != nil {
		t.Fatalf("SyncData after a write that found the disk full once: %v", err)
	}
	if !errors.Is(fault.check(), syscall.ENOSPC) {
		t.Fatalf("fault: %v, want ENOSPC", fault.check())
	}
	if fault.ballast.there() {
		t.Fatal("the ballast is still there")
	}
	got, err := os.ReadFile(name)
	if err != nil || !bytes.HasPrefix(got, []byte("record\x00")) {
		t.Fatalf("the log holds %q (%v)", got[:min(len(got), 10)], err)
	}
}

// fullDisk is a file whose extensions fail with ENOSPC while full is set,
// as on a full disk (overwrites of written blocks still succeed).
type fullDisk struct {
	vfs.File
	full bool
}

func (f *fullDisk) WriteAt(p []byte, off int64) (int, error) {
	if f.full {
		return 0, &os.PathError{Op: "write", Path: "log", Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

// TestWALFileFullDiskRaisesFault checks that a log that cannot extend
// raises the fault while pebble's writes go on in the reserve without an
// error, and extends again at the next write once there is room.
func TestWALFileFullDiskRaisesFault(t *testing.T) {
	inner, name := createPlain(t, "000013.log")
	disk := &fullDisk{File: inner}
	fault := newWriteFault(slog.Default())
	f := wrapPlain(disk, name, fault)
	rec := bytes.Repeat([]byte{7}, 60<<10)
	if _, err := f.Write(rec); err != nil {
		t.Fatal(err)
	}
	if fault.check() != nil || f.zeroed < int64(len(rec))+walReserve {
		t.Fatalf("first write: fault %v, zeroed %d", fault.check(), f.zeroed)
	}
	disk.full = true
	zeroed := f.zeroed
	for f.off+int64(len(rec)) <= zeroed { // all of the reserve
		if _, err := f.Write(rec); err != nil {
			t.Fatalf("a write into the reserve failed: %v", err)
		}
		if err := f.SyncData(); err != nil {
			t.Fatalf("a sync within the reserve failed: %v", err)
		}
	}
	err := fault.check()
	if !errors.Is(err, syscall.ENOSPC) || sessiond.ErrorCode(err) != sessiond.EUNAVAILABLE {
		t.Fatalf("fault after the disk filled: %v, want an EUNAVAILABLE error for ENOSPC", err)
	}
	if f.zeroed != zeroed {
		t.Fatalf("zeroed moved from %d to %d on a full disk", zeroed, f.zeroed)
	}
	// Past the reserve (here the file system still has room for pebble's
	// own writes): the next extension must not zero them.
	for range 3 {
		if _, err := f.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	fault.clear()
	disk.full = false
	if _, err := f.Write(rec); err != nil {
		t.Fatal(err)
	}
	if fault.check() != nil || f.zeroed < f.off+walReserve {
		t.Fatalf("after space returned: fault %v, zeroed %d for %d written", fault.check(), f.zeroed, f.off)
	}
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexByte(got[:f.off], 0); i >= 0 {
		t.Fatalf("byte %d of the %d written is zero: an extension went over pebble's writes", i, f.off)
	}
}
