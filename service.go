package sessiond

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"
)

// Config holds the rules of the Service. Zero values take the defaults.
type Config struct {
	// IdleTimeout: a session unused for longer is dead. Default 24h.
	IdleTimeout time.Duration
	// Retention: closed sessions are purged this long after closing.
	// Default 168h (7 days).
	Retention time.Duration
	// SweepInterval: how often dead sessions are closed and old ones purged.
	// Default 1m.
	SweepInterval time.Duration
	// TouchInterval: how often coalesced request_time updates are written.
	// Default 1s. This bounds what a crash may lose of request_time.
	TouchInterval time.Duration
	// DefaultExpiresIn applies to Session API opens that give none.
	// Default 720h (30 days).
	DefaultExpiresIn time.Duration
	// MaxExpiresIn bounds every expires_in. Default 8760h (365 days).
	MaxExpiresIn time.Duration
	// DefaultTake and MaxTake bound list pages. Defaults 100 and 1000.
	DefaultTake int
	MaxTake     int
	// APIKeyCacheTTL bounds how long another instance's revocation of a
	// key can go unseen here. Default 5s.
	APIKeyCacheTTL time.Duration
	// DataLimit bounds the size in bytes of a session's user and data
	// together. Default 64 KiB.
	DataLimit int
	// MaxUserSessions bounds the open sessions of one user (per API key
	// and non-empty user_id): opening one more closes the user's least
	// recently used one (ReasonEvicted). Default 1000.
	MaxUserSessions int
}

// DefaultConfig returns the rules' defaults: the one place they are
// defined (the command line shows these).
func DefaultConfig() Config {
	return Config{
		IdleTimeout:      24 * time.Hour,
		Retention:        7 * 24 * time.Hour,
		SweepInterval:    time.Minute,
		TouchInterval:    time.Second,
		DefaultExpiresIn: 30 * 24 * time.Hour,
		MaxExpiresIn:     365 * 24 * time.Hour,
		DefaultTake:      100,
		MaxTake:          1000,
		APIKeyCacheTTL:   5 * time.Second,
		DataLimit:        64 << 10,
		MaxUserSessions:  1000,
	}
}

// withDefaults fills the zero (or negative) fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	dur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	num := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	dur(&c.IdleTimeout, d.IdleTimeout)
	dur(&c.Retention, d.Retention)
	dur(&c.SweepInterval, d.SweepInterval)
	dur(&c.TouchInterval, d.TouchInterval)
	dur(&c.DefaultExpiresIn, d.DefaultExpiresIn)
	dur(&c.MaxExpiresIn, d.MaxExpiresIn)
	dur(&c.APIKeyCacheTTL, d.APIKeyCacheTTL)
	num(&c.DefaultTake, d.DefaultTake)
	num(&c.MaxTake, d.MaxTake)
	num(&c.DataLimit, d.DataLimit)
	num(&c.MaxUserSessions, d.MaxUserSessions)
	return c
}

// Service holds every rule of the session model. All API dialects call it;
// it calls the Store, and tells every change it makes on the event stream.
// Its parts are split by concern: the rules here, authentication (auth.go)
// and the API-key cache (keys.go), touch coalescing (touch.go), gateway
// statistics (stats.go) and the per-user limit (limits.go).
type Service struct {
	store  Store
	stream Stream
	clock  Clock
	cfg    Config
	log    *slog.Logger

	touchMu sync.Mutex
	touches map[string]time.Time // pending request_time updates

	keys     keyCache
	stats    connStats
	activity ioActivity // recent gateway requests (activity.go)
	users    userLimiter

	unsubscribe func()
	stop        chan struct{}
	done        sync.WaitGroup
	stopOnce    sync.Once
}

// NewService returns a Service over store, telling its events on the
// store's stream if it is shared (Streamer) and on an in-process one
// otherwise. Call Start to run its background loops and Stop to stop them
// and flush pending writes.
func NewService(store Store, clock Clock, cfg Config, log *slog.Logger) *Service {
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var stream Stream
	if sh, ok := store.(Streamer); ok {
		stream = sh.Stream()
	} else {
		stream = NewLocalStream(NewID())
	}
	s := &Service{
		store:   store,
		stream:  stream,
		clock:   clock,
		cfg:     cfg.withDefaults(),
		log:     log,
		touches: make(map[string]time.Time),
		keys:    keyCache{keys: make(map[string]cachedKey)},
		stats:   connStats{pending: make(map[statKey]*ConnDelta)},
		users:   userLimiter{seed: maphash.MakeSeed()},
		stop:    make(chan struct{}),
	}
	s.unsubscribe = stream.Subscribe(s.onEvents)
	return s
}

// onEvents keeps this instance's memory right: the key cache, and pending
// touches of sessions that ended (on any instance).
func (s *Service) onEvents(evs []Event) {
	s.keys.onEvents(evs)
	for _, e := range evs {
		if e.Ends() {
			s.dropPending(e.SessionID)
		}
	}
}

// publish tells evs on the stream. The writes they describe are committed,
// so a failure to tell other instances is logged, not returned: the
// stream's contract makes them read through until it has caught up.
func (s *Service) publish(ctx context.Context, evs ...Event) {
	if len(evs) == 0 {
		return
	}
	if err := s.stream.Publish(context.WithoutCancel(ctx), evs...); err != nil {
		s.log.Error("telling other instances of session events", "err", err, "events", len(evs))
	}
}

// Config returns the effective configuration (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

// Store returns the underlying store.
func (s *Service) Store() Store { return s.store }

// Events returns the stream of session events: subscribe to it to learn of
// every change on every instance.
func (s *Service) Events() Stream { return s.stream }

// Now returns the service clock's time.
func (s *Service) Now() time.Time { return s.clock.Now() }

// OnEnd registers fn to be called with the ids of sessions that stopped
// being active or were deleted (closed, expired, forced, revoked, evicted,
// deleted, purged), on any instance. It is a subscription to the event
// stream; fn must not block long.
func (s *Service) OnEnd(fn func(ids []string)) {
	s.stream.Subscribe(func(evs []Event) {
		var ids []string
		for _, e := range evs {
			if e.Ends() {
				ids = append(ids, e.SessionID)
			}
		}
		if len(ids) > 0 {
			fn(ids)
		}
	})
}

// Start runs the flusher of touches and statistics and the sweeper until
// Stop.
func (s *Service) Start() {
	s.done.Add(2)
	go s.loop(s.cfg.TouchInterval, func() { s.Flush(context.Background()) })
	go s.loop(s.cfg.SweepInterval, func() { s.Sweep(context.Background()) })
}

func (s *Service) loop(every time.Duration, fn func()) {
	defer s.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// Flush writes pending touches and gateway statistics.
func (s *Service) Flush(ctx context.Context) error {
	return errors.Join(s.FlushTouches(ctx), s.FlushStats(ctx))
}

// Stop stops the background loops, flushes pending touches and
// statistics, and leaves the stream. It does not close the store.
func (s *Service) Stop() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.done.Wait()
	err := s.Flush(context.Background())
	s.unsubscribe()
	return err
}

// ---- opening and reading ----

// OpenRequest describes a session to open.
type OpenRequest struct {
	UserID, UserName string
	Address, Client  string
	User, Data       json.RawMessage
	// ExpiresIn sets ExpireTime = now + ExpiresIn; 0 means no absolute end.
	// It is bounded by Config.MaxExpiresIn; negative is invalid.
	ExpiresIn time.Duration
	APIKeyID  string
}

// Open opens a session and returns it with its token, which is shown this
// once and stored only as a hash.
func (s *Service) Open(ctx context.Context, req OpenRequest) (*Session, string, error) {
	if req.ExpiresIn < 0 {
		return nil, "", Errorf(EINVALID, "expires_in must not be negative")
	}
	if err := checkStrings("user_id", req.UserID, "user_name", req.UserName, "address", req.Address,
		"client", req.Client, "api_key_id", req.APIKeyID); err != nil {
		return nil, "", err
	}
	if err := s.checkValues(req.User, req.Data); err != nil {
		return nil, "", err
	}

	if req.ExpiresIn > s.cfg.MaxExpiresIn {
		req.ExpiresIn = s.cfg.MaxExpiresIn
	}
	now := s.clock.Now()
	token := NewSecret()
	id := ""
	if c, ok := s.store.(IDChooser); ok {
		id = c.NewSessionID(req.APIKeyID, req.UserID)
	} else {
		id = NewID()
	}
	sess := &Session{
		ID:          id,
		UserID:      req.UserID,
		UserName:    req.UserName,
		Active:      true,
		OpenTime:    now,
		RequestTime: now,
		Address:     req.Address,
		Client:      req.Client,
		User:        nullToNil(req.User),
		Data:        nullToNil(req.Data),
		APIKeyID:    req.APIKeyID,
		TokenHash:   HashSecret(token),
	}
	if req.ExpiresIn > 0 {
		sess.ExpireTime = now.Add(req.ExpiresIn)
	}
	crowded, err := s.store.Create(ctx, sess, s.cfg.MaxUserSessions+1)
	if err != nil {
		return nil, "", err
	}
	s.publish(ctx, Event{Kind: EventOpened, SessionID: sess.ID, APIKeyID: sess.APIKeyID, UserID: sess.UserID, Time: now})
	if crowded && sess.UserID != "" {
		// The session is stored: a failure here is logged, and the next
		// open of the user closes what is over the limit.
		if err := s.keepUserLimit(ctx, sess); err != nil {
			s.log.Error("closing sessions of a user over the limit", "err", err)
		}
	}
	return sess, token, nil
}

// Get returns the session as its callers should see it: with pending
// request_time applied and, if it is dead but not yet swept, shown closed.
func (s *Service) Get(ctx context.Context, id string) (*Session, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	sess, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.view(sess), nil
}

// List returns a page of sessions matching f. Take 0 means the default;
// take above the maximum is cut to it; negative skip or take is invalid.
func (s *Service) List(ctx context.Context, f Filter, p Paging) (*Page, error) {
	if p.Skip < 0 || p.Take < 0 {
		return nil, Errorf(EINVALID, "skip and take must not be negative")
	}
	if p.Take == 0 {
		p.Take = s.cfg.DefaultTake
	}
	if p.Take > s.cfg.MaxTake {
		p.Take = s.cfg.MaxTake
	}
	switch f.State {
	case "", StateActive, StateClosed, StateExpired:
	default:
		return nil, Errorf(EINVALID, "state must be one of active, closed, expired")
	}
	if f.Active != nil || f.State != "" {
		// The store judges liveness from stored request times: write the
		// pending ones first so that List agrees with Get.
		if err := s.FlushTouches(ctx); err != nil {
			return nil, err
		}
	}
	f.Now = s.clock.Now()
	f.IdleTimeout = s.cfg.IdleTimeout
	page, err := s.store.List(ctx, f, p)
	if err != nil {
		return nil, err
	}
	for i, sess := range page.Data {
		page.Data[i] = s.view(sess)
	}
	return page, nil
}

// view applies pending touches and shows a dead, unswept session as the
// sweep will leave it: closed at its deadline, the instant it died.
func (s *Service) view(sess *Session) *Session {
	s.applyPending(sess)
	now := s.clock.Now()
	if sess.Active && !sess.Alive(now, s.cfg.IdleTimeout) {
		closeSession(sess, sess.Deadline(s.cfg.IdleTimeout), ReasonExpired)
	}
	return sess
}

// ---- changing ----

// StoreData replaces the data of an alive session.
func (s *Service) StoreData(ctx context.Context, id string, data json.RawMessage) (*Session, error) {
	if err := s.checkValues(data, nil); err != nil {
		return nil, err
	}
	return s.change(ctx, id, func(sess *Session) error {
		if err := s.checkSize(sess.User, data); err != nil {
			return err
		}
		sess.Data = nullToNil(data)
		return nil
	})
}

// UpdateUser replaces the cached user of an alive session.
func (s *Service) UpdateUser(ctx context.Context, id string, user json.RawMessage) (*Session, error) {
	if err := s.checkValues(user, nil); err != nil {
		return nil, err
	}
	return s.change(ctx, id, func(sess *Session) error {
		if err := s.checkSize(user, sess.Data); err != nil {
			return err
		}
		sess.User = nullToNil(user)
		return nil
	})
}

func (s *Service) change(ctx context.Context, id string, set func(*Session) error) (*Session, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	sess, err := s.store.Update(ctx, id, func(sess *Session) error {
		s.applyPending(sess)
		if !sess.Alive(now, s.cfg.IdleTimeout) {
			return &Error{Code: ECLOSED, Message: "session " + id + " is closed or expired", Details: map[string]any{"session_id": id}}
		}
		if err := set(sess); err != nil {
			return err
		}
		sess.RequestTime = maxTime(sess.RequestTime, now)
		return nil
	})
	if IsNotFound(err) {
		// Named in the details, as ECLOSED is: clients read it there.
		return nil, &Error{Code: ENOTFOUND, Message: "session " + id + " not found", Details: map[string]any{"session_id": id}, Err: err}
	}
	if err != nil {
		return nil, err
	}
	s.publish(ctx, Event{Kind: EventChanged, SessionID: id, APIKeyID: sess.APIKeyID, UserID: sess.UserID, Time: now})
	return sess, nil
}

// CloseSession closes a session for the given reason (ReasonClosed, ReasonForced,
// ...). Closing a closed session changes nothing and returns it.
func (s *Service) CloseSession(ctx context.Context, id, reason string) (*Session, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	closedAs := "" // the reason this call recorded; set by the last call of fn
	sess, err := s.store.Update(ctx, id, func(sess *Session) error {
		closedAs = ""
		if !sess.Active {
			return ErrUnchanged
		}
		s.applyPending(sess)
		if sess.Alive(now, s.cfg.IdleTimeout) {
			closeSession(sess, now, reason)
		} else {
			// It died before this close: record that, as the sweep would.
			closeSession(sess, sess.Deadline(s.cfg.IdleTimeout), ReasonExpired)
		}
		closedAs = sess.CloseReason
		return nil
	})
	if err != nil {
		return nil, err
	}
	if closedAs != "" {
		s.publish(ctx, Event{Kind: EventClosed, SessionID: id, APIKeyID: sess.APIKeyID, UserID: sess.UserID, Reason: closedAs, Time: now})
	} else {
		s.dropPending(id)
	}
	return sess, nil
}

// CloseAfter closes the session ttl from now: at once when ttl is 0
// (CloseSession with reason), else by moving its expire_time to now+ttl if
// that is sooner, so that it expires then (reason expired), on every
// instance. A closed session is returned unchanged.
func (s *Service) CloseAfter(ctx context.Context, id string, ttl time.Duration, reason string) (*Session, error) {
	if ttl <= 0 {
		return s.CloseSession(ctx, id, reason)
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	end := now.Add(ttl)
	changed := false
	sess, err := s.store.Update(ctx, id, func(sess *Session) error {
		changed = false
		if !sess.Active || (!sess.ExpireTime.IsZero() && !sess.ExpireTime.After(end)) {
			return ErrUnchanged
		}
		sess.ExpireTime = end
		changed = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if changed {
		s.publish(ctx, Event{Kind: EventChanged, SessionID: id, APIKeyID: sess.APIKeyID, UserID: sess.UserID, Time: now})
	}
	return s.view(sess), nil
}

func closeSession(sess *Session, now time.Time, reason string) {
	sess.Active = false
	sess.CloseTime = now
	sess.RequestTime = now
	sess.CloseReason = reason
	sess.User, sess.Data = nil, nil
}

// ApplyClose applies the close rule to sess in place. Engines that close
// sessions themselves (CloseExpired) use it so that the rule lives once.
func ApplyClose(sess *Session, now time.Time, reason string) { closeSession(sess, now, reason) }

// Delete removes a session and returns it as it was.
func (s *Service) Delete(ctx context.Context, id string) (*Session, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	sess, err := s.store.Delete(ctx, id)
	if err != nil {
		return nil, err
	}
	view := s.view(sess)
	s.publish(ctx, Event{Kind: EventDeleted, SessionID: id, APIKeyID: sess.APIKeyID, UserID: sess.UserID, Time: s.clock.Now()})
	return view, nil
}

// CloseExpired closes every dead session now (the sweep's first half).
func (s *Service) CloseExpired(ctx context.Context) error {
	if err := s.FlushTouches(ctx); err != nil {
		return err
	}
	now := s.clock.Now()
	ids, err := s.store.CloseExpired(ctx, now, s.cfg.IdleTimeout)
	s.publish(ctx, idEvents(ids, EventClosed, ReasonExpired, now)...)
	return err
}

// idEvents returns one event of kind per id.
func idEvents(ids []string, kind EventKind, reason string, now time.Time) []Event {
	evs := make([]Event, len(ids))
	for i, id := range ids {
		evs[i] = Event{Kind: kind, SessionID: id, Reason: reason, Time: now}
	}
	return evs
}

// Sweep closes dead sessions and purges closed ones past retention. It is
// safe on every instance at once: the store decides each session once.
func (s *Service) Sweep(ctx context.Context) {
	if err := s.CloseExpired(ctx); err != nil {
		s.log.Error("sweep: closing expired sessions", "err", err)
	}
	now := s.clock.Now()
	ids, err := s.store.Purge(ctx, now.Add(-s.cfg.Retention))
	if err != nil {
		s.log.Error("sweep: purging closed sessions", "err", err)
	}
	s.publish(ctx, idEvents(ids, EventDeleted, "", now)...)
	s.keys.prune(now, s.cfg.APIKeyCacheTTL)
}

// ---- helpers ----

func ptr[T any](v T) *T { return &v }

// nullToNil turns an empty or JSON null value into nil.
func nullToNil(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

// IsNotFound reports whether err has code ENOTFOUND.
func IsNotFound(err error) bool { return ErrorCode(err) == ENOTFOUND }
