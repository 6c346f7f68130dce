// Package postgres is the PostgreSQL engine of sessiond: several sessiond
// instances share one database (one schema, taken from the URL's
// search_path or the server's default).
//
// # Schema
//
// Open creates and migrates the schema: the SQL files of migrations/ are
// embedded in the binary, numbered (001_init.sql, ...), and applied in
// order inside one transaction that holds pg_advisory_xact_lock on a key
// of the schema's name, so that instances starting at once apply each
// version exactly once. schema_migrations records the applied versions; a
// schema newer than the binary is refused.
//
// Tables: sessions (user and data kept as the exact bytes given, in bytea;
// NULL is JSON null; token_hash unique), api_keys, conn_stats (per session
// and service, ON DELETE CASCADE from sessions) and events (the stream's
// log). Indexes: (open_time DESC, id) for the order of every listing, and
// the same prefixed by each equality filter (user_id, address, client,
// api_key_id, active); the token; UserSessions on (api_key_id, user_id)
// WHERE active, covering what it returns but request_time; the sweep on
// request_bucket (request_time cut down to its minute) and on expire_time
// WHERE active, and Purge on close_time WHERE NOT active. No index holds
// request_time, so that a touch is a HOT update (no index entry written)
// but once a minute; the table's pages keep a fifth free for it.
// Search scans, folding case with lower() under the database's
// collation: it agrees with strings.ToLower under a UTF-8 locale (under
// "C" it folds ASCII only). Liveness in SQL is Filter.Match's: active and
// request_time >= now-idle and (expire_time IS NULL or expire_time >=
// now), with the bounds rounded to PostgreSQL's microseconds in the
// direction that keeps each comparison exact.
//
// Create of a session with a user sends three statements in one round
// trip and one implicit transaction (a pgx batch): the user's advisory
// lock, the insert, and the count of the user's active sessions for the
// per-user limit, read once the lock is held.
//
// Update locks the row (SELECT ... FOR UPDATE) for its read-modify-write,
// so the function runs once. CloseExpired and Purge work in batches of
// batchSize rows picked with FOR UPDATE SKIP LOCKED, so every instance may
// sweep at once without deadlock or double work; CloseExpired sets what
// sessiond.ApplyClose(s, s.Deadline(idle), ReasonExpired) sets, in SQL,
// with the deadline least(request_time + idle, expire_time) (idle in
// whole microseconds). Statements that write many rows are retried on
// deadlock.
//
// # Stream
//
// Stream carries session events between instances. Publish delivers to
// this process's subscribers first (sessiond.LocalStream), then, in one
// statement, inserts one events row per event (seq, at = the transaction
// time, origin, payload = the event's JSON) and notifies the channel of
// the schema (sessiond_events_<hash of the schema name>) with
// {"at":<microseconds>,"e":[events]}, chunked under PostgreSQL's
// 8000-byte payload limit; an event too big for a notification alone is
// replaced by {"at":...,"big":<origin>}, and listeners read it from the
// table. Each instance listens on a dedicated connection (application_name
// ListenerName(origin)) and delivers the events of other origins, one
// notification per batch, in commit order. When that connection breaks,
// subscribers receive EventLost at once; the listener reconnects with
// backoff (100ms to 2s), LISTENs again, reads the events table from
// catchUpMargin (10s) before the last event it saw (duplicates are
// allowed: delivery is at least once), delivers those events, then
// EventResumed. The listener pings its connection after ListenPing
// without a notification, so a silent network loss is found too. Events
// older than EventRetention (an hour) are pruned in batches (SKIP LOCKED)
// by every instance's stream each minute: a loss longer than that is
// not caught up in full, which subscribers that cache nothing from
// EventLost on do not mind.
//
// # Outage
//
// Each Store holds its pool (Options.MaxConns) and one more connection,
// the listener's. Every operation is bounded by Options.OpTimeout. A
// database that cannot be reached, or that does not answer in time, gives
// sessiond.Error with code EUNAVAILABLE; Ping fails. The pool drops broken connections and
// dials new ones when used, so the same Store works again once the server
// is back.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"sessiond"
)

// Application names of the engine's connections, as pg_stat_activity shows
// them: AppPool or AppListen, a space and the instance's origin (see
// PoolName and ListenerName). An application_name in the URL replaces
// "sessiond" in both.
const (
	AppPool   = "sessiond"
	AppListen = "sessiond-listen"
)

// PoolName is the application_name of the pool's connections of the
// instance named origin (at most 63 bytes, PostgreSQL's limit).
func PoolName(origin string) string { return appName(AppPool, origin) }

// ListenerName is the application_name of the listening connection of the
// instance named origin.
func ListenerName(origin string) string { return appName(AppListen, origin) }

func appName(role, origin string) string {
	name := role + " " + origin
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// Log receives the engine's warnings (stream loss, pruning failures).
	Log *slog.Logger
	// Origin names this instance on the events it publishes; default a
	// random id.
	Origin string
	// OpTimeout bounds each operation; default 5s.
	OpTimeout time.Duration
	// MaxConns is the pool's size; default pgxpool's.
	MaxConns int32
	// EventRetention is how long events are kept for catching up; default
	// one hour.
	EventRetention time.Duration
	// ListenPing is how long the stream's listener waits for a
	// notification before it pings its connection (bounded by OpTimeout),
	// so that a connection lost without a word is found; default 5s.
	ListenPing time.Duration
}

// Store is a sessiond.Store on PostgreSQL, shared between instances.
type Store struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	timeout time.Duration
	schema  string
	stream  *Stream
}

var (
	_ sessiond.Store    = (*Store)(nil)
	_ sessiond.Streamer = (*Store)(nil)
)

// Open connects to the database at url (postgres:// or postgresql://),
// migrates its schema and starts the stream's listener.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Origin == "" {
		var b [8]byte
		rand.Read(b[:])
		opts.Origin = hex.EncodeToString(b[:])
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 5 * time.Second
	}
	if opts.EventRetention <= 0 {
		opts.EventRetention = time.Hour
	}
	if opts.ListenPing <= 0 {
		opts.ListenPing = 5 * time.Second
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, sessiond.Errorf(sessiond.EINVALID, "postgres store URL: %v", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > opts.OpTimeout {
		cfg.ConnConfig.ConnectTimeout = opts.OpTimeout
	}
	// application_name: the URL's, or "sessiond", then the role and the
	// origin, so that an operator sees which instance holds what.
	pool, listen := AppPool, AppListen
	if name := cfg.ConnConfig.RuntimeParams["application_name"]; name != "" {
		pool, listen = name, name+"-listen"
	}
	listenCfg := cfg.ConnConfig.Copy()
	listenCfg.RuntimeParams["application_name"] = appName(listen, opts.Origin)
	cfg.ConnConfig.RuntimeParams["application_name"] = appName(pool, opts.Origin)

	pgpool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, sessiond.Errorf(sessiond.EINVALID, "postgres store: %v", err)
	}
	s := &Store{pool: pgpool, log: opts.Log, timeout: opts.OpTimeout}
	if err := s.migrate(ctx); err != nil {
		pgpool.Close()
		return nil, err
	}
	if s.stream, err = newStream(ctx, s, listenCfg, opts); err != nil {
		pgpool.Close()
		return nil, err
	}
	return s, nil
}

// Stream returns the store's event stream (sessiond.Streamer).
func (s *Store) Stream() sessiond.Stream { return s.stream }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.wrap(s.pool.Ping(ctx))
}

// Close stops the stream and closes the pool.
func (s *Store) Close() error {
	s.stream.Close()
	s.pool.Close()
	return nil
}

// op bounds one operation by the OpTimeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// wrap turns a database error into a sessiond.Error: a unique violation is
// ECONFLICT; a failure to reach the server, a lost connection, a server
// shutting down or starting up, or no answer within the timeout is
// EUNAVAILABLE; anything else is internal.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	var se *sessiond.Error
	if errors.As(err, &se) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return &sessiond.Error{Code: sessiond.ECONFLICT, Message: "already exists", Err: err}
		case unavailableCode(pe.Code):
			return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "the session store is unavailable", Err: err}
		}
		return sessiond.Internal(err)
	}
	if connectionError(err) {
		return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "the session store is unavailable", Err: err}
	}
	return sessiond.Internal(err)
}

// connectionError reports errors of reaching the server rather than of
// the statement: refused, reset or closed connections, no answer in time
// (the OpTimeout or the caller's context).
func connectionError(err error) bool {
	var (
		netErr     net.Error
		connectErr *pgconn.ConnectError
	)
	return errors.As(err, &netErr) || errors.As(err, &connectErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}

// unavailableCode reports SQLSTATEs that mean the server cannot serve now:
// connection exceptions (08), insufficient resources (53), operator
// intervention (57: shutdown, starting up) and query cancellation by the
// statement timeout.
func unavailableCode(code string) bool {
	switch code[:2] {
	case "08", "53", "57":
		return true
	}
	return false
}

// conflictError reports a deadlock or serialization failure: the
// statement was rolled back and may simply run again.
func conflictError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// retry runs fn until it succeeds or fails for good: it runs again after
// a deadlock (until ctx ends) and, once, after a failure to send the
// statement at all (a connection the server had closed).
func retry(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		switch {
		case err == nil || ctx.Err() != nil:
			return err
		case conflictError(err):
		case pgconn.SafeToRetry(err) && attempt == 0:
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(min(attempt+1, 20)) * 5 * time.Millisecond):
		}
	}
}

// tx runs fn in a transaction, bounded by the OpTimeout, retried on a
// deadlock.
// fn receives the bounded context, for its statements.
func (s *Store) tx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.wrap(retry(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
	}))
}
