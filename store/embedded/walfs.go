package embedded

import (
	"errors"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// walFS is the file system pebble runs on: the default one, except that
// the write-ahead log files it writes are filled with zeros ahead of
// pebble's writes (see walFile).
//
// Why: every acknowledged write waits for an fdatasync of the WAL. When
// that write made the file longer, or landed in blocks that were never
// written, the file system must also persist the new size and block
// allocation, and on ext4 without a journal (seen here) that is a second,
// synchronous disk write of the inode before the cache flush; measured
// with the load program, syncs of a fresh WAL took 260-290µs at the
// median and syncs within already written blocks 150-200µs. Pebble
// avoids this by recycling old WAL files, but only once a memtable has
// been flushed, which after every start takes some 100,000 writes with
// 32 MiB memtables. Writing zeros ahead, a megabyte at a time with one
// extra sync (about 1 ms here), gets the same effect from the first
// write.
//
// Zeros past the end of the log are what pebble already expects there: it
// preallocates WAL files, whose unwritten blocks read as zeros, and its
// recovery stops at a zeroed chunk at the tail of the last log.
//
// The zeroed space is also what keeps a full disk from reaching pebble's
// log writer, for which a failed write is fatal: walFile keeps walReserve
// bytes zeroed ahead of pebble's writes, and raises fault when it cannot
// (see fault.go).
type walFS struct {
	vfs.FS
	fault *writeFault
}

// walZeroChunk is the unit in which walFile extends the zeroed part of a
// log; zeroChunk is what it writes them from.
const walZeroChunk = 1 << 20

// walReserve is how much zeroed, synced space walFile keeps ahead of
// pebble's writes (in whole chunks, extending by at least one when it is
// short): what the commits under way when a fault is raised may still
// write. 64 concurrent opens of the largest session (64 KiB of data and
// user) take 4 MiB.
const walReserve = 4 * walZeroChunk

// walCheckEvery is how often, in bytes of log, walFile checks the free
// space of the file system.
const walCheckEvery = walZeroChunk

var zeroChunk = make([]byte, walZeroChunk)

func isWAL(fs vfs.FS, name string) bool {
	_, _, ok := wal.ParseLogFilename(fs.PathBase(name))
	return ok
}

func (fs walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isWAL(fs.FS, name) {
		return f, err
	}
	return fs.newWALFile(f, name), nil
}

func (fs walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(fs.FS, newname) {
		return f, err
	}
	return fs.newWALFile(f, newname), nil
}

// Unwrap returns the file system walFS wraps.
func (fs walFS) Unwrap() vfs.FS { return fs.FS }

// walFile is a WAL file that pebble writes sequentially from offset 0.
// Before a write would come within walReserve of the end of the part of
// the file already written and synced, it writes the next megabytes of
// zeros there and syncs them once, so that pebble's own syncs find the
// size and the blocks already on disk and persist only the data. A
// recycled log starts with its old length already written.
//
// When the file system has less than lowWater bytes free, or the log
// cannot extend, it raises fault, and pebble's write goes into the
// reserve; it tries to extend again at the next write that needs it.
//
// It also holds pebble's writes in memory until the next sync (or until
// walBuffer bytes are waiting, or the file is closed), and hands them to
// the kernel in one write there. Pebble's flush loop writes whatever
// commits have queued each time it wakes, which under load is once per
// commit, and a system call each time cost some 2% of the CPU of a
// durable open (measured with the load program's profile); with the
// buffer it is one write per sync. Every store call that writes syncs the
// WAL before it returns (Store.commit; Touch's batches end with a synced
// LogData), so nothing acknowledged waits in this buffer; a write that is
// never synced, which the store does not make, would be lost with the
// process rather than only with the machine.
//
// Pebble writes and syncs a WAL from one goroutine (its flush loop), and
// so does walFile: the zeros are written and synced inside Write, before
// pebble's data, and never where pebble has written.
type walFile struct {
	vfs.File
	fs     vfs.FS
	name   string
	fault  *writeFault
	off    int64  // how much pebble has written
	buf    []byte // pebble's writes not yet handed to the kernel; they end at off
	zeroed int64  // how much of the file is written and synced
	// checkAt is where the next write must call prepare: before it comes
	// within walReserve of zeroed, and at least every walCheckEvery bytes.
	checkAt int64
	// syncErr is the error of a failed sync of an extension. The kernel
	// reports a failed write-back once per file, to whichever sync comes
	// first, so walFile reports it to every later sync of pebble's: it may
	// have been pebble's data that was lost.
	syncErr error
}

// walBuffer bounds the bytes walFile holds: more are written at once.
const walBuffer = 256 << 10

func (fs walFS) newWALFile(f vfs.File, name string) *walFile {
	w := &walFile{File: f, fs: fs.FS, name: name, fault: fs.fault}
	if w.fault == nil { // a walFS of a test
		w.fault = newWriteFault(slog.Default())
	}
	if st, err := f.Stat(); err == nil {
		w.zeroed = st.Size()
	}
	return w
}

func (f *walFile) Write(p []byte) (int, error) {
	end := f.off + int64(len(p))
	if end > f.checkAt {
		f.prepare(end)
	}
	if len(f.buf)+len(p) > walBuffer {
		if err := f.flush(); err != nil {
			return 0, err
		}
		if len(p) >= walBuffer {
			n, err := f.write(p)
			f.off += int64(n)
			return n, err
		}
	}
	f.buf = append(f.buf, p...)
	f.off = end
	return len(p), nil
}

// flush hands the buffered writes to the kernel. What a failed write did
// not write stays in the buffer, for the next flush: the log never has a
// hole.
func (f *walFile) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	n, err := f.write(f.buf)
	f.buf = f.buf[:copy(f.buf, f.buf[n:])]
	return err
}

// write writes p at the file's offset. If the disk is full, it tells the
// fault, which frees the store's ballast, and tries the rest once more: a
// write that failed for want of space wrote nothing more than n bytes, so
// (unlike a failed sync) it can be retried.
func (f *walFile) write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if err != nil && isSpaceErr(err) {
		f.fault.diskFull(err)
		var n2 int
		n2, err = f.File.Write(p[n:])
		n += n2
	}
	return n, err
}

// prepare runs before a write that ends at end passes checkAt. It raises
// the fault if the file system has less than lowWater bytes free beyond
// what the reserve still needs; extends the reserve if it is short; and
// sets the next checkAt. The free space is checked even when the log needs
// none (pebble preallocates logs, and recycles them): a full disk must
// stop writes before the memtable fills and the next log, or the flush,
// needs space.
func (f *walFile) prepare(end int64) {
	// After a failed extension pebble may have written past zeroed: the
	// zeros must not go over its earlier writes (this one is written after
	// them, so it may).
	from := max(f.zeroed, f.off)
	var need int64
	if end+walReserve > f.zeroed {
		need = (end + walReserve - from + walZeroChunk - 1) / walZeroChunk * walZeroChunk
	}
	if u, err := f.fs.GetDiskUsage(f.name); err == nil && u.AvailBytes < uint64(need+lowWater) {
		f.fault.raise(errLowSpace)
	}
	if need > 0 && f.syncErr == nil {
		f.extend(from, need)
	}
	f.checkAt = min(f.zeroed-walReserve, end+walCheckEvery)
}

// extend writes need bytes of zeros (whole chunks) from offset from, at or
// past the end of pebble's writes, buffered or not, and syncs them. On
// failure it raises the fault and leaves zeroed as it was: pebble's writes
// go on in what is left of the reserve. A failed sync is kept for pebble's
// next sync (see syncErr), and stops extending.
func (f *walFile) extend(from, need int64) {
	for off := int64(0); off < need; off += walZeroChunk {
		if _, err := f.File.WriteAt(zeroChunk, from+off); err != nil {
			f.fault.raise(err)
			return
		}
	}
	if err := f.File.SyncData(); err != nil {
		f.syncErr = err
		f.fault.raise(err)
		return
	}
	f.zeroed = from + need
}

// beforeSync hands the buffered writes to the kernel and returns what a
// sync must report instead of syncing: a failed write of the buffer, or
// the failed sync of an extension.
func (f *walFile) beforeSync() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.syncErr
}

func (f *walFile) SyncData() error {
	if err := f.beforeSync(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *walFile) Sync() error {
	if err := f.beforeSync(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *walFile) SyncTo(length int64) (fullSync bool, err error) {
	if err := f.beforeSync(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

// Close hands the buffered writes to the kernel and closes the file.
func (f *walFile) Close() error {
	return errors.Join(f.flush(), f.File.Close())
}

// ReadAt and Read see the buffered writes: they are handed over first.
func (f *walFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *walFile) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}
