package sessiond

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"sort"
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

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.IdleTimeout, 24*time.Hour)
	def(&c.Retention, 7*24*time.Hour)
	def(&c.SweepInterval, time.Minute)
	def(&c.TouchInterval, time.Second)
	def(&c.DefaultExpiresIn, 30*24*time.Hour)
	def(&c.MaxExpiresIn, 365*24*time.Hour)
	def(&c.APIKeyCacheTTL, 5*time.Second)
	if c.DefaultTake <= 0 {
		c.DefaultTake = 100
	}
	if c.MaxTake <= 0 {
		c.MaxTake = 1000
	}
	if c.DataLimit <= 0 {
		c.DataLimit = 64 << 10
	}
	if c.MaxUserSessions <= 0 {
		c.MaxUserSessions = 1000
	}
	return c
}

// Service holds every rule of the session model. All API dialects call it;
// it calls the Store.
type Service struct {
	store Store
	clock Clock
	cfg   Config
	log   *slog.Logger

	touchMu sync.Mutex
	touches map[string]time.Time // pending request_time updates

	keyMu sync.Mutex
	keys  map[string]cachedKey
	// unknownKeys holds, oldest first from unknownNext, the ids cached as
	// unknown by apiKey, so that no more than maxUnknownKeys of them are.
	unknownKeys []cachedID
	unknownNext int

	stats connStats

	users userLimiter

	hookMu sync.RWMutex
	onEnd  []func(ids []string)

	stop     chan struct{}
	done     sync.WaitGroup
	stopOnce sync.Once
}

type cachedKey struct {
	key     *APIKey // nil: known not to exist
	fetched time.Time
}

type cachedID struct {
	id      string
	fetched time.Time
}

// maxUnknownKeys bounds the key ids that apiKey remembers as unknown: any
// client can send any id.
const maxUnknownKeys = 4096

// NewService returns a Service over store. Call Start to run its background
// loops and Stop to stop them and flush pending writes.
func NewService(store Store, clock Clock, cfg Config, log *slog.Logger) *Service {
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		store:   store,
		clock:   clock,
		cfg:     cfg.withDefaults(),
		log:     log,
		touches: make(map[string]time.Time),
		keys:    make(map[string]cachedKey),
		stats:   connStats{m: make(map[string]map[string]*ConnStat)},
		users:   userLimiter{seed: maphash.MakeSeed()},
		stop:    make(chan struct{}),
	}
}

// Config returns the effective configuration (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

// Store returns the underlying store.
func (s *Service) Store() Store { return s.store }

// Now returns the service clock's time.
func (s *Service) Now() time.Time { return s.clock.Now() }

// OnEnd registers fn to be called with the ids of sessions that stopped
// being active or were deleted (closed, expired, forced, revoked, deleted,
// purged). Used to remove session directories. fn must not block long.
func (s *Service) OnEnd(fn func(ids []string)) {
	s.hookMu.Lock()
	s.onEnd = append(s.onEnd, fn)
	s.hookMu.Unlock()
}

func (s *Service) ended(ids ...string) {
	if len(ids) == 0 {
		return
	}
	s.stats.forget(ids)
	s.hookMu.RLock()
	hooks := s.onEnd
	s.hookMu.RUnlock()
	for _, fn := range hooks {
		fn(ids)
	}
}

// Start runs the touch flusher and the sweeper until Stop.
func (s *Service) Start() {
	s.done.Add(2)
	go s.loop(s.cfg.TouchInterval, func() { s.FlushTouches(context.Background()) })
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

// Stop stops the background loops and flushes pending touches. It does
// not close the store.
func (s *Service) Stop() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.done.Wait()
	return s.FlushTouches(context.Background())
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
	sess := &Session{
		ID:          NewID(),
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
	if err := s.store.Create(ctx, sess); err != nil {
		return nil, "", err
	}
	if sess.UserID != "" {
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
	return sess, nil
}

// CloseSession closes a session for the given reason (ReasonClosed, ReasonForced,
// ...). Closing a closed session changes nothing and returns it.
func (s *Service) CloseSession(ctx context.Context, id, reason string) (*Session, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	closed := false
	sess, err := s.store.Update(ctx, id, func(sess *Session) error {
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
		closed = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.dropPending(id)
	if closed {
		s.ended(id)
	}
	return sess, nil
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
	s.dropPending(id)
	s.ended(id)
	return s.view(sess), nil
}

// CloseExpired closes every dead session now (the sweep's first half).
func (s *Service) CloseExpired(ctx context.Context) error {
	if err := s.FlushTouches(ctx); err != nil {
		return err
	}
	ids, err := s.store.CloseExpired(ctx, s.clock.Now(), s.cfg.IdleTimeout)
	if err != nil {
		return err
	}
	s.ended(ids...)
	return nil
}

// Sweep closes dead sessions and purges closed ones past retention.
func (s *Service) Sweep(ctx context.Context) {
	if err := s.CloseExpired(ctx); err != nil {
		s.log.Error("sweep: closing expired sessions", "err", err)
	}
	ids, err := s.store.Purge(ctx, s.clock.Now().Add(-s.cfg.Retention))
	if err != nil {
		s.log.Error("sweep: purging closed sessions", "err", err)
	}
	s.ended(ids...)
	// Statistics of a session that ended while a gateway request was in
	// flight are recreated by that request; they go once unused for as
	// long as a session may idle.
	s.stats.pruneUnusedSince(s.clock.Now().Add(-s.cfg.IdleTimeout))
	s.keyMu.Lock()
	for id, c := range s.keys {
		if time.Since(c.fetched) >= s.cfg.APIKeyCacheTTL {
			delete(s.keys, id)
		}
	}
	s.keyMu.Unlock()
}

// ---- coalesced request_time ----

// Touch records that the session was used now. It writes nothing at once:
// touches are coalesced in memory and flushed every TouchInterval.
func (s *Service) Touch(id string) {
	now := s.clock.Now()
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

// ---- API keys ----

// CreateAPIKey creates a key and returns it with its secret, shown this
// once and stored only as a hash.
func (s *Service) CreateAPIKey(ctx context.Context, name string) (*APIKey, string, error) {
	if len(name) > 200 {
		return nil, "", Errorf(EINVALID, "name is longer than 200 characters")
	}
	secret := NewSecret()
	k := &APIKey{ID: NewID(), Name: name, SecretHash: HashSecret(secret), Created: s.clock.Now()}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	s.keyMu.Lock()
	s.keys[k.ID] = cachedKey{key: k, fetched: time.Now()}
	s.keyMu.Unlock()
	return k, secret, nil
}

// ListAPIKeys returns every key.
func (s *Service) ListAPIKeys(ctx context.Context) ([]*APIKey, error) {
	return s.store.ListAPIKeys(ctx)
}

// GetAPIKey returns one key (never its secret, which is not stored).
func (s *Service) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	if id == "" {
		return nil, Errorf(EINVALID, "api key id is required")
	}
	return s.store.GetAPIKey(ctx, id)
}

// RevokeAPIKey deletes a key: its secret stops working at once, and every
// session it opened is closed, so its tokens stop working too.
func (s *Service) RevokeAPIKey(ctx context.Context, id string) error {
	if id == "" {
		return Errorf(EINVALID, "api key id is required")
	}
	if err := s.store.DeleteAPIKey(ctx, id); err != nil {
		return err
	}
	s.keyMu.Lock()
	s.keys[id] = cachedKey{fetched: time.Now()}
	s.keyMu.Unlock()
	// Close its sessions. Tokens of this key already fail (the key is gone);
	// closing makes that visible and frees their directories. Pending
	// touches are written first, so that a session alive only by them is
	// found too.
	if err := s.FlushTouches(ctx); err != nil {
		return err
	}
	keyID := id
	for {
		page, err := s.store.List(ctx, Filter{APIKeyID: &keyID, Active: ptr(true), Now: s.clock.Now(), IdleTimeout: s.cfg.IdleTimeout}, Paging{Take: 500})
		if err != nil {
			return err
		}
		if len(page.Data) == 0 {
			return nil
		}
		for _, sess := range page.Data {
			if _, err := s.CloseSession(ctx, sess.ID, ReasonRevoked); err != nil && ErrorCode(err) != ENOTFOUND {
				return err
			}
		}
	}
}

// apiKey returns the key of id, or nil when there is none. Known and
// unknown ids alike are cached for APIKeyCacheTTL, so that both cost the
// same (one store read per TTL): otherwise an unknown id would cost a
// store read every time and a known one none, which a client can measure
// and which would let it load the store at will. Unknown ids are cached
// in a bounded ring; a revoked key is remembered as unknown by
// RevokeAPIKey.
func (s *Service) apiKey(ctx context.Context, id string) (*APIKey, error) {
	s.keyMu.Lock()
	c, ok := s.keys[id]
	s.keyMu.Unlock()
	if ok && time.Since(c.fetched) < s.cfg.APIKeyCacheTTL {
		return c.key, nil
	}
	k, err := s.store.GetAPIKey(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		k = nil
	} else if err != nil {
		return nil, err
	}
	now := time.Now()
	s.keyMu.Lock()
	s.keys[id] = cachedKey{key: k, fetched: now}
	if k == nil {
		s.rememberUnknown(id, now)
	}
	s.keyMu.Unlock()
	return k, nil
}

// rememberUnknown records that id was cached as unknown at fetched,
// forgetting the oldest such id when maxUnknownKeys are. keyMu is held.
func (s *Service) rememberUnknown(id string, fetched time.Time) {
	if len(s.unknownKeys) < maxUnknownKeys {
		s.unknownKeys = append(s.unknownKeys, cachedID{id, fetched})
		return
	}
	old := s.unknownKeys[s.unknownNext]
	if c, ok := s.keys[old.id]; ok && c.key == nil && c.fetched.Equal(old.fetched) {
		delete(s.keys, old.id)
	}
	s.unknownKeys[s.unknownNext] = cachedID{id, fetched}
	s.unknownNext = (s.unknownNext + 1) % maxUnknownKeys
}

// ---- tokens and callers ----

// Credentials are what a client presented.
type Credentials struct {
	Token  string
	APIKey string
	Secret string
}

// Caller is an authenticated client: an API key (tenant), and the session
// when it authenticated with a session token.
type Caller struct {
	APIKeyID string
	Session  *Session // nil when authenticated with APIKey/Secret
}

var errUnauthenticated = Errorf(EUNAUTHORIZED, "missing or invalid credentials")

// ErrWrongCredentials is the cause (Error.Err) of the EUNAUTHORIZED error
// of Authenticate when the credentials match nothing: an unknown API key,
// a wrong secret, or a token of no session. Failure limiters count these
// (errors.Is); missing credentials and the token of a closed or expired
// session are not guesses and are not counted.
var ErrWrongCredentials = errors.New("credentials match no API key or session")

var (
	errWrongSecret = &Error{Code: EUNAUTHORIZED, Message: "missing or invalid credentials", Err: ErrWrongCredentials}
	errWrongToken  = &Error{Code: EUNAUTHORIZED, Message: "invalid, closed or expired session token", Err: ErrWrongCredentials}
)

// Authenticate resolves credentials: a token takes precedence, then
// APIKey/Secret. A token authenticates only while its session is alive and
// its API key exists. The token's session is touched.
func (s *Service) Authenticate(ctx context.Context, c Credentials) (*Caller, error) {
	if c.Token != "" {
		sess, known, err := s.lookupToken(ctx, c.Token)
		if err != nil {
			return nil, err
		}
		if !known {
			return nil, errWrongToken
		}
		if sess == nil {
			return nil, Errorf(EUNAUTHORIZED, "invalid, closed or expired session token")
		}
		s.Touch(sess.ID)
		return &Caller{APIKeyID: sess.APIKeyID, Session: sess}, nil
	}
	if c.APIKey == "" {
		return nil, errUnauthenticated
	}
	k, err := s.apiKey(ctx, c.APIKey)
	if err != nil {
		return nil, err
	}
	if k == nil {
		// Compare anyway so that unknown and known keys take the same time.
		SecretMatches(c.Secret, make([]byte, 32))
		return nil, errWrongSecret
	}
	if !SecretMatches(c.Secret, k.SecretHash) {
		return nil, errWrongSecret
	}
	return &Caller{APIKeyID: k.ID}, nil
}

// sessionByToken returns the alive session of a token whose key (if any)
// still exists, or nil.
func (s *Service) sessionByToken(ctx context.Context, token string) (*Session, error) {
	sess, _, err := s.lookupToken(ctx, token)
	return sess, err
}

// lookupToken is sessionByToken that also tells whether the token is one
// of a session at all (known), alive or not.
func (s *Service) lookupToken(ctx context.Context, token string) (sess *Session, known bool, err error) {
	hash := HashSecret(token)
	sess, err = s.store.GetByTokenHash(ctx, hash)
	if ErrorCode(err) == ENOTFOUND {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if subtle.ConstantTimeCompare(hash, sess.TokenHash) != 1 {
		return nil, false, nil
	}
	s.applyPending(sess)
	if !sess.Alive(s.clock.Now(), s.cfg.IdleTimeout) {
		return nil, true, nil
	}
	if sess.APIKeyID != "" {
		k, err := s.apiKey(ctx, sess.APIKeyID)
		if err != nil {
			return nil, true, err
		}
		if k == nil {
			return nil, true, nil
		}
	}
	return sess, true, nil
}

// ownedByToken returns the alive session of token if it belongs to caller's
// key, else nil. A token of another key is indistinguishable from an
// unknown one.
func (s *Service) ownedByToken(ctx context.Context, caller *Caller, token string) (*Session, error) {
	if token == "" {
		return nil, Errorf(EINVALID, "token is required")
	}
	sess, err := s.sessionByToken(ctx, token)
	if err != nil || sess == nil {
		return nil, err
	}
	if sess.APIKeyID != caller.APIKeyID {
		return nil, nil
	}
	return sess, nil
}

// VerifyToken reports whether token is alive and the caller's; if so, it is
// touched.
func (s *Service) VerifyToken(ctx context.Context, caller *Caller, token string) (bool, error) {
	sess, err := s.ownedByToken(ctx, caller, token)
	if err != nil || sess == nil {
		return false, err
	}
	s.Touch(sess.ID)
	return true, nil
}

// SessionByToken returns the caller's session of token. ENOTFOUND when it
// is unknown, dead or another key's.
func (s *Service) SessionByToken(ctx context.Context, caller *Caller, token string) (*Session, error) {
	sess, err := s.ownedByToken(ctx, caller, token)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, Errorf(ENOTFOUND, "no active session for this token")
	}
	s.Touch(sess.ID)
	return s.view(sess), nil
}

// CloseByToken closes the caller's session of token. Unknown, closed and
// other keys' tokens change nothing and are not errors.
func (s *Service) CloseByToken(ctx context.Context, caller *Caller, token string) error {
	sess, err := s.ownedByToken(ctx, caller, token)
	if err != nil || sess == nil {
		return err
	}
	_, err = s.CloseSession(ctx, sess.ID, ReasonClosed)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	}
	return err
}

// StoreDataByToken replaces the data of the caller's session of token.
func (s *Service) StoreDataByToken(ctx context.Context, caller *Caller, token string, data json.RawMessage) (*Session, error) {
	sess, err := s.ownedByToken(ctx, caller, token)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, Errorf(ENOTFOUND, "no active session for this token")
	}
	return s.StoreData(ctx, sess.ID, data)
}

// ---- per-session gateway statistics ----

// ConnStat counts one session's use of one gateway upstream on this
// instance.
type ConnStat struct {
	Service  string    `json:"service"`
	Requests int64     `json:"requests"`
	Reads    int64     `json:"reads"`  // bytes read from the client
	Writes   int64     `json:"writes"` // bytes written to the client
	Errors   int64     `json:"errors"`
	LastUsed time.Time `json:"last_used"`
}

type connStats struct {
	mu sync.Mutex
	m  map[string]map[string]*ConnStat // session id -> service -> stat
}

func (c *connStats) forget(ids []string) {
	c.mu.Lock()
	for _, id := range ids {
		delete(c.m, id)
	}
	c.mu.Unlock()
}

func (c *connStats) pruneUnusedSince(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, bySvc := range c.m {
		used := false
		for _, st := range bySvc {
			if !st.LastUsed.Before(t) {
				used = true
				break
			}
		}
		if !used {
			delete(c.m, id)
		}
	}
}

// RecordConnection adds one gateway request to the statistics of the
// session and service. It writes nothing to the store.
func (s *Service) RecordConnection(sessionID, service string, read, written int64, failed bool) {
	now := s.clock.Now()
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	bySvc := s.stats.m[sessionID]
	if bySvc == nil {
		bySvc = make(map[string]*ConnStat)
		s.stats.m[sessionID] = bySvc
	}
	st := bySvc[service]
	if st == nil {
		st = &ConnStat{Service: service}
		bySvc[service] = st
	}
	st.Requests++
	st.Reads += read
	st.Writes += written
	if failed {
		st.Errors++
	}
	st.LastUsed = now
}

// Connections returns copies of the session's gateway statistics, one per
// service, ordered by service.
func (s *Service) Connections(sessionID string) []ConnStat {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := make([]ConnStat, 0, len(s.stats.m[sessionID]))
	for _, st := range s.stats.m[sessionID] {
		out = append(out, *st)
	}
	sortConnStats(out)
	return out
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

func sortConnStats(s []ConnStat) {
	sort.Slice(s, func(i, j int) bool { return s[i].Service < s[j].Service })
}
