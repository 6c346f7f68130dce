package embedded

import (
	"errors"

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
type walFS struct{ vfs.FS }

// walZeroChunk is how far walFile extends the zeroed part of a log at a
// time; zeroChunk is what it writes them from.
const walZeroChunk = 1 << 20

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
	return newWALFile(f), nil
}

func (fs walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(fs.FS, newname) {
		return f, err
	}
	return newWALFile(f), nil
}

// Unwrap returns the file system walFS wraps.
func (fs walFS) Unwrap() vfs.FS { return fs.FS }

// walFile is a WAL file that pebble writes sequentially from offset 0.
// Before a write would go past the part of the file already written and
// synced, it writes the next megabyte of zeros there and syncs them, so
// that pebble's own syncs find the size and the blocks already on disk
// and persist only the data. A recycled log starts with its old length
// already written.
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
	off    int64  // how much pebble has written
	buf    []byte // pebble's writes not yet handed to the kernel; they end at off
	zeroed int64  // how much of the file is written and synced
	failed bool   // an extension failed: write as a plain file from then on
	// syncErr is the error of a failed sync of an extension. The kernel
	// reports a failed write-back once per file, to whichever sync comes
	// first, so walFile reports it to every later sync of pebble's: it may
	// have been pebble's data that was lost.
	syncErr error
	// writeErr is the error of a failed write of the buffer, returned by
	// every later call: the log has a hole from there on.
	writeErr error
}

// walBuffer bounds the bytes walFile holds: more are written at once.
const walBuffer = 256 << 10

func newWALFile(f vfs.File) *walFile {
	w := &walFile{File: f}
	if st, err := f.Stat(); err == nil {
		w.zeroed = st.Size()
	}
	return w
}

func (f *walFile) Write(p []byte) (int, error) {
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	end := f.off + int64(len(p))
	for !f.failed && end > f.zeroed {
		f.extend()
	}
	if len(f.buf)+len(p) > walBuffer {
		if err := f.flush(); err != nil {
			return 0, err
		}
		if len(p) >= walBuffer {
			n, err := f.File.Write(p)
			f.off += int64(n)
			if err != nil {
				f.writeErr = err
			}
			return n, err
		}
	}
	f.buf = append(f.buf, p...)
	f.off = end
	return len(p), nil
}

// flush hands the buffered writes to the kernel.
func (f *walFile) flush() error {
	if f.writeErr != nil {
		return f.writeErr
	}
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.File.Write(f.buf)
	f.buf = f.buf[:0]
	if err != nil {
		f.writeErr = err
	}
	return err
}

// extend writes and syncs the next chunk of zeros. On failure (a full
// disk, say) it gives up extending this file: the WAL's own writes and
// syncs go on as they would without walFile, and report their own errors.
// The zeros go past off, so never over pebble's writes, buffered or not.
func (f *walFile) extend() {
	if _, err := f.File.WriteAt(zeroChunk, f.zeroed); err != nil {
		f.failed = true
		return
	}
	if err := f.File.SyncData(); err != nil {
		f.failed, f.syncErr = true, err
		return
	}
	f.zeroed += walZeroChunk
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
