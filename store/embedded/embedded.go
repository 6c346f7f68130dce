// Package embedded is the default store engine: a pebble LSM under a data
// directory, with no set-up.
//
// Every write is durable (its WAL record is fsynced) before it returns. Concurrent
// writers share fsyncs: pebble group-commits the synced batches that queue
// while a WAL sync runs into the next one. Read-modify-writes of one session
// are serialised by a striped lock, never a global one. Lookups by id and
// token hash, and List by user, read pebble; the order of all sessions by
// open time, the data the sweeps need, the 64-bit hashes of the ids and the
// map from token hashes to ids live in an in-memory index rebuilt at Open,
// so that a Create writes two keys and reads none. See docs/design.md,
// "Embedded store".
package embedded

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"sessiond"
)

// DirName is the directory, inside the data directory, that holds pebble's
// files.
const DirName = "store"

// ballastName is the ballast file in the store's directory (fault.go).
const ballastName = "sessiond-ballast"

// legacyFileName is the single bbolt file of the engine before this one.
const legacyFileName = "sessiond.db"

// Options tune the engine. The zero value is right for production.
type Options struct {
	// LockTimeout bounds the wait for the directory lock when another
	// process (or another Store) has the store open. Default 1s.
	LockTimeout time.Duration
	// SweepBatch caps how many sessions one CloseExpired or Purge batch
	// handles; each batch is one synced commit that holds the locks of its
	// sessions. Default 1000.
	SweepBatch int
	// CacheSize is the size of pebble's block cache. Default 128 MiB.
	CacheSize int64
	// MemTableSize is the size of each pebble memtable. Default 32 MiB.
	MemTableSize uint64
	// CachedSessions bounds the session records kept in memory for reads
	// (see sessionCache). Default 1,000,000, which costs some 250 MB of
	// memory when full; negative disables the cache.
	CachedSessions int
	// WALSyncDelay is the least time between two WAL syncs (pebble's
	// WALMinSyncInterval). Synced writes that arrive meanwhile share the
	// next sync: a short delay makes groups larger and syncs fewer, for a
	// little latency. Default 300µs (measured: open_session over HTTP with
	// 64 clients gained 10-25% over no delay, and more than 500µs); negative
	// disables it.
	WALSyncDelay time.Duration
	// OnFatal is called with pebble's message when pebble finds an error it
	// cannot go on from (see fault.go); it should not return. Default: log
	// and exit the process with status 1.
	OnFatal func(msg string)
	// Log receives the store's faults (a full disk, damaged data). Default:
	// slog.Default().
	Log *slog.Logger
}

// DefaultOptions returns the engine's defaults: the one place they are
// defined (the command line shows CachedSessions).
func DefaultOptions() Options {
	return Options{
		LockTimeout:    time.Second,
		SweepBatch:     1000,
		CacheSize:      128 << 20,
		MemTableSize:   32 << 20,
		CachedSessions: 1_000_000,
		WALSyncDelay:   300 * time.Microsecond,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.LockTimeout <= 0 {
		o.LockTimeout = d.LockTimeout
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = d.SweepBatch
	}
	if o.CachedSessions == 0 {
		o.CachedSessions = d.CachedSessions
	}
	if o.WALSyncDelay == 0 {
		o.WALSyncDelay = d.WALSyncDelay
	}
	if o.CacheSize <= 0 {
		o.CacheSize = d.CacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = d.MemTableSize
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.OnFatal == nil {
		o.OnFatal = exitOnFatal(o.Log)
	}
	return o
}

// numStripes is the number of session locks; a session's is picked by a
// hash of its id (and, for Create's uniqueness check, of its token hash).
// A writer holds its lock until its commit is durable, so two writers that
// share a stripe take turns at the disk: with 64 concurrent Creates, each of
// a Create's two locks (id, token hash) is held by another with a
// probability of about 63/numStripes, a quarter with 256 stripes and 1.5%
// with 4096.
const numStripes = 4096

// stripe is one lock, padded to its own cache line.
type stripe struct {
	sync.Mutex
	_ [64 - 8]byte
}

// Store is the embedded sessiond.Store.
type Store struct {
	db   *pebble.DB
	lock *pebble.Lock
	dir  string
	fs   vfs.FS
	opts Options

	// fault is raised while the store cannot write (fault.go); watchFault
	// lifts it, and stops when stop is closed, closing watchDone.
	fault     *writeFault
	stop      chan struct{}
	watchDone chan struct{}
	stopOnce  sync.Once
	bgLogged  atomic.Int64 // when backgroundError last logged, in Unix ns
	// corrupt is the first table found failing its checksums.
	corrupt atomic.Pointer[sessiond.Error]

	// mem orders every session by open time and keeps what the sweeps
	// need; see memIndex.
	mem *memIndex
	// cache keeps the records of recently used sessions; nil when disabled.
	cache *sessionCache

	seed    maphash.Seed
	ids     [numStripes]stripe // by session id: every write of a session
	tokens  [numStripes]stripe // by token hash: Create's uniqueness check
	keyLock sync.Mutex         // API key writes
	stats   *statIndex         // which sessions have gateway statistics

	// life guards closing against operations: each operation holds it
	// shared while it runs, Close holds it exclusively.
	life   sync.RWMutex
	closed bool
}

var _ sessiond.Store = (*Store)(nil)

// errClosed is returned by every operation after Close.
var errClosed = sessiond.Errorf(sessiond.EUNAVAILABLE, "store is closed")

// Open opens (creating if needed) the store in dir/store. The directories
// are created with mode 0700. It fails if another Store, in this process or
// another, has the directory open.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	path := filepath.Join(dir, DirName)
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyFileName)); err == nil {
		return nil, fmt.Errorf("embedded store: %s holds a store of an older format (%s); "+
			"this version cannot read it: move it away to start empty", dir, legacyFileName)
	}
	lock, err := lockDir(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	// Pebble would replay a damaged newest log silently up to the damage.
	if err := checkNewestLog(vfs.Default, path, opts.Log); err != nil {
		lock.Close()
		return nil, fmt.Errorf("embedded store: %w", err)
	}

	s := &Store{lock: lock, dir: path, fs: vfs.Default, opts: opts, seed: maphash.MakeSeed(),
		fault: newWriteFault(opts.Log), stop: make(chan struct{}), watchDone: make(chan struct{})}
	s.fault.ballast = &ballast{path: filepath.Join(path, ballastName), log: opts.Log}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	po := &pebble.Options{
		Cache:              cache,
		EventListener:      &pebble.EventListener{BackgroundError: s.backgroundError, DataCorruption: s.dataCorruption},
		FormatMajorVersion: pebble.FormatNewest,
		FS: vfs.OnDiskFull(walFS{FS: s.fs, fault: s.fault},
			func() { s.fault.diskFull(fmt.Errorf("a write of the store: %w", syscall.ENOSPC)) }),
		Lock:         lock,
		Logger:       fatalLogger{opts.Log, opts.OnFatal},
		MemTableSize: opts.MemTableSize,
	}
	if d := opts.WALSyncDelay; d > 0 {
		po.WALMinSyncInterval = func() time.Duration { return d }
	}
	// Bloom filters let point lookups skip the tables that lack the key.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(path, po)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("embedded store: opening %s: %w", path, err)
	}
	s.db = db
	s.cache = newSessionCache(s.seed, opts.CachedSessions)
	if err := s.initialize(); err != nil {
		db.Close()
		lock.Close()
		if cerr := s.corruptionError(); cerr != nil {
			err = cerr
		}
		return nil, fmt.Errorf("embedded store: %s: %w", path, err)
	}
	// Without its ballast (a disk full at start) the store starts with a
	// fault: it serves reads, and writes once there is room.
	if err := s.fault.ballast.make(); err != nil {
		s.fault.raise(err)
	}
	go s.watchFault()
	return s, nil
}

// lockDir takes pebble's directory lock, retrying until timeout.
func lockDir(path string, timeout time.Duration) (*pebble.Lock, error) {
	deadline := time.Now().Add(timeout)
	for {
		lock, err := pebble.LockDirectory(path, vfs.Default)
		if err == nil {
			return lock, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("embedded store: %s is in use by another process or store: %w", path, err)
		}
		time.Sleep(min(50*time.Millisecond, timeout))
	}
}

// initialize checks (or, in a new store, writes) the format version,
// upgrades a store of format 2 or 3, and builds the in-memory index from the
// sessions.
func (s *Store) initialize() error {
	v, closer, err := s.db.Get(keyFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := s.db.Set(keyFormat, []byte(strconv.Itoa(formatVersion)), pebble.Sync); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		got := string(v)
		closer.Close()
		switch got {
		case strconv.Itoa(formatVersion):
		case strconv.Itoa(formatVersionTokens), strconv.Itoa(formatVersionUsers):
			if err := s.dropLegacyIndexes(); err != nil {
				return fmt.Errorf("upgrading data format %s to %d: %w", got, formatVersion, err)
			}
		default:
			return fmt.Errorf("unsupported data format %q (this version reads %d to %d)", got, formatVersionTokens, formatVersion)
		}
	}
	if s.mem, err = loadMemIndex(s.db, s.seed); err != nil {
		return err
	}
	s.stats, err = loadStatIndex(s.db)
	return err
}

// dropLegacyIndexes upgrades a store of format 2 or 3 to 4: one synced
// batch deletes the token index (format 2) and the user index (formats 2
// and 3) with a range deletion each (one key, whatever the number of
// sessions; compactions reclaim the space later) and writes the new
// version. The in-memory index, rebuilt from the records, replaces both.
func (s *Store) dropLegacyIndexes() error {
	b := s.db.NewBatch()
	err := errors.Join(
		b.DeleteRange([]byte{kindLegacyToken}, []byte{kindLegacyToken + 1}, nil),
		b.DeleteRange([]byte{kindLegacyUser}, []byte{kindLegacyUser + 1}, nil),
		b.Set(keyFormat, []byte(strconv.Itoa(formatVersion)), nil),
	)
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	return errors.Join(err, b.Close())
}

// Path returns the directory that holds pebble's files.
func (s *Store) Path() string { return s.dir }

// Close waits for the operations in progress, flushes the memtable and
// closes the store. Later calls, and every operation after it, return an
// EUNAVAILABLE error.
func (s *Store) Close() error {
	if s == nil { // Open failed, and the nil *Store went into an interface
		return nil
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.watchDone
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// Flush writes the memtable (and so any touch not yet synced) to a
	// synced table; the next Open then replays no WAL. Not with a write
	// fault: the flush could not finish (pebble would retry it for ever),
	// and the log, synced, holds every acknowledged write.
	var err error
	if s.fault.check() == nil {
		err = s.db.Flush()
	}
	err = errors.Join(err, s.db.Close(), s.lock.Close())
	if err != nil {
		return fmt.Errorf("embedded store: closing: %w", err)
	}
	return nil
}

// Ping reports whether the store answers a read and can write (see
// fault.go).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.exit()
	if err := s.fault.check(); err != nil {
		return err
	}
	if e := s.corrupt.Load(); e != nil {
		return e
	}
	_, closer, err := s.db.Get(keyFormat)
	if err != nil {
		return sessiond.Internal(err)
	}
	return closer.Close()
}

// enter starts an operation: it fails if ctx has ended or the store is
// closed, and otherwise holds Close off until exit.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return ctxError(err)
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return errClosed
	}
	return nil
}

func (s *Store) exit() { s.life.RUnlock() }

// idStripe returns the lock of session id.
func (s *Store) idStripe(id string) int {
	return int(maphash.String(s.seed, id) % numStripes)
}

// lockIDs locks the stripes of ids, in ascending order so that two callers
// never wait on each other, and returns the function that unlocks them.
func (s *Store) lockIDs(ids []string) (unlock func()) {
	idx := make([]int, 0, len(ids))
	for _, id := range ids {
		idx = append(idx, s.idStripe(id))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.ids[i].Lock()
	}
	return func() {
		for _, i := range idx {
			s.ids[i].Unlock()
		}
	}
}

// commit commits b, synced unless sync is false, and closes it. It refuses
// to while the store has a write fault.
func (s *Store) commit(b *pebble.Batch, sync bool) error {
	if err := s.fault.check(); err != nil {
		b.Close()
		return err
	}
	opts := pebble.Sync
	if !sync {
		opts = pebble.NoSync
	}
	err := b.Commit(opts)
	b.Close()
	if err != nil {
		return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store write failed", Err: err}
	}
	return nil
}

// ctxError turns a context error into a domain error that still matches
// context.Canceled or context.DeadlineExceeded with errors.Is.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &sessiond.Error{Code: sessiond.ETIMEOUT, Message: "store operation timed out", Err: err}
	}
	return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store operation canceled", Err: err}
}
