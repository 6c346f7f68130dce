// Package memory is a store engine that keeps everything in process memory.
// It keeps nothing across restarts; it serves tests and throwaway runs, and
// is the simplest reference for the conformance suite.
package memory

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"sessiond"
)

// Store is an in-memory sessiond.Store.
type Store struct {
	mu       sync.RWMutex
	sessions map[string]*sessiond.Session
	byToken  map[string]string              // token hash -> id
	byUser   map[string]map[string]struct{} // user_id -> ids of its active sessions
	keys     map[string]*sessiond.APIKey
	stats    map[string][]sessiond.ConnStat // session id -> by service, ordered
}

var _ sessiond.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		sessions: make(map[string]*sessiond.Session),
		byToken:  make(map[string]string),
		byUser:   make(map[string]map[string]struct{}),
		keys:     make(map[string]*sessiond.APIKey),
		stats:    make(map[string][]sessiond.ConnStat),
	}
}

func notFound(what, id string) error {
	return sessiond.Errorf(sessiond.ENOTFOUND, "%s %s not found", what, id)
}

func (s *Store) Create(ctx context.Context, sess *sessiond.Session, userMin int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sess.ID]; ok {
		return false, sessiond.Errorf(sessiond.ECONFLICT, "session %s already exists", sess.ID)
	}
	if len(sess.TokenHash) > 0 {
		if _, ok := s.byToken[string(sess.TokenHash)]; ok {
			return false, sessiond.Errorf(sessiond.ECONFLICT, "token already exists")
		}
		s.byToken[string(sess.TokenHash)] = sess.ID
	}
	s.sessions[sess.ID] = sess.Clone()
	s.addUser(sess)
	// byUser holds every API key's sessions of the user: at least as many.
	return userMin > 0 && sess.UserID != "" && len(s.byUser[sess.UserID]) >= userMin, nil
}

// addUser and dropUser keep byUser; the caller holds mu for writing.
func (s *Store) addUser(sess *sessiond.Session) {
	if sess.UserID == "" || !sess.Active {
		return
	}
	ids := s.byUser[sess.UserID]
	if ids == nil {
		ids = make(map[string]struct{})
		s.byUser[sess.UserID] = ids
	}
	ids[sess.ID] = struct{}{}
}

func (s *Store) dropUser(sess *sessiond.Session) {
	if ids := s.byUser[sess.UserID]; ids != nil {
		delete(ids, sess.ID)
		if len(ids) == 0 {
			delete(s.byUser, sess.UserID)
		}
	}
}

func (s *Store) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sess, ok := s.sessions[id]
	if !ok {
		return nil, notFound("session", id)
	}
	return sess.Clone(), nil
}

func (s *Store) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.byToken[string(hash)]
	if !ok {
		return nil, sessiond.Errorf(sessiond.ENOTFOUND, "token not found")
	}
	return s.sessions[id].Clone(), nil
}

func (s *Store) Update(ctx context.Context, id string, fn sessiond.UpdateFunc) (*sessiond.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.sessions[id]
	if !ok {
		return nil, notFound("session", id)
	}
	next := cur.Clone()
	if err := fn(next); errors.Is(err, sessiond.ErrUnchanged) {
		return cur.Clone(), nil
	} else if err != nil {
		return nil, err
	}
	next.ID, next.TokenHash = cur.ID, cur.TokenHash
	s.sessions[id] = next
	if next.UserID != cur.UserID || next.Active != cur.Active {
		s.dropUser(cur)
		s.addUser(next)
	}
	return next.Clone(), nil
}

func (s *Store) Delete(ctx context.Context, id string) (*sessiond.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return nil, notFound("session", id)
	}
	delete(s.sessions, id)
	delete(s.byToken, string(sess.TokenHash))
	delete(s.stats, id)
	s.dropUser(sess)
	return sess, nil
}

func (s *Store) List(ctx context.Context, f sessiond.Filter, p sessiond.Paging) (*sessiond.Page, error) {
	s.mu.RLock()
	var all []*sessiond.Session
	for _, sess := range s.sessions {
		if f.Match(sess) {
			all = append(all, sess.Clone())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b *sessiond.Session) int {
		if c := b.OpenTime.Compare(a.OpenTime); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	page := &sessiond.Page{Data: []*sessiond.Session{}}
	if p.Total {
		n := int64(len(all))
		page.Total = &n
	}
	if p.Skip < len(all) {
		all = all[p.Skip:]
		if p.Take < len(all) {
			all = all[:p.Take]
		}
		page.Data = all
	}
	return page, nil
}

func (s *Store) Touch(ctx context.Context, touches []sessiond.Touch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range touches {
		if sess, ok := s.sessions[t.ID]; ok && sess.Active && t.Time.After(sess.RequestTime) {
			sess.RequestTime = t.Time
		}
	}
	return nil
}

func (s *Store) UserSessions(ctx context.Context, apiKeyID, userID string, min int) ([]sessiond.UserSession, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := s.byUser[userID]
	if len(ids) < min {
		return nil, nil
	}
	out := make([]sessiond.UserSession, 0, len(ids))
	for id := range ids {
		if sess := s.sessions[id]; sess.Active && sess.APIKeyID == apiKeyID {
			out = append(out, sessiond.UserSession{ID: id, OpenTime: sess.OpenTime, RequestTime: sess.RequestTime, ExpireTime: sess.ExpireTime})
		}
	}
	if len(out) < min {
		return nil, nil
	}
	return out, nil
}

func (s *Store) CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, sess := range s.sessions {
		if sess.Active && !sess.Alive(now, idle) {
			s.dropUser(sess)
			sessiond.ApplyClose(sess, sess.Deadline(idle), sessiond.ReasonExpired)
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (s *Store) Purge(ctx context.Context, closedBefore time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, sess := range s.sessions {
		if !sess.Active && sess.CloseTime.Before(closedBefore) {
			delete(s.sessions, id)
			delete(s.byToken, string(sess.TokenHash))
			delete(s.stats, id)
			s.dropUser(sess)
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (s *Store) CreateAPIKey(ctx context.Context, k *sessiond.APIKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.ID]; ok {
		return sessiond.Errorf(sessiond.ECONFLICT, "api key %s already exists", k.ID)
	}
	c := *k
	s.keys[k.ID] = &c
	return nil
}

func (s *Store) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[id]
	if !ok {
		return nil, notFound("api key", id)
	}
	c := *k
	return &c, nil
}

func (s *Store) ListAPIKeys(ctx context.Context) ([]*sessiond.APIKey, error) {
	s.mu.RLock()
	out := make([]*sessiond.APIKey, 0, len(s.keys))
	for _, k := range s.keys {
		c := *k
		out = append(out, &c)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *sessiond.APIKey) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[id]; !ok {
		return notFound("api key", id)
	}
	delete(s.keys, id)
	return nil
}

func (s *Store) AddConnStats(ctx context.Context, deltas []sessiond.ConnDelta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range deltas {
		if _, ok := s.sessions[d.SessionID]; ok {
			s.stats[d.SessionID] = sessiond.AddConnDelta(s.stats[d.SessionID], d)
		}
	}
	return nil
}

func (s *Store) ConnStats(ctx context.Context, sessionID string) ([]sessiond.ConnStat, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.stats[sessionID]), nil
}

func (s *Store) Ping(ctx context.Context) error { return nil }
func (s *Store) Close() error                   { return nil }
