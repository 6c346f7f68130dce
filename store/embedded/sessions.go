package embedded

import (
	"bytes"
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"sessiond"
)

func notFound(what, id string) error {
	return sessiond.Errorf(sessiond.ENOTFOUND, "%s %s not found", what, id)
}

// load returns the stored session id, or nil.
func (t *txn) load(id string) (*sessiond.Session, error) {
	v := t.sessions.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	sess, err := decodeSession(id, v)
	if err != nil {
		return nil, sessiond.Internal(err)
	}
	return sess, nil
}

// put stores next, which replaces old (nil for a new session), and moves
// its index entries. The token index is written by Create and Delete
// only: the token hash of a session never changes.
func (t *txn) put(old, next *sessiond.Session) error {
	rec := encodeSession(make([]byte, 0, sessionSize(next)), next)
	if err := t.sessions.Put([]byte(next.ID), rec); err != nil {
		return fatal(err)
	}
	return t.moveIndexes(old, next)
}

// moveIndexes replaces the index entries of old by those of next (either
// may be nil).
func (t *txn) moveIndexes(old, next *sessiond.Session) error {
	from, to := sessionIndexes(old), sessionIndexes(next)
	for i := range numIndexes {
		if bytes.Equal(from[i], to[i]) {
			continue
		}
		if from[i] != nil {
			if err := t.indexes[i].Delete(from[i]); err != nil {
				return fatal(err)
			}
		}
		if to[i] != nil {
			if err := t.indexes[i].Put(to[i], empty); err != nil {
				return fatal(err)
			}
		}
	}
	return nil
}

// remove deletes the stored session old and its index entries.
func (t *txn) remove(old *sessiond.Session) error {
	if err := t.sessions.Delete([]byte(old.ID)); err != nil {
		return fatal(err)
	}
	if len(old.TokenHash) > 0 {
		if id := t.tokens.Get(old.TokenHash); id != nil && string(id) == old.ID {
			if err := t.tokens.Delete(old.TokenHash); err != nil {
				return fatal(err)
			}
		}
	}
	return t.moveIndexes(old, nil)
}

// Create stores a new session. ECONFLICT if the id or the token hash
// exists; EINVALID if the id is empty or longer than 1024 bytes, or the
// token hash is longer than 1024 bytes.
func (s *Store) Create(ctx context.Context, sess *sessiond.Session) error {
	if sess.ID == "" || len(sess.ID) > maxIDLen {
		return sessiond.Errorf(sessiond.EINVALID, "session id must be 1 to %d bytes", maxIDLen)
	}
	if len(sess.TokenHash) > maxTokenHashLen {
		return sessiond.Errorf(sessiond.EINVALID, "token hash is longer than %d bytes", maxTokenHashLen)
	}
	next := sess.Clone()
	return s.write(ctx, func(t *txn) error {
		if t.sessions.Get([]byte(next.ID)) != nil {
			return sessiond.Errorf(sessiond.ECONFLICT, "session %s already exists", next.ID)
		}
		if len(next.TokenHash) > 0 {
			if t.tokens.Get(next.TokenHash) != nil {
				return sessiond.Errorf(sessiond.ECONFLICT, "token already exists")
			}
			if err := t.tokens.Put(next.TokenHash, []byte(next.ID)); err != nil {
				return fatal(err)
			}
		}
		return t.put(nil, next)
	})
}

// Get returns the session with the id. ENOTFOUND if there is none.
func (s *Store) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	var sess *sessiond.Session
	err := s.view(ctx, func(t *txn) (err error) {
		sess, err = t.load(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, notFound("session", id)
	}
	return sess, nil
}

// GetByTokenHash returns the session with the token hash. ENOTFOUND if
// there is none.
func (s *Store) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	var sess *sessiond.Session
	err := s.view(ctx, func(t *txn) (err error) {
		if len(hash) == 0 {
			return nil
		}
		id := t.tokenBucket().Get(hash)
		if id == nil {
			return nil
		}
		sess, err = t.load(string(id))
		return err
	})
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, sessiond.Errorf(sessiond.ENOTFOUND, "token not found")
	}
	return sess, nil
}

// Update reads the session, calls fn on a copy and stores the copy unless
// fn fails, all inside one write transaction. fn runs on the committer
// goroutine and may, rarely, run twice (see op); it must not block.
func (s *Store) Update(ctx context.Context, id string, fn sessiond.UpdateFunc) (*sessiond.Session, error) {
	var out *sessiond.Session
	err := s.write(ctx, func(t *txn) error {
		out = nil
		cur, err := t.load(id)
		if err != nil {
			return err
		}
		if cur == nil {
			return notFound("session", id)
		}
		next := cur.Clone()
		if err := fn(next); errors.Is(err, sessiond.ErrUnchanged) {
			out = cur
			return nil
		} else if err != nil {
			return err
		}
		next.ID, next.TokenHash = cur.ID, cur.TokenHash
		if err := t.put(cur, next); err != nil {
			return err
		}
		out = next.Clone() // fn may hold on to next
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes the session and returns it. ENOTFOUND if there is none.
func (s *Store) Delete(ctx context.Context, id string) (*sessiond.Session, error) {
	var out *sessiond.Session
	err := s.write(ctx, func(t *txn) error {
		cur, err := t.load(id)
		if err != nil {
			return err
		}
		if cur == nil {
			return notFound("session", id)
		}
		out = cur
		return t.remove(cur)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// List walks the by_user index when the filter names a user and the
// by_open index otherwise, newest first, within [FromTime, ToTime]; the
// other filters are checked on each session (see matcher), and only the
// sessions of the page are decoded. Without Total it stops at the end of
// the page.
func (s *Store) List(ctx context.Context, f sessiond.Filter, p sessiond.Paging) (*sessiond.Page, error) {
	page := &sessiond.Page{Data: []*sessiond.Session{}}
	var total int64
	skip, take := max(p.Skip, 0), max(p.Take, 0)
	if take == 0 && !p.Total {
		return page, s.view(ctx, func(*txn) error { return nil })
	}
	m := newMatcher(&f)
	err := s.view(ctx, func(t *txn) error {
		if useScan(&f, m, p) {
			var err error
			total, page.Data, err = listScan(t, m, skip, take)
			return err
		}
		index, prefix := ixOpen, []byte(nil)
		if f.UserID != "" {
			index, prefix = ixUser, userKey(nil, f.UserID)
		}
		lo, hi := timeKey(f.FromTime, minTimeKey), timeKey(f.ToTime, maxTimeKey)
		records := t.sessions.Cursor() // one cursor for every lookup: Get allocates one each
		return walkDesc(t.index(index).Cursor(), prefix, lo, hi, func(id []byte) (bool, error) {
			inPage := total >= int64(skip) && len(page.Data) < take
			var v []byte
			if !m.keyOnly || inPage {
				k, val := records.Seek(id)
				if !bytes.Equal(k, id) {
					return true, nil // cannot happen: indexes change with their sessions
				}
				v = val
			}
			match, sess, err := m.match(id, v)
			if err != nil || !match {
				return err == nil, err
			}
			total++
			if inPage {
				if sess == nil {
					var err error
					if sess, err = decodeSession(string(id), v); err != nil {
						return false, sessiond.Internal(err)
					}
				}
				page.Data = append(page.Data, sess)
			}
			return p.Total || len(page.Data) < take, nil
		})
	})
	if err != nil {
		return nil, err
	}
	if p.Total {
		page.Total = &total
	}
	return page, nil
}

// Touch raises request_time in one write transaction.
func (s *Store) Touch(ctx context.Context, touches []sessiond.Touch) error {
	if len(touches) == 0 {
		return nil
	}
	return s.write(ctx, func(t *txn) error {
		for _, tc := range touches {
			cur, err := t.load(tc.ID)
			if err != nil {
				return fatal(err) // earlier touches are written already
			}
			if cur == nil || !cur.Active || !tc.Time.After(cur.RequestTime) {
				continue
			}
			next := cur.Clone()
			next.RequestTime = tc.Time
			if err := t.put(cur, next); err != nil {
				return err
			}
		}
		return nil
	})
}

// CloseExpired walks the by_request index up to now-idle (sessions dead
// by the idle timeout; the whole grain holding now-idle, see
// requestGrain) and the by_expire index up to now (dead by expire_time),
// SweepBatch sessions per transaction, and closes those that are dead, at
// the instant they died (sessiond.Session.Deadline).
// Closed sessions leave both indexes, so the walk never visits them.
func (s *Store) CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error) {
	closeDead := func(t *txn, sess *sessiond.Session) (bool, error) {
		if !sess.Active || sess.Alive(now, idle) {
			return false, nil
		}
		next := sess.Clone()
		sessiond.ApplyClose(next, sess.Deadline(idle), sessiond.ReasonExpired)
		return true, t.put(sess, next)
	}
	var ids []string
	for _, w := range []struct {
		index int
		bound time.Time
		idAt  int
	}{
		// Keys in the grain of now-idle may be dead: end after it.
		{ixRequest, requestKeyTime(now.Add(-idle)).Add(requestGrain), 2 * timeLen},
		{ixExpire, now, timeLen},
	} {
		got, err := s.sweep(ctx, w.index, w.bound, w.idAt, closeDead)
		ids = append(ids, got...)
		if err != nil {
			return ids, err
		}
	}
	return ids, nil
}

// Purge walks the by_close index up to closedBefore.
func (s *Store) Purge(ctx context.Context, closedBefore time.Time) ([]string, error) {
	return s.sweep(ctx, ixClose, closedBefore, timeLen, func(t *txn, sess *sessiond.Session) (bool, error) {
		if sess.Active || !sess.CloseTime.Before(closedBefore) {
			return false, nil
		}
		return true, t.remove(sess)
	})
}

// sweep applies fn to the sessions whose key in the time index starts
// with a time strictly before bound, oldest first, SweepBatch per
// transaction, and returns the ids for which fn reported a change; the id
// is at idAt in the keys. fn decides on the session itself: the index
// only narrows the search. fn may change the index being walked: each
// transaction resumes after the last key the previous one read.
func (s *Store) sweep(ctx context.Context, index int, bound time.Time, idAt int, fn func(*txn, *sessiond.Session) (bool, error)) ([]string, error) {
	limit := appendTime(nil, bound)
	// seekFrom places c on the first key after the previous transaction's
	// last one.
	seekFrom := func(c *bolt.Cursor, after []byte) []byte {
		if after == nil {
			k, _ := c.First()
			return k
		}
		k, _ := c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, _ = c.Next()
		}
		return k
	}
	var ids []string
	var after []byte
	for {
		// Most sweeps find nothing: look first without a write, which
		// would cost a commit.
		var pending bool
		err := s.view(ctx, func(t *txn) error {
			k := seekFrom(t.index(index).Cursor(), after)
			pending = k != nil && bytes.Compare(k[:timeLen], limit) < 0
			return nil
		})
		if err != nil || !pending {
			return ids, err
		}
		var changed []string
		var last []byte
		more := false
		err = s.write(ctx, func(t *txn) error {
			changed, last, more = nil, nil, false
			c := t.indexes[index].Cursor()
			k := seekFrom(c, after)
			// Gather first: a cursor must not walk a bucket being changed.
			var batch []string
			for ; k != nil && bytes.Compare(k[:timeLen], limit) < 0; k, _ = c.Next() {
				if len(batch) == s.opts.SweepBatch {
					more = true
					break
				}
				batch = append(batch, string(k[idAt:]))
				last = bytes.Clone(k)
			}
			for _, id := range batch {
				sess, err := t.load(id)
				if err != nil {
					return fatal(err) // earlier ones are written already
				}
				if sess == nil {
					continue
				}
				ok, err := fn(t, sess)
				if err != nil {
					return err
				}
				if ok {
					changed = append(changed, id)
				}
			}
			return nil
		})
		if err != nil {
			return ids, err
		}
		ids = append(ids, changed...)
		if !more {
			return ids, nil
		}
		after = last
	}
}
