// Package cache is a per-instance read cache in front of a shared store
// engine (PostgreSQL, Redis): the session reads every request makes (Get
// by id, GetByTokenHash for verify and the gateway) are served from memory,
// and the event stream that the instances share keeps that memory right.
//
// What it serves, and how stale it can be:
//   - Only sessions that exist are cached, never "not found". An unknown
//     token is read through on every request; that costs a store read per
//     guess, which the failure limiter (auth) already bounds per client,
//     and it means a session opened on another instance is found at once
//     without any event.
//   - Every event naming a session but EventOpened (changed, closed,
//     deleted, and any later kind) drops that session's entry, on every
//     instance. Writes through this handle drop or refresh what they touch
//     at once, before the event arrives.
//   - EventLost drops everything, and nothing is served from memory (or
//     cached) until EventResumed, as the stream's contract requires.
//   - Entries are served as read for Options.MaxAge (default 1s); from
//     then until twice MaxAge the old entry is still served while a
//     background read replaces it, so that a hot session costs one store
//     read a second and no request waits for it (measured: half of a
//     verify's lookup CPU on PostgreSQL went to those reads, made by the
//     requests themselves, before). The background reads are batched: one
//     goroutine gathers the ids due for ten milliseconds and reads them in
//     one trip when the engine can (sessiond.MultiGetter), so a thousand hot
//     sessions cost a few dozen store reads a second, not a thousand
//     (measured: verify 0.67–0.72 of T on PostgreSQL with one read per
//     session, 0.78–0.79 with none). Past twice MaxAge an entry is never
//     served. Two things are not
//     told by events and this bounds both: request_time, which other
//     instances flush in batches every TouchInterval (1s) without an event,
//     and a change whose publication never arrived (a crash between commit
//     and publish) without the stream noticing a loss. The Service judges
//     liveness from RequestTime by its own clock, so an older cached
//     RequestTime can only make a session look idle sooner (by twice MaxAge
//     plus the other instance's TouchInterval at most, against an idle timeout
//     of hours), never keep a dead one alive; this instance's own touches
//     are applied on top by the Service (applyPending) and refreshed here
//     when flushed (Touch).
//   - A read that started before an invalidation and finished after it
//     does not fill the cache (generations, below), so an invalidation is
//     never undone by an older read.
//
// Callers receive copies (as Session.Clone makes, in fewer allocations):
// a cached entry is never changed once it is in the maps, so hits read it
// outside any lock.
package cache

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"sessiond"
)

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// MaxAge bounds how long an entry is served. Default 1s.
	MaxAge time.Duration
	// MaxEntries bounds the sessions held. Default 100,000.
	MaxEntries int
	// Clock tells the entries' age. Default sessiond.SystemClock.
	Clock sessiond.Clock
}

const (
	defaultMaxAge     = time.Second
	defaultMaxEntries = 100_000
	// maxShards: enough locks that parallel verifies rarely meet on one.
	maxShards = 64
)

// Store is a sessiond.Store that caches Get and GetByTokenHash of inner.
// It implements sessiond.Streamer with inner's stream, so the Service
// over it publishes where the cache listens.
type Store struct {
	inner  sessiond.Store
	stream sessiond.Stream
	clock  sessiond.Clock
	maxAge time.Duration
	seed   maphash.Seed
	mask   uint64

	// byID holds the entries, by the shard of the session id. An entry is
	// current only while it is in byID: whatever removes it from there
	// (invalidation, replacement, eviction) marks it dead.
	byID []idShard
	// byToken indexes the same entries by token hash, by the shard of the
	// hash. It may hold dead entries; lookups skip and drop them.
	byToken []tokenShard

	// seq counts invalidations. A reader notes it before reading inner and
	// fills only if the session's id shard saw no invalidation since
	// (idShard.inval), the idea of keys.go with one generation per shard.
	seq atomic.Uint64
	// lost: the stream may have missed events; serve and cache nothing.
	lost atomic.Bool

	unsubscribe func()

	// due carries the ids whose entries passed MaxAge to refreshLoop,
	// which runs until closing (cancelled by Close) ends.
	due         chan string
	closing     context.Context
	endRefresh  context.CancelFunc
	refreshDone chan struct{}
}

type entry struct {
	sess       *sessiond.Session // never changed once cached
	fetched    time.Time         // taken before the read that returned sess
	dead       atomic.Bool
	refreshing atomic.Bool // a read that will replace it is under way
}

type idShard struct {
	mu    sync.RWMutex
	m     map[string]*entry
	inval uint64 // seq of the last invalidation in this shard
	max   int
	_     [64]byte // keep shards' locks off one cache line
}

type tokenShard struct {
	mu  sync.RWMutex
	m   map[string]*entry // string(token hash) -> entry
	max int
	_   [64]byte
}

// New returns a cache over inner, which must implement sessiond.Streamer
// (a shared engine): the cache is only right if it hears every change, and
// only a shared engine's stream carries other instances' changes. New
// panics otherwise: wrapping an unshared engine is a wiring mistake.
func New(inner sessiond.Store, opts Options) *Store {
	sh, ok := inner.(sessiond.Streamer)
	if !ok {
		panic(fmt.Sprintf("cache.New: %T does not implement sessiond.Streamer; the cache needs its event stream", inner))
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = defaultMaxAge
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	if opts.Clock == nil {
		opts.Clock = sessiond.SystemClock{}
	}
	// A power of two of shards, no more than entries, so that the shards'
	// bounds add up to MaxEntries at most.
	n := 1 << (bits.Len(uint(min(opts.MaxEntries, maxShards))) - 1)
	per := opts.MaxEntries / n
	s := &Store{
		inner:   inner,
		stream:  sh.Stream(),
		clock:   opts.Clock,
		maxAge:  opts.MaxAge,
		seed:    maphash.MakeSeed(),
		mask:    uint64(n - 1),
		byID:    make([]idShard, n),
		byToken: make([]tokenShard, n),
	}
	for i := range n {
		s.byID[i].m = make(map[string]*entry)
		s.byID[i].max = per
		s.byToken[i].m = make(map[string]*entry)
		s.byToken[i].max = per
	}
	s.due = make(chan string, refreshQueue)
	s.closing, s.endRefresh = context.WithCancel(context.Background())
	s.refreshDone = make(chan struct{})
	go s.refreshLoop()
	s.unsubscribe = s.stream.Subscribe(s.onEvents)
	return s
}

// Stream returns inner's stream.
func (s *Store) Stream() sessiond.Stream { return s.stream }

// NewSessionID asks the inner engine for a new session's id if it chooses
// them (sessiond.IDChooser), so that the cache is transparent to it.
func (s *Store) NewSessionID(apiKeyID, userID string) string {
	if c, ok := s.inner.(sessiond.IDChooser); ok {
		return c.NewSessionID(apiKeyID, userID)
	}
	return sessiond.NewID()
}

// Len returns the number of sessions cached.
func (s *Store) Len() int {
	n := 0
	for i := range s.byID {
		sh := &s.byID[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

func (s *Store) idShard(id string) *idShard {
	return &s.byID[maphash.String(s.seed, id)&s.mask]
}

func (s *Store) tokenShard(hash []byte) *tokenShard {
	return &s.byToken[maphash.Bytes(s.seed, hash)&s.mask]
}

// fresh reports whether e may be served at now: younger than MaxAge, or
// younger than twice MaxAge while a read replaces it in the background
// (asked for here, once per entry), so that a hot session is read again
// every MaxAge without a request waiting for it.
func (s *Store) fresh(e *entry, now time.Time) bool {
	age := now.Sub(e.fetched)
	if age < 0 || e.dead.Load() {
		return false
	}
	if age < s.maxAge {
		return true
	}
	if age >= 2*s.maxAge {
		return false
	}
	if e.refreshing.CompareAndSwap(false, true) {
		select {
		case s.due <- e.sess.ID:
		default:
			// The queue is full: a later request asks again.
			e.refreshing.Store(false)
		}
	}
	return true
}

// The background refresh: refreshWindow is how long refreshLoop gathers
// ids after the first, refreshBatch the most it reads at once, and
// refreshQueue how many may wait.
const (
	refreshWindow = 10 * time.Millisecond
	refreshBatch  = 500
	refreshQueue  = 4 * refreshBatch
)

// refreshLoop reads the sessions of the ids sent to due again, in
// batches, until Close.
func (s *Store) refreshLoop() {
	defer close(s.refreshDone)
	ids := make([]string, 0, refreshBatch)
	window := time.NewTimer(refreshWindow)
	window.Stop()
	for {
		select {
		case <-s.closing.Done():
			return
		case id := <-s.due:
			ids = append(ids[:0], id)
		}
		window.Reset(refreshWindow)
	gather:
		for len(ids) < refreshBatch {
			select {
			case <-s.closing.Done():
				window.Stop()
				return
			case id := <-s.due:
				ids = append(ids, id)
			case <-window.C:
				break gather
			}
		}
		window.Stop()
		s.refresh(ids)
	}
}

// refresh reads the sessions of ids again and caches them (or drops those
// that are gone), as misses would. On an error it fills nothing: the
// entries then pass twice MaxAge and are read through.
func (s *Store) refresh(ids []string) {
	now, seq, ok := s.begin()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(s.closing, refreshTimeout)
	defer cancel()
	found, err := sessiond.GetMany(ctx, s.inner, ids)
	if err != nil {
		return
	}
	seen := make(map[string]bool, len(found))
	for _, sess := range found {
		seen[sess.ID] = true
		s.fill(sess, now, seq)
	}
	for _, id := range ids {
		if !seen[id] {
			s.invalidate(id)
		}
	}
}

// refreshTimeout bounds a background read (the engine bounds its own too).
const refreshTimeout = 10 * time.Second

// onEvents keeps the cache right from the stream.
func (s *Store) onEvents(evs []sessiond.Event) {
	for _, e := range evs {
		switch {
		case e.Kind == sessiond.EventLost:
			// Order matters: lost before seq, so that a reader that saw
			// lost false noted a seq older than this one (see fill).
			s.lost.Store(true)
			s.dropAll()
		case e.Kind == sessiond.EventResumed:
			s.lost.Store(false)
		case e.Kind == sessiond.EventOpened || e.SessionID == "":
			// Nothing negative is cached; key events name no session.
		default:
			s.invalidate(e.SessionID)
		}
	}
}

// invalidate drops the entry of id, and keeps reads in flight from
// putting back what they read.
func (s *Store) invalidate(id string) {
	seq := s.seq.Add(1)
	sh := s.idShard(id)
	sh.mu.Lock()
	sh.inval = seq
	e, ok := sh.m[id]
	if ok {
		e.dead.Store(true)
		delete(sh.m, id)
	}
	sh.mu.Unlock()
	if ok {
		s.unindex(e)
	}
}

// dropAll empties the cache and keeps reads in flight from filling it.
func (s *Store) dropAll() {
	seq := s.seq.Add(1)
	for i := range s.byID {
		sh := &s.byID[i]
		sh.mu.Lock()
		sh.inval = seq
		for _, e := range sh.m {
			e.dead.Store(true)
		}
		clear(sh.m)
		sh.mu.Unlock()
	}
	for i := range s.byToken {
		sh := &s.byToken[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}

// begin notes what a read of inner needs to fill the cache after: the
// time it started and the generation. ok is false while the stream is
// lost: read through, cache nothing.
func (s *Store) begin() (now time.Time, seq uint64, ok bool) {
	now = s.clock.Now()
	// seq before lost: if lost is false here, a loss that follows bumps
	// seq past the value noted, and the fill is refused.
	seq = s.seq.Load()
	return now, seq, !s.lost.Load()
}

// fill caches sess, read from inner at fetched after begin returned seq,
// unless its shard saw an invalidation since or the stream is lost.
func (s *Store) fill(sess *sessiond.Session, fetched time.Time, seq uint64) {
	e := &entry{sess: sess, fetched: fetched}
	sh := s.idShard(sess.ID)
	sh.mu.Lock()
	if sh.inval > seq || s.lost.Load() {
		sh.mu.Unlock()
		return
	}
	old, ok := sh.m[sess.ID]
	if !ok && len(sh.m) >= sh.max {
		old = evict(sh.m)
	}
	sh.m[sess.ID] = e
	// Under the id's lock, so that no invalidation comes between: the new
	// entry takes the token first, then the old one dies. A lookup by
	// token finds one or the other, both current, and never reads through
	// for nothing (as it did on every background refresh).
	s.index(e)
	if old != nil {
		old.dead.Store(true)
	}
	sh.mu.Unlock()
	if old != nil {
		s.unindex(old) // an evicted entry's token
	}
}

// index puts e in the token index unless it died already. An entry that
// dies later is taken out by whoever killed it (unindex), so the index
// holds no dead entry for long: lookups skip any they meet. fill and
// raise call it holding e's id shard lock (the only nesting of the two
// kinds of lock: id, then token).
func (s *Store) index(e *entry) {
	if len(e.sess.TokenHash) == 0 {
		return
	}
	th := s.tokenShard(e.sess.TokenHash)
	th.mu.Lock()
	if !e.dead.Load() {
		if _, ok := th.m[string(e.sess.TokenHash)]; !ok && len(th.m) >= th.max {
			evict(th.m)
		}
		th.m[string(e.sess.TokenHash)] = e
	}
	th.mu.Unlock()
}

// unindex takes the dead entry e out of the token index, if it is there.
// It runs after e was marked dead: an index of e that saw it alive holds
// the token shard's lock before this does, so nothing puts e back after.
func (s *Store) unindex(e *entry) {
	if len(e.sess.TokenHash) == 0 {
		return
	}
	th := s.tokenShard(e.sess.TokenHash)
	th.mu.Lock()
	if th.m[string(e.sess.TokenHash)] == e {
		delete(th.m, string(e.sess.TokenHash))
	}
	th.mu.Unlock()
}

// evict drops an arbitrary entry of m, the one Go's map iteration starts
// at (a random one), and returns it. Entries live MaxAge (a second), so
// which one goes matters little, and random eviction costs hits nothing:
// no LRU list to move, no clock bit to set, under a read lock.
func evict(m map[string]*entry) *entry {
	for k, e := range m {
		delete(m, k)
		return e
	}
	return nil
}

// Get returns the session of id, from memory when a fresh entry is there.
func (s *Store) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	now, seq, ok := s.begin()
	if ok {
		sh := s.idShard(id)
		sh.mu.RLock()
		e := sh.m[id]
		sh.mu.RUnlock()
		if e != nil && s.fresh(e, now) {
			return copySession(e.sess), nil
		}
	}
	sess, err := s.inner.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok && sess.ID == id {
		s.fill(copySession(sess), now, seq)
	}
	return sess, nil
}

// GetByTokenHash returns the session of the token hash, from memory when a
// fresh entry is there. An unknown hash is read through every time: see
// the package comment.
func (s *Store) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	now, seq, ok := s.begin()
	if ok && len(hash) > 0 {
		th := s.tokenShard(hash)
		th.mu.RLock()
		e := th.m[string(hash)]
		th.mu.RUnlock()
		if e != nil {
			if s.fresh(e, now) {
				return copySession(e.sess), nil
			}
			if e.dead.Load() {
				th.mu.Lock()
				if th.m[string(hash)] == e {
					delete(th.m, string(hash))
				}
				th.mu.Unlock()
			}
		}
	}
	sess, err := s.inner.GetByTokenHash(ctx, hash)
	if err != nil {
		return nil, err
	}
	if ok && bytes.Equal(sess.TokenHash, hash) {
		s.fill(copySession(sess), now, seq)
	}
	return sess, nil
}

// copySession is Session.Clone in two allocations instead of four: User,
// Data and TokenHash share one array, each capped at its length so that
// appending to one cannot write into the next. The copy every hit returns
// is most of what a hit costs (see the report of BenchmarkTokenHit).
func copySession(s *sessiond.Session) *sessiond.Session {
	c := *s
	buf := make([]byte, 0, len(s.User)+len(s.Data)+len(s.TokenHash))
	part := func(b []byte) []byte {
		if len(b) == 0 {
			return nil // as Session.Clone: an empty value copies as nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	c.User = part(s.User)
	c.Data = part(s.Data)
	c.TokenHash = part(s.TokenHash)
	return &c
}

// Create passes through. Nothing negative is cached, so a new session has
// nothing to drop; its id is dropped all the same, so that no entry of an
// id can outlive a write of it through this handle.
func (s *Store) Create(ctx context.Context, sess *sessiond.Session, userMin int) (bool, error) {
	crowded, err := s.inner.Create(ctx, sess, userMin)
	s.invalidate(sess.ID)
	return crowded, err
}

// Update passes through and drops the session's entry, whatever the
// outcome (a failed write may still have been committed). The Service's
// EventChanged or EventClosed drops it again; not refilling from the
// result keeps one rule: entries come from reads only.
func (s *Store) Update(ctx context.Context, id string, fn sessiond.UpdateFunc) (*sessiond.Session, error) {
	sess, err := s.inner.Update(ctx, id, fn)
	s.invalidate(id)
	return sess, err
}

// Delete passes through and drops the session's entry.
func (s *Store) Delete(ctx context.Context, id string) (*sessiond.Session, error) {
	sess, err := s.inner.Delete(ctx, id)
	s.invalidate(id)
	return sess, err
}

// Touch passes through and refreshes the cached entries it touches: the
// store raised their RequestTime (active sessions only), so the entry is
// replaced by a copy raised the same way, keeping its fetch time. Touches
// come every TouchInterval for every used session: dropping them instead
// would turn every flush into a miss per hot session. On an error the
// touched entries are dropped.
func (s *Store) Touch(ctx context.Context, touches []sessiond.Touch) error {
	err := s.inner.Touch(ctx, touches)
	for _, t := range touches {
		if err != nil {
			s.invalidate(t.ID)
			continue
		}
		s.raise(t)
	}
	return err
}

// raise replaces the entry of t.ID, if any, with one whose RequestTime is
// raised to t.Time, as the store's Touch did. It counts as an
// invalidation for reads in flight: one that read before the touch must
// not fill the entry after it.
func (s *Store) raise(t sessiond.Touch) {
	seq := s.seq.Add(1)
	sh := s.idShard(t.ID)
	sh.mu.Lock()
	sh.inval = seq
	old, ok := sh.m[t.ID]
	if !ok || !old.sess.Active || !t.Time.After(old.sess.RequestTime) {
		sh.mu.Unlock()
		return
	}
	c := copySession(old.sess)
	c.RequestTime = t.Time
	e := &entry{sess: c, fetched: old.fetched}
	sh.m[t.ID] = e
	s.index(e) // before old dies, under the lock, as in fill
	old.dead.Store(true)
	sh.mu.Unlock()
}

// CloseExpired passes through and drops the closed sessions' entries; on
// an error, which sessions were closed is unknown, so it drops all.
func (s *Store) CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error) {
	ids, err := s.inner.CloseExpired(ctx, now, idle)
	s.invalidateIDs(ids, err)
	return ids, err
}

// Purge passes through and drops the purged sessions' entries; on an
// error, all.
func (s *Store) Purge(ctx context.Context, closedBefore time.Time) ([]string, error) {
	ids, err := s.inner.Purge(ctx, closedBefore)
	s.invalidateIDs(ids, err)
	return ids, err
}

func (s *Store) invalidateIDs(ids []string, err error) {
	if err != nil {
		s.dropAll()
		return
	}
	for _, id := range ids {
		s.invalidate(id)
	}
}

// List passes through: listings are not cached.
func (s *Store) List(ctx context.Context, f sessiond.Filter, p sessiond.Paging) (*sessiond.Page, error) {
	return s.inner.List(ctx, f, p)
}

// UserSessions passes through.
func (s *Store) UserSessions(ctx context.Context, apiKeyID, userID string, min int) ([]sessiond.UserSession, error) {
	return s.inner.UserSessions(ctx, apiKeyID, userID, min)
}

// AddConnStats passes through: statistics are not cached.
func (s *Store) AddConnStats(ctx context.Context, deltas []sessiond.ConnDelta) error {
	return s.inner.AddConnStats(ctx, deltas)
}

// ConnStats passes through.
func (s *Store) ConnStats(ctx context.Context, sessionID string) ([]sessiond.ConnStat, error) {
	return s.inner.ConnStats(ctx, sessionID)
}

// CreateAPIKey passes through: the Service caches keys itself (keys.go).
func (s *Store) CreateAPIKey(ctx context.Context, k *sessiond.APIKey) error {
	return s.inner.CreateAPIKey(ctx, k)
}

// GetAPIKey passes through.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	return s.inner.GetAPIKey(ctx, id)
}

// ListAPIKeys passes through.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*sessiond.APIKey, error) {
	return s.inner.ListAPIKeys(ctx)
}

// DeleteAPIKey passes through.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	return s.inner.DeleteAPIKey(ctx, id)
}

// Ping passes through.
func (s *Store) Ping(ctx context.Context) error { return s.inner.Ping(ctx) }

// Close leaves the stream, empties the cache and closes inner.
func (s *Store) Close() error {
	s.unsubscribe()
	s.endRefresh()
	<-s.refreshDone
	s.lost.Store(true) // serve nothing from memory after Close
	s.dropAll()
	return s.inner.Close()
}
