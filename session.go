// Package sessiond is the domain of the session service: the session model,
// its rules (expiry, closing, ownership, tokens), the Store interface every
// engine implements and the Service every API dialect calls. It knows
// nothing of HTTP or SQL.
package sessiond

import (
	"context"
	"encoding/json"
	"time"
)

// Close reasons, recorded when a session stops being active.
const (
	ReasonClosed  = "closed"  // closed by a client
	ReasonExpired = "expired" // idle timeout or expire_time passed
	ReasonForced  = "forced"  // force-closed by an operator
	ReasonRevoked = "revoked" // its API key was revoked
	// ReasonEvicted: its user opened one session more than the per-user
	// limit allows (Config.MaxUserSessions), and it was that user's least
	// recently used.
	ReasonEvicted = "evicted"
)

// States shown to operators.
const (
	StateActive  = "active"
	StateClosed  = "closed"
	StateExpired = "expired"
)

// Session is the one session record shared by every API.
//
// Zero times mean "null": CloseTime is zero while the session is active and
// ExpireTime is zero when only the idle timeout applies. User and Data hold
// any JSON value; nil means JSON null.
type Session struct {
	ID          string
	UserID      string
	UserName    string
	Active      bool
	OpenTime    time.Time
	RequestTime time.Time
	CloseTime   time.Time
	ExpireTime  time.Time
	CloseReason string
	Address     string
	Client      string
	User        json.RawMessage
	Data        json.RawMessage
	APIKeyID    string
	// TokenHash is the SHA-256 of the session token. Engines index it; no API
	// ever returns it.
	TokenHash []byte
}

// Clone returns a deep copy of s.
func (s *Session) Clone() *Session {
	if s == nil {
		return nil
	}
	c := *s
	c.User = cloneBytes(s.User)
	c.Data = cloneBytes(s.Data)
	c.TokenHash = cloneBytes(s.TokenHash)
	return &c
}

func cloneBytes[T ~[]byte](b T) T {
	if b == nil {
		return nil
	}
	return append(T(nil), b...)
}

// Deadline returns the instant after which s is dead for the given idle
// timeout: the earlier of RequestTime+idle and ExpireTime.
func (s *Session) Deadline(idle time.Duration) time.Time {
	d := s.RequestTime.Add(idle)
	if !s.ExpireTime.IsZero() && s.ExpireTime.Before(d) {
		d = s.ExpireTime
	}
	return d
}

// Alive reports whether s is active and not dead at now.
func (s *Session) Alive(now time.Time, idle time.Duration) bool {
	return s.Active && !now.After(s.Deadline(idle))
}

// State is the operator's view: active, closed or expired.
func (s *Session) State(now time.Time, idle time.Duration) string {
	switch {
	case s.Alive(now, idle):
		return StateActive
	case s.Active || s.CloseReason == ReasonExpired:
		return StateExpired
	default:
		return StateClosed
	}
}

// Filter selects sessions. Empty strings and nil pointers mean "not set".
type Filter struct {
	UserID   string
	Address  string
	Client   string
	APIKeyID *string
	// Search matches, case-insensitively, a substring of id, user_id,
	// user_name, address or client.
	Search string
	// Active selects alive (true) or not alive (false) sessions, where alive
	// is judged with Now and IdleTimeout (the Service fills both).
	Active *bool
	// State selects by State(Now, IdleTimeout): active, closed or expired.
	State string
	// FromTime and ToTime bound OpenTime, inclusive; zero means unbounded.
	FromTime time.Time
	ToTime   time.Time

	Now         time.Time
	IdleTimeout time.Duration
}

// Liveness reports whether f selects by liveness alone (ok), and which
// (alive): it sets Active, or State active with Active unset or true,
// and nothing else but FromTime, ToTime, Now and IdleTimeout. Engines
// that index liveness answer such a filter from the index.
func (f *Filter) Liveness() (alive, ok bool) {
	rest := *f
	rest.Active, rest.State = nil, ""
	rest.FromTime, rest.ToTime, rest.Now, rest.IdleTimeout = time.Time{}, time.Time{}, time.Time{}, 0
	switch {
	case rest != Filter{}:
		return false, false
	case f.State == StateActive:
		ok := f.Active == nil || *f.Active
		return ok, ok
	case f.State == "" && f.Active != nil:
		return *f.Active, true
	}
	return false, false
}

// Match reports whether s satisfies f. Engines that filter in memory use it;
// engines that filter in a query language must agree with it (the
// conformance suite checks that they do).
func (f *Filter) Match(s *Session) bool {
	if f.UserID != "" && s.UserID != f.UserID {
		return false
	}
	if f.Address != "" && s.Address != f.Address {
		return false
	}
	if f.Client != "" && s.Client != f.Client {
		return false
	}
	if f.APIKeyID != nil && s.APIKeyID != *f.APIKeyID {
		return false
	}
	if f.Active != nil && s.Alive(f.Now, f.IdleTimeout) != *f.Active {
		return false
	}
	if f.State != "" && s.State(f.Now, f.IdleTimeout) != f.State {
		return false
	}
	if !f.FromTime.IsZero() && s.OpenTime.Before(f.FromTime) {
		return false
	}
	if !f.ToTime.IsZero() && s.OpenTime.After(f.ToTime) {
		return false
	}
	if f.Search != "" && !containsFold(f.Search, s.ID, s.UserID, s.UserName, s.Address, s.Client) {
		return false
	}
	return true
}

// Paging selects a window of an ordered result. Sessions are ordered by
// OpenTime descending (newest first), then by ID.
type Paging struct {
	Skip  int
	Take  int
	Total bool
}

// Page is one window of a result. Total is nil unless Paging.Total was set.
type Page struct {
	Total *int64
	Data  []*Session
}

// APIKey is a tenant of the JSON-RPC Session API and the gateway.
type APIKey struct {
	ID         string
	Name       string
	SecretHash []byte
	Created    time.Time
}

// Touch is one coalesced request_time update.
type Touch struct {
	ID   string
	Time time.Time
}

// UserSession is what the per-user limit reads of one active session.
type UserSession struct {
	ID          string
	OpenTime    time.Time
	RequestTime time.Time
	ExpireTime  time.Time
}

// UpdateFunc changes a session inside an engine's atomic read-modify-write.
// Returning an error aborts the change for this session only.
//
// An engine may call it more than once for one Update (a shared engine
// retries when another instance changed the session in between), so it
// must be pure: it depends only on its argument and on values fixed
// before Update was called, and it changes nothing but its argument.
// What it decides (for example "this call closed the session") is read
// from the last call, the one whose result was stored.
type UpdateFunc func(s *Session) error

// ConnDelta is what gateway requests added to one session's statistics of
// one upstream service since the last flush.
type ConnDelta struct {
	SessionID string
	Service   string
	Requests  int64
	Reads     int64
	Writes    int64
	Errors    int64
	LastUsed  time.Time
}

// Store is what every storage engine implements. Engines store, index,
// filter and page; every rule lives in Service, and every change is told
// by the Service on the event stream (Stream), not by the engine.
//
// All methods are safe for concurrent use. A method returns only after its
// write is durable by the engine's standard (on disk for the embedded
// engine, committed for PostgreSQL, acknowledged for Redis). Several
// instances may share one store (an engine that is shared implements
// Streamer): then every method must be safe against the same calls from
// other processes (the sweep runs on each instance at once), and a store
// that cannot be reached answers EUNAVAILABLE within a bounded time.
//
// Listing scales with the page, not with the store: an engine answers
// List from an index in its order (OpenTime descending, then ID) and
// reads only the sessions of the window it returns, plus the index
// entries it skips; Total is counted from indexes. At 1,000,000 sessions a
// page costs what a page costs at a thousand, plus the skip and the count.
// Every listing of every dialect (Pip.Services get_sessions with
// skip/take/total, REST by user, the admin listing) is a List.
type Store interface {
	// Create stores a new session. ECONFLICT if the id or token hash exists.
	//
	// It also answers the per-user limit's question in the same trip to
	// the store: when userMin > 0 and s.UserID is not empty, crowded
	// reports whether s's user, under s's API key, may now hold at least
	// userMin active sessions, s included. The count is taken after the
	// write, so that of two concurrent Creates of one user the later
	// counts both. false must be certain; an engine that cannot tell
	// cheaply answers true, and the Service then asks UserSessions.
	Create(ctx context.Context, s *Session, userMin int) (crowded bool, err error)
	// Get returns the session with the id. ENOTFOUND if there is none.
	Get(ctx context.Context, id string) (*Session, error)
	// GetByTokenHash returns the session with the token hash. ENOTFOUND if
	// there is none.
	GetByTokenHash(ctx context.Context, hash []byte) (*Session, error)
	// Update reads the session, calls fn on a copy and, if fn returns nil,
	// stores the copy, atomically with respect to every other write of that
	// session. It returns the stored session. ENOTFOUND if there is none;
	// fn's error, unchanged, if fn fails.
	Update(ctx context.Context, id string, fn UpdateFunc) (*Session, error)
	// Delete removes the session and returns it. ENOTFOUND if there is none.
	Delete(ctx context.Context, id string) (*Session, error)
	// List returns the sessions matching f, newest OpenTime first (ties by
	// ID), windowed by p, with the total of all matches when p.Total.
	List(ctx context.Context, f Filter, p Paging) (*Page, error)
	// Touch raises RequestTime of each active session to the given time if it
	// is later. Unknown or inactive sessions are skipped, not errors.
	// It may be less durable than other writes (see docs/design.md).
	Touch(ctx context.Context, touches []Touch) error
	// CloseExpired closes every active session that is dead at now for the
	// idle timeout, at the instant it died: ApplyClose(s, s.Deadline(idle),
	// ReasonExpired), which sets Active=false, CloseTime=RequestTime=the
	// deadline, User=Data=nil. It returns their ids.
	CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error)
	// UserSessions returns the active sessions (Active, whether alive or
	// dead) whose UserID is userID and APIKeyID is apiKeyID, in no order,
	// when there are at least min of them, and none when there are fewer.
	// userID is not empty. The Service calls it when Create reports a
	// crowded user, to keep the per-user limit.
	UserSessions(ctx context.Context, apiKeyID, userID string, min int) ([]UserSession, error)
	// Purge deletes closed sessions whose CloseTime is before the given time
	// and returns their ids.
	Purge(ctx context.Context, closedBefore time.Time) ([]string, error)

	// AddConnStats adds each delta to the stored gateway statistics of its
	// session and service (LastUsed: the later of the two), creating them
	// as needed. Deltas of sessions that do not exist are dropped. The
	// Service calls it with a batch every TouchInterval, never per request.
	// Delete and Purge remove a session's statistics with it.
	AddConnStats(ctx context.Context, deltas []ConnDelta) error
	// ConnStats returns the stored statistics of a session, one per
	// service, ordered by service; none (not an error) if there are none.
	ConnStats(ctx context.Context, sessionID string) ([]ConnStat, error)

	// CreateAPIKey stores a new key. ECONFLICT if the id exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKey returns the key. ENOTFOUND if there is none.
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns every key, oldest first.
	ListAPIKeys(ctx context.Context) ([]*APIKey, error)
	// DeleteAPIKey removes the key. ENOTFOUND if there is none.
	DeleteAPIKey(ctx context.Context, id string) error

	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store after flushing pending writes.
	Close() error
}

// IDChooser is implemented by engines that place a session by its id: a
// clustered engine keeps a user's sessions and their indexes in one slot,
// named by the id. The Service asks it for the id of every new session.
// An id is still 32 lowercase hex characters, unique, and all but its
// first byte random (at least 112 random bits).
type IDChooser interface {
	NewSessionID(apiKeyID, userID string) string
}

// MultiGetter is implemented by engines that read many sessions in one
// trip to the store (the cache's background refresh). GetMany returns the
// sessions of ids that exist, in any order.
type MultiGetter interface {
	GetMany(ctx context.Context, ids []string) ([]*Session, error)
}

// GetMany returns the sessions of ids that exist in st, in one trip when st
// is a MultiGetter, else by one Get per id.
func GetMany(ctx context.Context, st Store, ids []string) ([]*Session, error) {
	if mg, ok := st.(MultiGetter); ok {
		return mg.GetMany(ctx, ids)
	}
	var found []*Session
	for _, id := range ids {
		sess, err := st.Get(ctx, id)
		switch {
		case err == nil:
			found = append(found, sess)
		case ErrorCode(err) != ENOTFOUND:
			return nil, err
		}
	}
	return found, nil
}

// Clock tells the time. Tests use a fake one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock, truncated to milliseconds (the precision
// of every wire format).
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
