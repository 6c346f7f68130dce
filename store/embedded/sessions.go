package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"sessiond"
)

func notFound(what, id string) error {
	return sessiond.Errorf(sessiond.ENOTFOUND, "%s %s not found", what, id)
}

// load returns the stored session id, or nil: from the cache when it has
// it, else from pebble (and then into the cache).
func (s *Store) load(id string) (*sessiond.Session, error) {
	sess, gen := s.cache.get(id)
	if sess != nil {
		return sess, nil
	}
	v, closer, err := s.db.Get(sessionKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, sessiond.Internal(err)
	}
	defer closer.Close()
	sess, err = decodeSession(id, v)
	if err != nil {
		return nil, sessiond.Internal(err)
	}
	s.cache.fill(id, v, gen)
	return sess, nil
}

// exists reports whether key is stored.
func (s *Store) exists(key []byte) (bool, error) {
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, sessiond.Internal(err)
	}
	return true, closer.Close()
}

// findToken returns the stored session whose token hash is hash, or nil.
// The in-memory token map names the candidates (almost always none or
// one); each is read and its token hash compared.
func (s *Store) findToken(hash []byte) (*sessiond.Session, error) {
	first, more := s.mem.tokenCandidates(hash)
	if first == "" {
		return nil, nil
	}
	for i := -1; i < len(more); i++ {
		id := first
		if i >= 0 {
			id = more[i]
		}
		got, err := s.load(id)
		if err != nil {
			return nil, err
		}
		if got != nil && bytes.Equal(got.TokenHash, hash) {
			return got, nil
		}
	}
	return nil, nil
}

// putSession adds to b the record of next, new or replacing the stored
// one. It returns the session cache's entry for the record.
func putSession(b *pebble.Batch, next *sessiond.Session) ([]byte, error) {
	e := entryPrefix(next.ID, sessionSize(next))
	n := len(e)
	e = encodeSession(e, next)
	return e, b.Set(sessionKey(next.ID), e[n:], nil)
}

// removeSession adds to b the deletion of old.
func removeSession(b *pebble.Batch, old *sessiond.Session) error {
	return b.Delete(sessionKey(old.ID), nil)
}

// Create stores a new session. ECONFLICT if the id or the token hash
// exists; EINVALID if the id is empty or longer than 1024 bytes, or the
// token hash is longer than 1024 bytes.
//
// It writes one key, the record (the user index is in memory). Its
// uniqueness checks ask the in-memory index, and read pebble only when the
// 64-bit hash of the id, or of the token hash, is already taken. The id's
// lock is held from those checks to the commit, and so is the token
// hash's, so that of two Creates racing for one id or one token exactly
// one wins. crowded is counted in memory after the record is indexed.
func (s *Store) Create(ctx context.Context, sess *sessiond.Session, userMin int) (crowded bool, err error) {
	if err := s.create(ctx, sess); err != nil {
		return false, err
	}
	if userMin <= 0 || sess.UserID == "" {
		return false, nil
	}
	s.mem.mu.RLock()
	n := s.mem.users.activeCount(userHash(sess.UserID))
	s.mem.mu.RUnlock()
	return n >= userMin, nil
}

func (s *Store) create(ctx context.Context, sess *sessiond.Session) error {
	if sess.ID == "" || len(sess.ID) > maxIDLen {
		return sessiond.Errorf(sessiond.EINVALID, "session id must be 1 to %d bytes", maxIDLen)
	}
	if len(sess.TokenHash) > maxTokenHashLen {
		return sessiond.Errorf(sessiond.EINVALID, "token hash is longer than %d bytes", maxTokenHashLen)
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.exit()

	b := s.db.NewBatch()
	entry, err := putSession(b, sess)
	if err != nil {
		b.Close()
		return sessiond.Internal(err)
	}

	mu := &s.ids[s.idStripe(sess.ID)]
	mu.Lock()
	defer mu.Unlock()
	if s.mem.mayHaveID(sess.ID) {
		if found, err := s.exists(sessionKey(sess.ID)); err != nil || found {
			b.Close()
			if err != nil {
				return err
			}
			return sessiond.Errorf(sessiond.ECONFLICT, "session %s already exists", sess.ID)
		}
	}
	if len(sess.TokenHash) > 0 {
		// Token stripes are only ever taken while holding an id stripe,
		// so the two cannot deadlock.
		tmu := &s.tokens[maphash.Bytes(s.seed, sess.TokenHash)%numStripes]
		tmu.Lock()
		defer tmu.Unlock()
		if found, err := s.findToken(sess.TokenHash); err != nil || found != nil {
			b.Close()
			if err != nil {
				return err
			}
			return sessiond.Errorf(sessiond.ECONFLICT, "token already exists")
		}
	}
	if err := s.commit(b, true); err != nil {
		return err
	}
	s.mem.update(func(m *memIndex) { m.add(itemOf(sess), sess.TokenHash) })
	s.cache.set(sess.ID, entry)
	return nil
}

// Get returns the session with the id. ENOTFOUND if there is none.
func (s *Store) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	sess, err := s.load(id)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, notFound("session", id)
	}
	return sess, nil
}

// GetByTokenHash returns the session with the token hash. ENOTFOUND if
// there is none. The in-memory token map names the candidates, so a token
// nobody has costs no pebble read, and one that a session has costs one.
func (s *Store) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	var sess *sessiond.Session
	if len(hash) > 0 {
		var err error
		if sess, err = s.findToken(hash); err != nil {
			return nil, err
		}
	}
	if sess == nil {
		return nil, sessiond.Errorf(sessiond.ENOTFOUND, "token not found")
	}
	return sess, nil
}

// callUpdate runs fn, turning a panic into an internal error.
func callUpdate(fn sessiond.UpdateFunc, sess *sessiond.Session) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = sessiond.Internal(fmt.Errorf("panic in update function: %v", r))
		}
	}()
	return fn(sess)
}

// Update reads the session, calls fn on a copy and stores the copy unless
// fn fails, all under the session's lock. fn runs once, on the caller's
// goroutine.
func (s *Store) Update(ctx context.Context, id string, fn sessiond.UpdateFunc) (*sessiond.Session, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	mu := &s.ids[s.idStripe(id)]
	mu.Lock()
	defer mu.Unlock()

	cur, err := s.load(id)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound("session", id)
	}
	next := cur.Clone()
	if err := callUpdate(fn, next); errors.Is(err, sessiond.ErrUnchanged) {
		return cur, nil
	} else if err != nil {
		return nil, err
	}
	next.ID, next.TokenHash = cur.ID, cur.TokenHash
	b := s.db.NewBatch()
	entry, err := putSession(b, next)
	if err != nil {
		b.Close()
		return nil, sessiond.Internal(err)
	}
	if err := s.commit(b, true); err != nil {
		return nil, err
	}
	s.mem.update(func(m *memIndex) { m.replace(itemOf(cur), itemOf(next)) })
	s.cache.set(next.ID, entry)
	return next.Clone(), nil // fn may hold on to next
}

// Delete removes the session and returns it. ENOTFOUND if there is none.
func (s *Store) Delete(ctx context.Context, id string) (*sessiond.Session, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	mu := &s.ids[s.idStripe(id)]
	mu.Lock()
	defer mu.Unlock()

	cur, err := s.load(id)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound("session", id)
	}
	b := s.db.NewBatch()
	if err := errors.Join(removeSession(b, cur), s.removeStats(b, id)); err != nil {
		b.Close()
		return nil, sessiond.Internal(err)
	}
	if err := s.commit(b, true); err != nil {
		return nil, err
	}
	s.forgetStats(id)
	s.mem.update(func(m *memIndex) { m.drop(itemOf(cur), cur.TokenHash) })
	s.cache.drop(id)
	return cur, nil
}

// Touch raises request_time, patching it in place in each record. Touches
// are applied touchChunk sessions at a time, each chunk under the locks of
// its sessions and in one batch committed without waiting for fsync (so
// that no lock is held across an fsync); one WAL fsync at the end, which
// covers every earlier record, makes them all durable before Touch returns.
func (s *Store) Touch(ctx context.Context, touches []sessiond.Touch) error {
	if len(touches) == 0 {
		return nil
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.exit()
	// The latest time per id.
	latest := make(map[string]time.Time, len(touches))
	for _, tc := range touches {
		if t, ok := latest[tc.ID]; !ok || tc.Time.After(t) {
			latest[tc.ID] = tc.Time
		}
	}
	todo := make([]sessiond.Touch, 0, len(latest))
	for id, t := range latest {
		todo = append(todo, sessiond.Touch{ID: id, Time: t})
	}
	wrote := false
	for len(todo) > 0 {
		chunk := todo[:min(len(todo), touchChunk)]
		todo = todo[len(chunk):]
		n, err := s.touchChunk(chunk)
		if err != nil {
			return err
		}
		wrote = wrote || n > 0
	}
	if !wrote {
		return nil
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store write failed", Err: err}
	}
	return nil
}

// touchChunk is how many sessions one batch of Touch patches.
const touchChunk = 256

// touchChunk applies the touches of some sessions, under their locks, and
// returns how many sessions it changed. It reads each record from the
// session cache when it is there.
func (s *Store) touchChunk(touches []sessiond.Touch) (int, error) {
	ids := make([]string, len(touches))
	for i, tc := range touches {
		ids[i] = tc.ID
	}
	unlock := s.lockIDs(ids)
	defer unlock()
	b := s.db.NewBatch()
	var (
		items   []item
		entries [][]byte
	)
	for _, tc := range touches {
		key := sessionKey(tc.ID)
		v, closer, err := s.record(tc.ID)
		if err != nil {
			b.Close()
			return 0, err
		}
		if v == nil {
			continue
		}
		if len(v) < offVar || v[0] != recordV1 {
			_, err := decodeSession(tc.ID, v)
			closer()
			b.Close()
			return 0, sessiond.Internal(err)
		}
		if v[1]&flagActive == 0 || !tc.Time.After(getTime(v[offRequest:])) {
			closer()
			continue
		}
		e := makeEntry(tc.ID, v) // the patched record, and its cache entry
		closer()
		rec := e[len(e)-len(v):]
		putTime(rec[offRequest:], tc.Time)
		if err := b.Set(key, rec, nil); err != nil {
			b.Close()
			return 0, sessiond.Internal(err)
		}
		it, _ := itemOfRecord(tc.ID, rec)
		items = append(items, it)
		entries = append(entries, e)
	}
	if len(items) == 0 {
		b.Close()
		return 0, nil
	}
	if err := s.commit(b, false); err != nil {
		return 0, err
	}
	s.mem.update(func(m *memIndex) {
		for _, it := range items {
			m.tree.ReplaceOrInsert(it) // same open_time: replaces
		}
	})
	for i, it := range items {
		s.cache.replace(it.id, entries[i])
	}
	return len(items), nil
}

// record returns the stored record of session id, or nil, and the function
// that releases it: from the cache when it is there, else from pebble.
// Read-modify-writes call it holding the session's lock; List, which is no
// snapshot, without.
func (s *Store) record(id string) ([]byte, func(), error) {
	if rec := s.cache.record(id); rec != nil {
		return rec, func() {}, nil
	}
	v, closer, err := s.db.Get(sessionKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, sessiond.Internal(err)
	}
	return v, func() { closer.Close() }, nil
}

// UserSessions returns the active sessions of the user and API key when
// there are at least min. The in-memory user index answers the common case,
// a user with fewer active sessions than min, with one map lookup;
// otherwise the index's items name the active ones, and their
// records, read without decoding, are checked for the user_id (which
// another user's may share the hash of) and the API key.
func (s *Store) UserSessions(ctx context.Context, apiKeyID, userID string, min int) ([]sessiond.UserSession, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	h := userHash(userID)
	var active []userEntry
	s.mem.mu.RLock()
	if s.mem.users.activeCount(h) < min {
		s.mem.mu.RUnlock()
		return nil, nil
	}
	s.mem.users.each1(h, func(e userEntry) {
		if it, ok := s.mem.tree.Get(item{id: e.id, open: e.open}); ok && it.active {
			active = append(active, e)
		}
	})
	s.mem.mu.RUnlock()
	if len(active) < min {
		return nil, nil
	}
	out := make([]sessiond.UserSession, 0, len(active))
	for _, e := range active {
		v, release, err := s.record(e.id)
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue // deleted meanwhile
		}
		us, ok, err := userSessionOf(e.id, v, apiKeyID, userID)
		release()
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, us)
		}
	}
	if len(out) < min {
		return nil, nil
	}
	return out, nil
}

// userSessionOf reads record v of session id: ok when it is active and has
// the user_id and API key id.
func userSessionOf(id string, v []byte, apiKeyID, userID string) (sessiond.UserSession, bool, error) {
	if len(v) < offVar || v[0] != recordV1 {
		_, err := decodeSession(id, v)
		return sessiond.UserSession{}, false, sessiond.Internal(err)
	}
	r := fieldReader{b: v, off: offVar}
	var f [6][2]int // user_id, user_name, close_reason, address, client, api_key_id
	for i := range f {
		f[i][0], f[i][1] = r.next()
	}
	if r.err != nil {
		return sessiond.UserSession{}, false, sessiond.Internal(fmt.Errorf("session %s: %w", id, errCorrupt))
	}
	if v[1]&flagActive == 0 || string(v[f[0][0]:f[0][1]]) != userID || string(v[f[5][0]:f[5][1]]) != apiKeyID {
		return sessiond.UserSession{}, false, nil
	}
	return sessiond.UserSession{ID: id, OpenTime: getTime(v[offOpen:]), RequestTime: getTime(v[offRequest:]),
		ExpireTime: getTime(v[offExpire:])}, true, nil
}

// CloseExpired finds the dead sessions in the in-memory index and closes
// each at the instant it died (sessiond.Session.Deadline), SweepBatch per
// synced batch.
func (s *Store) CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	var due []string
	s.mem.snapshot().Ascend(func(it item) bool {
		if it.dead(now, idle) {
			due = append(due, it.id)
		}
		return true
	})
	return s.sweep(ctx, due, func(cur *sessiond.Session) (*sessiond.Session, bool) {
		if !cur.Active || cur.Alive(now, idle) {
			return nil, false
		}
		next := cur.Clone()
		sessiond.ApplyClose(next, cur.Deadline(idle), sessiond.ReasonExpired)
		return next, true
	})
}

// Purge finds the sessions closed before closedBefore in the in-memory
// index and deletes them, SweepBatch per synced batch.
func (s *Store) Purge(ctx context.Context, closedBefore time.Time) ([]string, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	bound := stampOf(closedBefore)
	var due []string
	s.mem.snapshot().Ascend(func(it item) bool {
		if !it.active && it.last.compare(bound) < 0 {
			due = append(due, it.id)
		}
		return true
	})
	return s.sweep(ctx, due, func(cur *sessiond.Session) (*sessiond.Session, bool) {
		return nil, !cur.Active && cur.CloseTime.Before(closedBefore)
	})
}

// sweep applies fn to the sessions ids, SweepBatch at a time: it locks
// their stripes, reads each, asks fn for its next version (nil to delete
// it; ok false to leave it), commits the batch synced and returns the ids
// changed. The index only proposes: fn decides on the stored session.
func (s *Store) sweep(ctx context.Context, ids []string, fn func(cur *sessiond.Session) (next *sessiond.Session, ok bool)) ([]string, error) {
	var changed []string
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return changed, ctxError(err)
		}
		chunk := ids[:min(len(ids), s.opts.SweepBatch)]
		ids = ids[len(chunk):]
		got, err := s.sweepChunk(chunk, fn)
		changed = append(changed, got...)
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
}

func (s *Store) sweepChunk(ids []string, fn func(cur *sessiond.Session) (*sessiond.Session, bool)) ([]string, error) {
	unlock := s.lockIDs(ids)
	defer unlock()
	type change struct {
		old   item
		next  *item  // nil when deleted
		token []byte // of a deleted session
	}
	var (
		changes []change
		changed []string
	)
	b := s.db.NewBatch()
	for _, id := range ids {
		cur, err := s.load(id)
		if err != nil {
			b.Close()
			return nil, err
		}
		if cur == nil {
			continue
		}
		next, ok := fn(cur)
		if !ok {
			continue
		}
		c := change{old: itemOf(cur)}
		if next == nil {
			err = errors.Join(removeSession(b, cur), s.removeStats(b, id))
			c.token = cur.TokenHash
		} else {
			_, err = putSession(b, next)
			it := itemOf(next)
			c.next = &it
		}
		if err != nil {
			b.Close()
			return nil, sessiond.Internal(err)
		}
		changes = append(changes, c)
		changed = append(changed, id)
	}
	if len(changes) == 0 {
		b.Close()
		return nil, nil
	}
	if err := s.commit(b, true); err != nil {
		return nil, err
	}
	for _, id := range changed {
		s.cache.drop(id)
	}
	for _, c := range changes {
		if c.next == nil {
			s.forgetStats(c.old.id)
		}
	}
	s.mem.update(func(m *memIndex) {
		for _, c := range changes {
			if c.next == nil {
				m.drop(c.old, c.token)
			} else {
				m.replace(c.old, *c.next)
			}
		}
	})
	return changed, nil
}
