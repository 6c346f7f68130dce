package sessiond

import (
	"context"
	"time"
)

// Touch coalescing: request_time moves on every use of a session, which is
// far too often to write. Touches are kept in memory and written in one
// batch every TouchInterval; reads on this instance see them at once
// (applyPending), other instances after the flush.

// Touch records that the session was used now. It writes nothing at once:
// touches are coalesced in memory and flushed every TouchInterval.
func (s *Service) Touch(id string) { s.touchAt(id, s.clock.Now()) }

// touchAt is Touch at now, for a caller that has read the clock already.
func (s *Service) touchAt(id string, now time.Time) {
	s.touchMu.Lock()
	if t, ok := s.touches[id]; !ok || now.After(t) {
		s.touches[id] = now
	}
	s.touchMu.Unlock()
}

// FlushTouches writes pending touches to the store.
func (s *Service) FlushTouches(ctx context.Context) error {
	s.touchMu.Lock()
	if len(s.touches) == 0 {
		s.touchMu.Unlock()
		return nil
	}
	batch := make([]Touch, 0, len(s.touches))
	for id, t := range s.touches {
		batch = append(batch, Touch{ID: id, Time: t})
	}
	s.touches = make(map[string]time.Time, len(batch))
	s.touchMu.Unlock()
	if err := s.store.Touch(ctx, batch); err != nil {
		// Put them back unless newer ones arrived, so nothing is lost.
		s.touchMu.Lock()
		for _, t := range batch {
			if cur, ok := s.touches[t.ID]; !ok || t.Time.After(cur) {
				s.touches[t.ID] = t.Time
			}
		}
		s.touchMu.Unlock()
		s.log.Error("flushing request times", "err", err, "sessions", len(batch))
		return err
	}
	return nil
}

func (s *Service) applyPending(sess *Session) {
	s.touchMu.Lock()
	t, ok := s.touches[sess.ID]
	s.touchMu.Unlock()
	if ok && sess.Active {
		sess.RequestTime = maxTime(sess.RequestTime, t)
	}
}

func (s *Service) dropPending(id string) {
	s.touchMu.Lock()
	delete(s.touches, id)
	s.touchMu.Unlock()
}
