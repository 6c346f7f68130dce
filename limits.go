package sessiond

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"sync"
)

// The per-user limit (SPEC 10): a user, per API key and non-empty user_id,
// holds at most Config.MaxUserSessions open sessions; opening one more
// closes the user's least recently used session (oldest request_time)
// with ReasonEvicted.
//
// The limit is kept after the Create, not before: an open stores its
// session and, in the same trip to the store, learns whether the user may
// now hold more than the limit (Store.Create's crowded, counted after the
// write). Of any two concurrent opens of a user, the later to count sees
// both sessions stored, so the last of a group of opens sees them all and
// closes what is over the limit: the user ends at the limit, whatever the
// interleaving, and may exceed it only for the moment between a Create
// and its eviction. The common case, a user below the limit, costs no
// more than the Create; only a crowded open takes the user's lock
// (striped by hash of the user, so that two opens do not close one
// session twice or close more than needed), lists the user's sessions
// and closes the least recently used ones.

type userLimiter struct {
	seed  maphash.Seed
	evict [64]sync.Mutex // one user's evictions at a time, by hash of the user
}

// keepUserLimit closes the least recently used sessions of the user of
// the just-opened session sess while the user has more than the limit
// open; it is called when Create found the user crowded. sess itself is
// never closed.
func (s *Service) keepUserLimit(ctx context.Context, sess *Session) error {
	limit := s.cfg.MaxUserSessions
	l := &s.users
	mu := &l.evict[maphash.String(l.seed, sess.UserID)%uint64(len(l.evict))]
	mu.Lock()
	defer mu.Unlock()
	// Under the lock: an eviction that held it may have made room.
	list, err := s.store.UserSessions(ctx, sess.APIKeyID, sess.UserID, limit+1)
	if err != nil || len(list) == 0 {
		return err
	}
	// Dead sessions are not open (the sweep will close them): only alive
	// ones count, judged with the pending request times.
	now := s.clock.Now()
	n := 0
	others := make([]UserSession, 0, len(list))
	for _, us := range list {
		v := Session{ID: us.ID, Active: true, RequestTime: us.RequestTime, ExpireTime: us.ExpireTime}
		s.applyPending(&v)
		if !v.Alive(now, s.cfg.IdleTimeout) {
			continue
		}
		n++
		if us.ID != sess.ID {
			others = append(others, UserSession{ID: us.ID, OpenTime: us.OpenTime, RequestTime: v.RequestTime})
		}
	}
	excess := min(n-limit, len(others))
	if excess <= 0 {
		return nil
	}
	lru := func(a, b UserSession) int {
		if c := a.RequestTime.Compare(b.RequestTime); c != 0 {
			return c
		}
		if c := a.OpenTime.Compare(b.OpenTime); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	}
	if excess <= 4 {
		// Usually one: pick the oldest by scanning rather than sorting all.
		for i := range excess {
			m := i
			for j := i + 1; j < len(others); j++ {
				if lru(others[j], others[m]) < 0 {
					m = j
				}
			}
			others[i], others[m] = others[m], others[i]
		}
	} else {
		slices.SortFunc(others, lru)
	}
	for _, us := range others[:excess] {
		if _, err := s.CloseSession(ctx, us.ID, ReasonEvicted); err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
	}
	s.log.Debug("closed the least recently used sessions of a user over the limit",
		"api_key_id", sess.APIKeyID, "closed", excess)
	return nil
}

// ListChunk is how many sessions ListChunks reads from the store at once.
const ListChunk = 100

// ListChunks reads the page that List(f, p) returns in chunks of at most
// ListChunk sessions and hands each to fn before it reads the next, so that
// an API can write a long page out without holding it whole in memory (a
// session may hold DataLimit bytes). The first chunk carries Total when
// p.Total asks for it, and comes even when empty. It stops at the first
// error, fn's or the store's. The chunks are separate reads, not one
// snapshot: a session opened or closed between two may be missed or seen
// twice, as with pages read one after another.
func (s *Service) ListChunks(ctx context.Context, f Filter, p Paging, fn func(*Page) error) error {
	if p.Take == 0 {
		p.Take = s.cfg.DefaultTake
	}
	take := min(p.Take, s.cfg.MaxTake)
	for got := 0; ; {
		n := min(ListChunk, take-got)
		page, err := s.List(ctx, f, Paging{Skip: p.Skip + got, Take: n, Total: p.Total && got == 0})
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		got += len(page.Data)
		if len(page.Data) < n || got >= take || p.Skip+got < 0 {
			return nil
		}
	}
}
