// Package embedded is the default store engine: a single bbolt file under a
// data directory, with no set-up.
//
// Every write is durable (fsynced) before it returns. Writes are group
// committed: one committer goroutine applies all the writes queued while
// its previous commit ran in one read-write transaction, so concurrent
// writers share one fsync. Reads use read-only transactions on the
// memory-mapped file and never wait for writes. See docs/design.md,
// "Embedded store".
package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"sessiond"
)

// FileName is the name of the database file inside the data directory.
const FileName = "sessiond.db"

// Options tune the engine. The zero value is right for production.
type Options struct {
	// LockTimeout bounds the wait for the file lock when another process
	// has the database open. Default 1s.
	LockTimeout time.Duration
	// MaxBatch caps how many queued writes one commit applies. Default 1024.
	MaxBatch int
	// SweepBatch caps how many sessions one CloseExpired or Purge
	// transaction handles; larger sweeps take several transactions so that
	// other writers are not held up. Default 10000.
	SweepBatch int
	// InitialMmapSize is the initial size of the read-only memory map.
	// While the file fits in it, long reads never delay a commit (growing
	// the map waits for open reads). Default 1 GiB on 64-bit systems; it
	// costs address space, not memory.
	InitialMmapSize int
}

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = 10000
	}
	if o.InitialMmapSize <= 0 && strconv.IntSize == 64 {
		o.InitialMmapSize = 1 << 30
	}
	return o
}

// Store is the embedded sessiond.Store.
type Store struct {
	db   *bolt.DB
	opts Options

	// mu guards closing against enqueueing: writers hold it shared while
	// they hand an op to the committer, Close holds it exclusively to
	// close the queue.
	mu     sync.RWMutex
	closed atomic.Bool
	queue  chan *op
	done   chan struct{} // closed when the committer has exited
}

var _ sessiond.Store = (*Store)(nil)

// errClosed is returned by every operation after Close.
var errClosed = sessiond.Errorf(sessiond.EUNAVAILABLE, "store is closed")

// Open opens (creating if needed) the database dir/sessiond.db. The
// directory is created with mode 0700 and the file with mode 0600.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)

	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// The free-page list is not written at each commit (fewer pages
		// to write and sync); Open rebuilds it by walking the file. This
		// is what etcd runs with.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Statistics take a shared lock in every transaction.
		NoStatistics:    true,
		InitialMmapSize: opts.InitialMmapSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded store: %s is in use by another process", path)
	} else if err != nil {
		return nil, fmt.Errorf("embedded store: opening %s: %w", path, err)
	}
	if created {
		// Make the new file's directory entry durable too.
		if err := syncDir(dir); err != nil {
			db.Close()
			return nil, fmt.Errorf("embedded store: %w", err)
		}
	}
	if err := db.Update(initialize); err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded store: %s: %w", path, err)
	}

	s := &Store{
		db:    db,
		opts:  opts,
		queue: make(chan *op, opts.MaxBatch),
		done:  make(chan struct{}),
	}
	go s.commitLoop()
	return s, nil
}

// initialize creates the buckets and checks the format version.
func initialize(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyFormat); v != nil {
		if string(v) != strconv.Itoa(formatVersion) {
			return fmt.Errorf("unsupported data format %q (this version reads %d)", v, formatVersion)
		}
		return nil
	}
	return meta.Put(keyFormat, []byte(strconv.Itoa(formatVersion)))
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// Close stops accepting writes, commits the ones already queued, and
// closes the file. Later calls, and every operation after it, return an
// EUNAVAILABLE error.
func (s *Store) Close() error {
	if s == nil { // Open failed, and the nil *Store went into an interface
		return nil
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	close(s.queue)
	s.mu.Unlock()
	<-s.done
	return s.db.Close()
}

// Ping reports whether the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*txn) error { return nil })
}

// ---- transactions ----

// txn is a transaction with its buckets at hand.
type txn struct {
	tx       *bolt.Tx
	sessions *bolt.Bucket
	tokens   *bolt.Bucket
	indexes  [numIndexes]*bolt.Bucket
	apiKeys  *bolt.Bucket
}

func newTxn(tx *bolt.Tx) *txn {
	t := &txn{tx: tx, sessions: tx.Bucket(bucketSessions)}
	if tx.Writable() {
		t.tokens = tx.Bucket(bucketTokens)
		t.apiKeys = tx.Bucket(bucketAPIKeys)
		for i, name := range indexBuckets {
			t.indexes[i] = tx.Bucket(name)
		}
		// Keys of these grow at the end: pack their pages fuller.
		for _, i := range []int{ixOpen, ixRequest, ixClose} {
			t.indexes[i].FillPercent = 0.9
		}
	}
	return t
}

// index returns index bucket i, opening it in a read transaction on demand.
func (t *txn) index(i int) *bolt.Bucket {
	if t.indexes[i] == nil {
		t.indexes[i] = t.tx.Bucket(indexBuckets[i])
	}
	return t.indexes[i]
}

func (t *txn) tokenBucket() *bolt.Bucket {
	if t.tokens == nil {
		t.tokens = t.tx.Bucket(bucketTokens)
	}
	return t.tokens
}

func (t *txn) apiKeyBucket() *bolt.Bucket {
	if t.apiKeys == nil {
		t.apiKeys = t.tx.Bucket(bucketAPIKeys)
	}
	return t.apiKeys
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return ctxError(err)
	}
	if s.closed.Load() {
		return errClosed
	}
	err := s.db.View(func(tx *bolt.Tx) error { return fn(newTxn(tx)) })
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return errClosed
	}
	return storeError(err)
}

// fatalError marks a failure after which the transaction can no longer be
// trusted (a write to it failed half-way, or code panicked). The batch is
// rolled back and the other operations of it are applied again without
// the failed one.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// fatal wraps a bbolt write error.
func fatal(err error) error {
	if err == nil {
		return nil
	}
	return &fatalError{err}
}

// op is one queued write. fn runs inside the batch transaction: it must
// decide every per-operation outcome (not found, conflict, an UpdateFunc
// error) before it writes anything, return that outcome as its error, and
// return a *fatalError only when a write itself fails. fn may run more
// than once if another op of its batch fails fatally, so it must reset
// whatever results it records.
type op struct {
	ctx  context.Context
	fn   func(*txn) error
	err  error
	done chan struct{}
}

// write queues fn for the committer and waits until its batch is durable.
func (s *Store) write(ctx context.Context, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return ctxError(err)
	}
	o := &op{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return errClosed
	}
	select {
	case s.queue <- o:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctxError(ctx.Err())
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		// The op may still be applied; the caller just stops waiting.
		return ctxError(ctx.Err())
	}
}

// commitLoop is the committer: it takes every op queued while the previous
// commit ran (up to MaxBatch) and commits them together.
func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, s.opts.MaxBatch)
	for o := range s.queue {
		batch = append(batch[:0], o)
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case o, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

// commit applies batch in one transaction and answers every op.
func (s *Store) commit(batch []*op) {
	batch = append([]*op(nil), batch...) // ops may be dropped below
	for len(batch) > 0 {
		failed := -1
		err := s.db.Update(func(tx *bolt.Tx) error {
			t := newTxn(tx)
			for i, o := range batch {
				if err := o.ctx.Err(); err != nil {
					o.err = ctxError(err)
					continue
				}
				o.err = runOp(o, t)
				var f *fatalError
				if errors.As(o.err, &f) {
					failed = i
					return f.err
				}
			}
			return nil
		})
		if failed >= 0 {
			// Answer the failed op; apply the others again without it.
			o := batch[failed]
			o.err = sessiond.Internal(o.err)
			close(o.done)
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		for _, o := range batch {
			if err != nil {
				o.err = &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store write failed", Err: err}
			}
			close(o.done)
		}
		return
	}
}

// runOp runs o.fn, turning a panic into a fatal error.
func runOp(o *op, t *txn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &fatalError{fmt.Errorf("panic in store operation: %v", r)}
		}
	}()
	return o.fn(t)
}

// ctxError turns a context error into a domain error that still matches
// context.Canceled or context.DeadlineExceeded with errors.Is.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &sessiond.Error{Code: sessiond.ETIMEOUT, Message: "store operation timed out", Err: err}
	}
	return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store operation canceled", Err: err}
}

// storeError passes domain errors through and wraps anything else.
func storeError(err error) error {
	if err == nil {
		return nil
	}
	if e := (*sessiond.Error)(nil); errors.As(err, &e) {
		return err
	}
	return sessiond.Internal(err)
}
