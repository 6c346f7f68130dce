package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"sessiond"
)

const (
	// maxChunk bounds the events of one notification, in bytes of JSON,
	// below PostgreSQL's 8000-byte payload limit (the envelope adds ~40).
	maxChunk = 7800
	// bigEvent: an event whose JSON is longer does not fit a notification
	// alone (`"e":[` + event + `]`).
	bigEvent = maxChunk - len(`"e":[]`) - 1
	// catchUpMargin is how far before the last event seen a catch-up
	// starts reading: publications commit slightly out of their order of
	// start, and every event published within the margin is delivered
	// again (at least once).
	catchUpMargin = 10 * time.Second
	// Reconnection backoff of the listener.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
	// pruneInterval is how often each instance prunes old events.
	pruneInterval = time.Minute
)

// Stream is the store's sessiond.Stream: a LocalStream for this process,
// and the events table with LISTEN/NOTIFY between instances.
type Stream struct {
	local     *sessiond.LocalStream
	store     *Store
	log       *slog.Logger
	cfg       *pgx.ConnConfig
	channel   string
	retention time.Duration
	ping      time.Duration

	batch     *sessiond.Batcher // telling events, sent in the background
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ sessiond.Stream = (*Stream)(nil)

// notification is the payload of one NOTIFY: the server time of the
// publication (microseconds since the epoch) and its events.
type notification struct {
	At     int64            `json:"at"`
	Events []sessiond.Event `json:"e"`
	// Big names the origin of a publication whose events too big for a
	// notification are to be read from the table.
	Big string `json:"big"`
}

// newStream connects the listener and starts it.
func newStream(ctx context.Context, s *Store, cfg *pgx.ConnConfig, opts Options) (*Stream, error) {
	sum := sha256.Sum256([]byte(s.schema))
	st := &Stream{
		local:     sessiond.NewLocalStream(opts.Origin),
		store:     s,
		log:       opts.Log,
		cfg:       cfg,
		channel:   "sessiond_events_" + hex.EncodeToString(sum[:8]),
		retention: opts.EventRetention,
		ping:      opts.ListenPing,
	}
	conn, since, err := st.connect(ctx)
	if err != nil {
		return nil, s.wrap(err)
	}
	st.batch = sessiond.NewBatcher(func(ctx context.Context, evs []sessiond.Event) error {
		return st.send(ctx, evs)
	}, opts.Log)
	runCtx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	st.wg.Add(2)
	go func() {
		defer st.wg.Done()
		st.run(runCtx, conn, since)
	}()
	go func() {
		defer st.wg.Done()
		st.pruneLoop(runCtx)
	}()
	return st, nil
}

// Origin returns the name stamped on this instance's events.
func (st *Stream) Origin() string { return st.local.Origin() }

// Publish delivers evs to this process's subscribers, then records them in
// the events table and notifies the other instances, in one statement.
func (st *Stream) Publish(ctx context.Context, evs ...sessiond.Event) error {
	if len(evs) == 0 {
		return nil
	}
	st.local.Stamp(evs)
	st.local.Deliver(evs)
	if !slices.ContainsFunc(evs, func(e sessiond.Event) bool { return !e.Telling() }) {
		// Nothing for other instances to drop: sent in the background,
		// batched with other opens (sessiond.Batcher).
		st.batch.Add(ctx, evs)
		return nil
	}
	return st.send(ctx, evs)
}

// send records evs in the events table and notifies them, in one
// statement.
func (st *Stream) send(ctx context.Context, evs []sessiond.Event) error {

	// Each notification carries `"e":[events...]` of at most maxChunk
	// bytes; an event too big for one alone is replaced by `"big":origin`,
	// which tells listeners to read the publication's big events from the
	// table.
	payloads := make([]string, len(evs))
	var chunks []string
	chunk := []byte(`"e":[`)
	const empty = len(`"e":[`)
	flush := func() {
		if len(chunk) > empty {
			chunks = append(chunks, string(append(chunk, ']')))
			chunk = []byte(`"e":[`)
		}
	}
	origin, _ := json.Marshal(st.Origin())
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			return sessiond.Internal(err)
		}
		payloads[i] = string(b)
		if len(b) > bigEvent {
			flush()
			chunks = append(chunks, `"big":`+string(origin))
			continue
		}
		if len(chunk)+len(b)+2 > maxChunk {
			flush()
		}
		if len(chunk) > empty {
			chunk = append(chunk, ',')
		}
		chunk = append(chunk, b...)
	}
	flush()

	// The statement commits without waiting for its WAL flush
	// (set_config(..., true): synchronous_commit off for this transaction
	// alone). PostgreSQL serializes the commits of notifying transactions
	// under one lock held through the commit, so synced publications
	// waited for one flush each, in turn (every open publishes). A server
	// crash may lose the publications of its last 0.6 s at most (three
	// wal_writer_delay), never the changes they tell, which are committed
	// before; and it breaks every listener's connection, so every
	// subscriber receives EventLost and reads through until caught up.
	ctx, cancel := st.store.op(ctx)
	defer cancel()
	return st.store.wrap(retry(ctx, func() error {
		_, err := st.store.pool.Exec(ctx, `WITH ins AS (
				INSERT INTO events (origin, payload) SELECT $1, unnest($2::text[]))
			SELECT set_config('synchronous_commit', 'off', true),
				count(pg_notify($3, '{"at":' || (extract(epoch FROM now()) * 1000000)::bigint || ',' || c || '}'))
			FROM unnest($4::text[]) AS c`,
			st.Origin(), payloads, st.channel, chunks)
		return err
	}))
}

// Subscribe calls fn with every batch of events from now on.
func (st *Stream) Subscribe(fn func([]sessiond.Event)) func() { return st.local.Subscribe(fn) }

// Close stops the listener and drops every subscriber.
func (st *Stream) Close() error {
	st.closeOnce.Do(func() {
		st.batch.Close()
		st.cancel()
		st.wg.Wait()
		st.local.Close()
	})
	return nil
}

// connect opens the listening connection, LISTENs, and returns the
// server's time: events from then on will be notified.
func (st *Stream) connect(ctx context.Context) (*pgx.Conn, time.Time, error) {
	ctx, cancel := st.store.op(ctx)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, st.cfg.Copy())
	if err != nil {
		return nil, time.Time{}, err
	}
	var now time.Time
	if _, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{st.channel}.Sanitize()); err == nil {
		err = conn.QueryRow(ctx, `SELECT now()`).Scan(&now)
	}
	if err != nil {
		closeConn(conn)
		return nil, time.Time{}, err
	}
	return conn, now, nil
}

// closeConn closes conn, waiting at most a second for the server to take
// the goodbye (a frozen server may not).
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

// run delivers the notifications of other instances until ctx ends. When
// the connection breaks it tells EventLost, reconnects with backoff,
// catches up from the events table, and tells EventResumed.
func (st *Stream) run(ctx context.Context, conn *pgx.Conn, lastAt time.Time) {
	backoff := minBackoff
	lost := false
	for {
		if conn != nil {
			err := st.listen(ctx, conn, &lastAt)
			closeConn(conn)
			conn = nil
			if ctx.Err() != nil {
				return
			}
			st.log.Warn("postgres stream: notification channel lost; reading through until caught up", "err", err)
			lost = true
			st.local.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		c, _, err := st.connect(ctx)
		if err == nil {
			err = st.catchUp(ctx, c, &lastAt)
			if err != nil {
				closeConn(c)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			st.log.Debug("postgres stream: reconnecting", "err", err, "backoff", backoff)
			continue
		}
		conn, backoff = c, minBackoff
		if lost {
			lost = false
			st.log.Info("postgres stream: notification channel back and caught up")
			st.local.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
		}
	}
}

// catchUp delivers, from the events table, the events of other instances
// published since catchUpMargin before lastAt. conn already LISTENs, so
// nothing published from now on is missed.
func (st *Stream) catchUp(ctx context.Context, conn *pgx.Conn, lastAt *time.Time) error {
	ctx, cancel := st.store.op(ctx)
	defer cancel()
	rows, err := conn.Query(ctx, `SELECT at, payload FROM events
		WHERE at >= $1 AND origin <> $2 ORDER BY seq`, lastAt.Add(-catchUpMargin), st.Origin())
	if err != nil {
		return err
	}
	var (
		evs    []sessiond.Event
		latest = *lastAt
	)
	for rows.Next() {
		var (
			at      time.Time
			payload string
			e       sessiond.Event
		)
		if err := rows.Scan(&at, &payload); err != nil {
			rows.Close()
			return err
		}
		if err := json.Unmarshal([]byte(payload), &e); err != nil {
			st.log.Warn("postgres stream: bad event in the events table", "err", err)
			continue
		}
		evs = append(evs, e)
		if at.After(latest) {
			latest = at
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for len(evs) > 0 {
		n := min(len(evs), batchSize)
		st.local.Deliver(evs[:n])
		evs = evs[n:]
	}
	*lastAt = latest
	return nil
}

// listen waits for notifications and delivers those of other instances,
// pinging the connection when it has been quiet for ListenPing. It returns
// the error that broke the connection, or ctx's.
func (st *Stream) listen(ctx context.Context, conn *pgx.Conn, lastAt *time.Time) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, st.ping)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if !pgconn.Timeout(err) && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			pctx, cancel := st.store.op(ctx)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		var msg notification
		if err := json.Unmarshal([]byte(n.Payload), &msg); err != nil {
			st.log.Warn("postgres stream: bad notification", "err", err)
			continue
		}
		at := time.UnixMicro(msg.At)
		if at.After(*lastAt) {
			*lastAt = at
		}
		if msg.Big != "" && msg.Big != st.Origin() {
			if msg.Events, err = st.bigEvents(ctx, conn, msg.Big, at); err != nil {
				return err
			}
		}
		evs := msg.Events[:0]
		for _, e := range msg.Events {
			if e.Origin != st.Origin() {
				evs = append(evs, e)
			}
		}
		if len(evs) > 0 {
			st.local.Deliver(evs)
		}
	}
}

// bigEvents reads the events too big for a notification that origin
// published at at (the publication's transaction time).
func (st *Stream) bigEvents(ctx context.Context, conn *pgx.Conn, origin string, at time.Time) ([]sessiond.Event, error) {
	ctx, cancel := st.store.op(ctx)
	defer cancel()
	rows, err := conn.Query(ctx, `SELECT payload FROM events
		WHERE at = $1 AND origin = $2 AND octet_length(payload) > $3 ORDER BY seq`, at, origin, bigEvent)
	if err != nil {
		return nil, err
	}
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var evs []sessiond.Event
	for _, p := range payloads {
		var e sessiond.Event
		if err := json.Unmarshal([]byte(p), &e); err != nil {
			st.log.Warn("postgres stream: bad event in the events table", "err", err)
			continue
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// pruneLoop deletes events older than the retention, in batches that skip
// rows another instance is deleting, every pruneInterval.
func (st *Stream) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		if _, err := st.store.batches(ctx, `DELETE FROM events WHERE seq IN (
				SELECT seq FROM events WHERE at < now() - $1::bigint * interval '1 microsecond'
				ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING seq::text`, st.retention.Microseconds()); err != nil && ctx.Err() == nil {
			st.log.Debug("postgres stream: pruning events", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
