package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"sessiond"
)

// Write faults (SPEC 10: a full disk, an I/O error).
//
// Pebble cannot survive a failed write of its log: the log writer keeps the
// error for good, the failing commit ends in Logger.Fatalf, and the next
// commits panic while holding the commit pipeline's mutex, so every later
// write hangs. Flushes and compactions are different: pebble reports their
// errors to EventListener.BackgroundError and tries again.
//
// So the store never lets the log meet a full disk. walFile keeps
// walReserve bytes of zeroed, synced space ahead of pebble's writes, which
// pebble overwrites without allocating; when the file system has less
// than lowWater bytes free, or it cannot extend that space, it raises the
// store's writeFault, and pebble's writes go on in the reserve. A ballast
// file is freed at the first write that finds the disk full all the same
// (pebble's vfs.OnDiskFull, and walFile's own buffered writes), and that
// write is retried. A flush or compaction that fails for want of space
// raises the fault too. While a fault is raised, every write is refused
// before it reaches pebble, with an EUNAVAILABLE error, and Ping fails, so
// the reserve and the ballast only take the commits already under way.
//
// The store lifts the fault itself (Store.watchFault): every
// faultProbeInterval, once the file system has lowWater+walReserve bytes
// free (and room for the ballast if it was freed), it makes the ballast
// again and commits one empty synced record, which makes walFile extend
// its reserve if it is short; if nothing raised the fault again
// meanwhile, writes resume.
//
// What pebble still finds fatal (a failed sync of the log, a failed write
// of the MANIFEST, a file system that allocates on overwrite) goes to
// Options.OnFatal, which by default logs and exits the process, so that a
// supervisor restarts it; no commit is acknowledged that was not synced.

// faultProbeInterval is how often a store with a write fault checks
// whether it is gone.
const faultProbeInterval = 250 * time.Millisecond

// lowWater is the free space below which walFile raises the fault: the
// reserve of the next log (pebble starts one when the memtable is full);
// the ballast holds more for flushes and the MANIFEST. The fault is lifted
// once lowWater+walReserve bytes are free, and room for the ballast if it
// was freed.
const lowWater = walReserve

// errLowSpace is raised when less than lowWater would be left free.
var errLowSpace = fmt.Errorf("less than %d MiB left free: %w", lowWater>>20, syscall.ENOSPC)

// writeFault is the store's record of why it cannot write now; nil while
// it can. Raise may be called from any goroutine (pebble's log writer, its
// background jobs); check is one atomic load.
type writeFault struct {
	err     atomic.Pointer[sessiond.Error]
	raised  atomic.Uint64 // how many times raise was called
	wake    chan struct{} // tells watchFault that a fault was raised
	ballast *ballast      // freed at the first ENOSPC; nil in some tests
	log     *slog.Logger
}

func newWriteFault(log *slog.Logger) *writeFault {
	return &writeFault{wake: make(chan struct{}, 1), log: log}
}

// diskFull is called when a write failed for want of space, before the
// write is tried again: it frees the ballast and raises the fault. It is
// pebble's vfs.OnDiskFull callback, and walFile calls it too for the
// writes of its buffer, which pebble only sees fail at a sync, where it
// cannot retry.
func (f *writeFault) diskFull(err error) {
	if f.ballast != nil {
		f.ballast.free()
	}
	f.raise(err)
}

// raise records cause as the reason writes are refused (keeping an earlier
// one) and wakes the watcher. The first raise of a fault is logged.
func (f *writeFault) raise(cause error) {
	f.raised.Add(1)
	e := &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: faultMessage(cause), Err: cause}
	if f.err.CompareAndSwap(nil, e) {
		f.log.Error("embedded store: writes are refused until the fault is gone; reads go on", "err", cause)
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// check returns the fault, an EUNAVAILABLE *sessiond.Error, or nil.
func (f *writeFault) check() error {
	if e := f.err.Load(); e != nil {
		return e
	}
	return nil
}

func (f *writeFault) clear() {
	if f.err.Swap(nil) != nil {
		f.log.Info("embedded store: the write fault is gone; writes resume")
	}
}

// faultMessage is what clients are told about a write fault.
func faultMessage(cause error) string {
	if isSpaceErr(cause) {
		return "the store cannot write: its disk is full; writes resume once space is freed"
	}
	return "the store cannot write: " + cause.Error()
}

func isSpaceErr(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// isWriteErr reports whether a background error is one of the file system
// refusing to write, which raises the fault: pebble retries the job, and
// the writes it would hold (a flush that cannot finish stalls commits) are
// refused meanwhile.
func isWriteErr(err error) bool {
	return isSpaceErr(err) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS)
}

// watchFault lifts the store's write fault once it is gone; it runs from
// Open to Close.
func (s *Store) watchFault() {
	defer close(s.watchDone)
	for {
		select {
		case <-s.stop:
			return
		case <-s.fault.wake:
		}
		for s.fault.check() != nil {
			select {
			case <-s.stop:
				return
			case <-time.After(faultProbeInterval):
			}
			s.probeFault()
		}
	}
}

// probeFault clears the fault if the file system has room for the log's
// reserve and the margin, and one empty synced commit raises nothing: it
// makes walFile extend its reserve first, and pebble's flushes and
// compactions, retried meanwhile, raise their own failures.
func (s *Store) probeFault() {
	need := uint64(lowWater + walReserve)
	if !s.fault.ballast.there() {
		need += ballastSize
	}
	if u, err := s.fs.GetDiskUsage(s.dir); err != nil || u.AvailBytes < need {
		return
	}
	if err := s.fault.ballast.make(); err != nil {
		return
	}
	n := s.fault.raised.Load()
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return
	}
	if s.fault.raised.Load() == n {
		s.fault.clear()
	}
}

// backgroundError is pebble's EventListener.BackgroundError: a failed
// flush, compaction or clean-up. Pebble retries flushes at once, so a full
// disk can report one many times a second: the log gets at most one line
// per backgroundLogEvery.
func (s *Store) backgroundError(err error) {
	if isWriteErr(err) {
		s.fault.raise(err)
	}
	now := time.Now().UnixNano()
	last := s.bgLogged.Load()
	if now-last >= int64(backgroundLogEvery) && s.bgLogged.CompareAndSwap(last, now) {
		s.opts.Log.Error("embedded store: background job failed; pebble retries it", "err", err)
	}
}

const backgroundLogEvery = 10 * time.Second

// exitOnFatal returns the default Options.OnFatal: it logs what pebble
// found fatal and exits the process.
func exitOnFatal(log *slog.Logger) func(string) {
	return func(msg string) {
		log.Error("embedded store: fatal error, exiting so that a supervisor restarts sessiond; "+
			"every acknowledged write is in the log and is replayed at the next start", "err", msg)
		os.Exit(1)
	}
}

// fatalLogger is pebble's Logger: it drops pebble's informational messages
// (such as "Found 0 WALs" at every Open), passes its errors to slog, and
// its fatal errors (after which pebble cannot go on) to onFatal.
type fatalLogger struct {
	log     *slog.Logger
	onFatal func(string)
}

func (fatalLogger) Infof(string, ...any) {}

func (l fatalLogger) Errorf(format string, args ...any) {
	l.log.Error("embedded store: " + fmt.Sprintf(format, args...))
}

// Fatalf must not return: pebble goes on as if the call had stopped it. If
// onFatal returns (a test's), it panics.
func (l fatalLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.onFatal(msg)
	panic("embedded store: " + msg)
}

// ballastSize is the size of the store's ballast file.
const ballastSize = 8 << 20

// ballast is a file of zeros kept in the store's directory and removed at
// the first write that finds the disk full (as CockroachDB does, through
// pebble's vfs.OnDiskFull): the write is then tried again, and succeeds,
// and so do the ones already under way, a log rotation and a flush, while
// the fault refuses new writes. Without it, a disk filled to its last byte
// by another program would fail pebble's next write of a new log or of the
// MANIFEST, which is fatal. It is made again before the fault is lifted.
type ballast struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex
}

// make creates the ballast if it is not there, written and synced.
func (b *ballast) make() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.there() {
		return nil
	}
	tmp := b.path + ".tmp"
	err := writeZeros(tmp, ballastSize)
	if err == nil {
		err = os.Rename(tmp, b.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("making the ballast file %s: %w", b.path, err)
	}
	return nil
}

func (b *ballast) there() bool {
	st, err := os.Stat(b.path)
	return err == nil && st.Size() == ballastSize
}

func (b *ballast) free() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := os.Remove(b.path); err == nil {
		b.log.Warn("embedded store: the disk is full: ballast file removed to finish the writes under way", "path", b.path)
	}
}

// writeZeros creates the file name holding size zeros, synced.
func writeZeros(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	for off := int64(0); off < size && err == nil; off += walZeroChunk {
		_, err = f.Write(zeroChunk[:min(walZeroChunk, size-off)])
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// dataCorruption is pebble's EventListener.DataCorruption: a table that
// fails its checksums when read. Pebble's default ends the process with
// the error's stack; the store instead logs it once, in a line, fails the
// read (pebble returns the error) and Ping (an operator must restore the
// data), and Open refuses (see corruptionError).
func (s *Store) dataCorruption(info pebble.DataCorruptionInfo) {
	e := &sessiond.Error{Code: sessiond.EUNAVAILABLE, Err: info.Details,
		Message: "the store's file " + filepath.Base(info.Path) + " fails its checksums"}
	if s.corrupt.CompareAndSwap(nil, e) {
		s.opts.Log.Error("embedded store: a file of the store fails its checksums: restore the data directory from a backup",
			"file", info.Path, "err", info.Details.Error())
	}
}

// corruptionError is Open's error when a table failed its checksums while
// the store was loading; nil if none did.
func (s *Store) corruptionError() error {
	e := s.corrupt.Load()
	if e == nil {
		return nil
	}
	return fmt.Errorf("%s (%v), so the store does not open. It cannot be repaired in place: "+
		"restore the data directory from a backup", e.Message, e.Err)
}
