package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"sessiond"
)

// batchSize is how many rows one statement of the sweep or the purge
// changes.
const batchSize = 1000

const sessionColumns = `id, user_id, user_name, active, open_time, request_time, close_time,
	expire_time, close_reason, address, client, user_json, data, api_key_id, token_hash`

// The statements of Create, Get and GetByTokenHash, exported for baselines
// that must run exactly the engine's SQL (cmd/sessiond-load). SQLInsert
// takes the columns of SQLColumns in order, then RequestBucket of the
// request time; a Create of a user's session sends SQLLockUser, SQLInsert
// and SQLCrowded in one batch.
const (
	SQLColumns    = sessionColumns
	SQLGet        = `SELECT ` + sessionColumns + ` FROM sessions WHERE id = $1`
	SQLGetByToken = `SELECT ` + sessionColumns + ` FROM sessions WHERE token_hash = $1`
	SQLInsert     = `INSERT INTO sessions (` + sessionColumns + `, request_bucket)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`
)

// RequestBucket is the request_bucket column of a session used at t: t cut
// down to its minute. The idle sweep's index holds it instead of
// request_time, so that a touch, which sets request_time every second the
// session is in use, changes an indexed column at most once a minute and
// is otherwise a HOT update (migration 002).
func RequestBucket(t time.Time) time.Time { return t.Truncate(time.Minute) }

// scanSession reads one row of sessionColumns.
func scanSession(row pgx.Row) (*sessiond.Session, error) {
	var (
		s                 sessiond.Session
		closeT, expireT   *time.Time
		user, data, token []byte
	)
	err := row.Scan(&s.ID, &s.UserID, &s.UserName, &s.Active, &s.OpenTime, &s.RequestTime, &closeT,
		&expireT, &s.CloseReason, &s.Address, &s.Client, &user, &data, &s.APIKeyID, &token)
	if err != nil {
		return nil, err
	}
	s.OpenTime = s.OpenTime.UTC()
	s.RequestTime = s.RequestTime.UTC()
	if closeT != nil {
		s.CloseTime = closeT.UTC()
	}
	if expireT != nil {
		s.ExpireTime = expireT.UTC()
	}
	s.User, s.Data, s.TokenHash = user, data, token
	return &s, nil
}

// nullTime is nil for the zero time (SQL NULL).
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nullBytes keeps nil as NULL and anything else, even empty, as bytes.
func nullBytes[T ~[]byte](b T) []byte {
	if b == nil {
		return nil
	}
	return []byte(b)
}

// tokenParam is NULL for a session without a token hash.
func tokenParam(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ceilMicro and floorMicro round t to PostgreSQL's microseconds, up or
// down: for a stored (whole-microsecond) value v, v >= t exactly when
// v >= ceilMicro(t), and v <= t exactly when v <= floorMicro(t).
func ceilMicro(t time.Time) time.Time {
	f := t.Truncate(time.Microsecond)
	if f.Before(t) {
		return f.Add(time.Microsecond)
	}
	return f
}

func floorMicro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func notFound(what, id string) error {
	return sessiond.Errorf(sessiond.ENOTFOUND, "%s %s not found", what, id)
}

func (s *Store) Create(ctx context.Context, sess *sessiond.Session, userMin int) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	args := []any{sess.ID, sess.UserID, sess.UserName, sess.Active, sess.OpenTime, sess.RequestTime, nullTime(sess.CloseTime),
		nullTime(sess.ExpireTime), sess.CloseReason, sess.Address, sess.Client, nullBytes(sess.User), nullBytes(sess.Data),
		sess.APIKeyID, tokenParam(sess.TokenHash), RequestBucket(sess.RequestTime)}
	var (
		crowded bool
		err     error
	)
	if userMin <= 0 || sess.UserID == "" {
		_, err = s.pool.Exec(ctx, SQLInsert, args...)
	} else {
		// One round trip, one implicit transaction: the user's lock, the
		// insert, and the count read after both (its snapshot is taken
		// once the lock is held), so that of two concurrent Creates of a
		// user the later counts both.
		b := &pgx.Batch{}
		b.Queue(SQLLockUser, sess.APIKeyID, sess.UserID)
		b.Queue(SQLInsert, args...)
		b.Queue(SQLCrowded, sess.APIKeyID, sess.UserID, userMin).QueryRow(func(row pgx.Row) error {
			return row.Scan(&crowded)
		})
		err = s.pool.SendBatch(ctx, b).Close()
	}
	if err = s.wrap(err); sessiond.ErrorCode(err) == sessiond.ECONFLICT {
		return false, &sessiond.Error{Code: sessiond.ECONFLICT, Message: "session " + sess.ID + " or its token already exists", Err: err}
	}
	return crowded, err
}

// SQLLockUser takes a user's lock until the end of the transaction (the
// two-key form, under a class of its own), and SQLCrowded counts the
// user's active sessions against userMin.
const (
	SQLLockUser = `SELECT pg_advisory_xact_lock(` + lockClassUser + `, hashtext($1 || chr(1) || $2))`
	SQLCrowded  = `SELECT count(*) >= $3 FROM sessions WHERE active AND api_key_id = $1 AND user_id = $2`
)

// lockClassUser is the first key of the users' advisory locks.
const lockClassUser = "1936028531" // "sess" in ASCII

func (s *Store) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	return s.getOne(ctx, SQLGet, id, notFound("session", id))
}

func (s *Store) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	if len(hash) == 0 {
		return nil, sessiond.Errorf(sessiond.ENOTFOUND, "token not found")
	}
	return s.getOne(ctx, SQLGetByToken, hash,
		sessiond.Errorf(sessiond.ENOTFOUND, "token not found"))
}

func (s *Store) getOne(ctx context.Context, query string, arg any, missing error) (*sessiond.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var sess *sessiond.Session
	err := retry(ctx, func() (err error) {
		sess, err = scanSession(s.pool.QueryRow(ctx, query, arg))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, missing
	}
	return sess, s.wrap(err)
}

// GetMany returns the sessions of ids that exist, in one statement (the
// cache's background refresh, sessiond.MultiGetter).
func (s *Store) GetMany(ctx context.Context, ids []string) ([]*sessiond.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var out []*sessiond.Session
	err := retry(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ANY($1)`, ids)
		if err == nil {
			out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*sessiond.Session, error) { return scanSession(r) })
		}
		return err
	})
	return out, s.wrap(err)
}

// fnError carries the UpdateFunc's own error out of the transaction,
// so that it is returned unchanged.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (s *Store) Update(ctx context.Context, id string, fn sessiond.UpdateFunc) (*sessiond.Session, error) {
	var out *sessiond.Session
	err := s.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		cur, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("session", id)
		} else if err != nil {
			return err
		}
		next := cur.Clone()
		if err := fn(next); errors.Is(err, sessiond.ErrUnchanged) {
			out = cur
			return nil
		} else if err != nil {
			return fnError{err}
		}
		next.ID, next.TokenHash = cur.ID, cur.TokenHash
		_, err = tx.Exec(ctx, `UPDATE sessions SET user_id = $2, user_name = $3, active = $4, open_time = $5,
			request_time = $6, close_time = $7, expire_time = $8, close_reason = $9, address = $10, client = $11,
			user_json = $12, data = $13, api_key_id = $14, request_bucket = $15 WHERE id = $1`,
			next.ID, next.UserID, next.UserName, next.Active, next.OpenTime, next.RequestTime, nullTime(next.CloseTime),
			nullTime(next.ExpireTime), next.CloseReason, next.Address, next.Client, nullBytes(next.User),
			nullBytes(next.Data), next.APIKeyID, RequestBucket(next.RequestTime))
		out = next
		return err
	})
	var fe fnError
	if errors.As(err, &fe) {
		return nil, fe.err
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) Delete(ctx context.Context, id string) (*sessiond.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var sess *sessiond.Session
	err := retry(ctx, func() (err error) {
		sess, err = scanSession(s.pool.QueryRow(ctx, `DELETE FROM sessions WHERE id = $1 RETURNING `+sessionColumns, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("session", id)
	}
	return sess, s.wrap(err)
}

// where builds the SQL condition of f, appending its parameters to args.
func where(f sessiond.Filter, args []any) (string, []any) {
	var conds []string
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.UserID != "" {
		conds = append(conds, "user_id = "+arg(f.UserID))
	}
	if f.Address != "" {
		conds = append(conds, "address = "+arg(f.Address))
	}
	if f.Client != "" {
		conds = append(conds, "client = "+arg(f.Client))
	}
	if f.APIKeyID != nil {
		conds = append(conds, "api_key_id = "+arg(*f.APIKeyID))
	}
	// Alive, as Session.Alive: active and now <= request_time+idle and
	// (no expire_time or now <= expire_time).
	notDead := ""
	alive := func() string {
		if notDead == "" {
			idleBound := arg(ceilMicro(f.Now.Add(-f.IdleTimeout)))
			now := arg(ceilMicro(f.Now))
			notDead = "(request_time >= " + idleBound + " AND (expire_time IS NULL OR expire_time >= " + now + "))"
		}
		return "(active AND " + notDead + ")"
	}
	if f.Active != nil {
		if *f.Active {
			conds = append(conds, alive())
		} else {
			conds = append(conds, "NOT "+alive())
		}
	}
	switch f.State {
	case "":
	case sessiond.StateActive:
		conds = append(conds, alive())
	case sessiond.StateExpired:
		alive()
		conds = append(conds, "((active AND NOT "+notDead+") OR (NOT active AND close_reason = '"+sessiond.ReasonExpired+"'))")
	case sessiond.StateClosed:
		conds = append(conds, "(NOT active AND close_reason <> '"+sessiond.ReasonExpired+"')")
	default:
		conds = append(conds, "false")
	}
	if !f.FromTime.IsZero() {
		conds = append(conds, "open_time >= "+arg(ceilMicro(f.FromTime)))
	}
	if !f.ToTime.IsZero() {
		conds = append(conds, "open_time <= "+arg(floorMicro(f.ToTime)))
	}
	if f.Search != "" {
		p := arg(strings.ToLower(f.Search))
		var any []string
		for _, col := range []string{"id", "user_id", "user_name", "address", "client"} {
			// The database's collation, not the "C" of ids, so that
			// lower() folds beyond ASCII as strings.ToLower does.
			any = append(any, "strpos(lower("+col+` COLLATE "default"), `+p+") > 0")
		}
		conds = append(conds, "("+strings.Join(any, " OR ")+")")
	}
	if len(conds) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// List reads the page and, when asked, the total in one round trip (a
// batch of two statements).
func (s *Store) List(ctx context.Context, f sessiond.Filter, p sessiond.Paging) (*sessiond.Page, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	cond, args := where(f, nil)
	page := &sessiond.Page{Data: []*sessiond.Session{}}
	err := retry(ctx, func() error {
		page.Data = page.Data[:0]
		b := &pgx.Batch{}
		if p.Total {
			b.Queue(`SELECT count(*) FROM sessions`+cond, args...).QueryRow(func(row pgx.Row) error {
				var n int64
				page.Total = &n
				return row.Scan(&n)
			})
		}
		if p.Take > 0 {
			query := `SELECT ` + sessionColumns + ` FROM sessions` + cond +
				` ORDER BY open_time DESC, id LIMIT ` + strconv.Itoa(p.Take) + ` OFFSET ` + strconv.Itoa(max(p.Skip, 0))
			b.Queue(query, args...).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					sess, err := scanSession(rows)
					if err != nil {
						return err
					}
					page.Data = append(page.Data, sess)
				}
				return rows.Err()
			})
		}
		if b.Len() == 0 {
			return nil
		}
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return page, nil
}

func (s *Store) Touch(ctx context.Context, touches []sessiond.Touch) error {
	if len(touches) == 0 {
		return nil
	}
	// One row per session (the latest time), in id order so that
	// concurrent touches lock rows in the same order.
	latest := make(map[string]time.Time, len(touches))
	for _, t := range touches {
		if cur, ok := latest[t.ID]; !ok || t.Time.After(cur) {
			latest[t.ID] = t.Time
		}
	}
	ids := make([]string, 0, len(latest))
	for id := range latest {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	times, buckets := make([]time.Time, len(ids)), make([]time.Time, len(ids))
	for i, id := range ids {
		times[i] = latest[id]
		buckets[i] = RequestBucket(times[i])
	}
	// Chunks in id order, each bounded by the operation timeout on its
	// own: a flush of a busy second can hold more rows than one bound fits.
	for len(ids) > 0 {
		n := min(len(ids), touchChunk)
		if err := s.touch(ctx, ids[:n], times[:n], buckets[:n]); err != nil {
			return err
		}
		ids, times, buckets = ids[n:], times[n:], buckets[n:]
	}
	return nil
}

// touchChunk is how many sessions one statement of Touch updates.
const touchChunk = 5000

// touch sets the request times of one chunk. Within a minute it changes no
// indexed column (request_bucket moves once a minute), so each row's update
// is HOT when its page has room: no index entry is written.
func (s *Store) touch(ctx context.Context, ids []string, times, buckets []time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.wrap(retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `UPDATE sessions s SET request_time = t.time, request_bucket = t.bucket
			FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS t(id, time, bucket)
			WHERE s.id = t.id AND s.active AND s.request_time < t.time`, ids, times, buckets)
		return err
	}))
}

func (s *Store) UserSessions(ctx context.Context, apiKeyID, userID string, min int) ([]sessiond.UserSession, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var out []sessiond.UserSession
	err := retry(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, `SELECT id, open_time, request_time, expire_time FROM sessions
			WHERE active AND api_key_id = $1 AND user_id = $2`, apiKeyID, userID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				u      sessiond.UserSession
				expire *time.Time
			)
			if err := rows.Scan(&u.ID, &u.OpenTime, &u.RequestTime, &expire); err != nil {
				return err
			}
			u.OpenTime, u.RequestTime = u.OpenTime.UTC(), u.RequestTime.UTC()
			if expire != nil {
				u.ExpireTime = expire.UTC()
			}
			out = append(out, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	if len(out) < min {
		return nil, nil
	}
	return out, nil
}

// CloseExpired closes the dead sessions batch by batch. Each batch takes
// the rows no other instance holds (SKIP LOCKED) and sets them as
// sessiond.ApplyClose(s, s.Deadline(idle), ReasonExpired) does: the
// deadline is least(request_time + idle, expire_time) (least skips NULL).
func (s *Store) CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error) {
	idleBound, nowBound := ceilMicro(now.Add(-idle)), ceilMicro(now)
	return s.batches(ctx, `WITH dead AS (
			SELECT id FROM sessions
			WHERE active AND ((request_bucket < $1 AND request_time < $1) OR expire_time < $2)
			LIMIT $4 FOR UPDATE SKIP LOCKED)
		UPDATE sessions s SET active = false, close_reason = '`+sessiond.ReasonExpired+`',
			close_time = least(s.request_time + $3::bigint * interval '1 microsecond', s.expire_time),
			request_time = least(s.request_time + $3::bigint * interval '1 microsecond', s.expire_time),
			user_json = NULL, data = NULL
		FROM dead WHERE s.id = dead.id
		RETURNING s.id`, idleBound, nowBound, idle.Microseconds())
}

// Purge deletes closed sessions batch by batch (their statistics go with
// them, ON DELETE CASCADE).
func (s *Store) Purge(ctx context.Context, closedBefore time.Time) ([]string, error) {
	return s.batches(ctx, `WITH old AS (
			SELECT id FROM sessions
			WHERE NOT active AND close_time < $1
			LIMIT $2 FOR UPDATE SKIP LOCKED)
		DELETE FROM sessions s USING old WHERE s.id = old.id
		RETURNING s.id`, ceilMicro(closedBefore))
}

// batches runs query (whose last parameter is the batch size) until it
// returns fewer than batchSize ids, and returns them all. Each batch is
// bounded by the OpTimeout and committed on its own, so the ids done
// before a failure are returned with it.
func (s *Store) batches(ctx context.Context, query string, args ...any) ([]string, error) {
	args = append(args, batchSize)
	var ids []string
	for {
		n, err := func() (int, error) {
			ctx, cancel := s.op(ctx)
			defer cancel()
			var batch []string
			err := retry(ctx, func() error {
				rows, err := s.pool.Query(ctx, query, args...)
				if err != nil {
					return err
				}
				batch, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			ids = append(ids, batch...)
			return len(batch), err
		}()
		if err != nil {
			return ids, s.wrap(err)
		}
		if n < batchSize {
			return ids, nil
		}
	}
}

func (s *Store) AddConnStats(ctx context.Context, deltas []sessiond.ConnDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	// One row per session and service, in key order (no row twice in one
	// upsert, and one lock order for concurrent flushes).
	type key struct{ session, service string }
	sum := make(map[key]*sessiond.ConnDelta)
	for _, d := range deltas {
		k := key{d.SessionID, d.Service}
		if cur := sum[k]; cur != nil {
			cur.Requests += d.Requests
			cur.Reads += d.Reads
			cur.Writes += d.Writes
			cur.Errors += d.Errors
			if d.LastUsed.After(cur.LastUsed) {
				cur.LastUsed = d.LastUsed
			}
		} else {
			d := d
			sum[k] = &d
		}
	}
	keys := slices.SortedFunc(func(yield func(key) bool) {
		for k := range sum {
			if !yield(k) {
				return
			}
		}
	}, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.session, b.session), cmp.Compare(a.service, b.service))
	})
	var (
		sessions, services                 = make([]string, len(keys)), make([]string, len(keys))
		requests, reads, writes, errorsCol = make([]int64, len(keys)), make([]int64, len(keys)), make([]int64, len(keys)), make([]int64, len(keys))
		lastUsed                           = make([]*time.Time, len(keys))
	)
	for i, k := range keys {
		d := sum[k]
		sessions[i], services[i] = d.SessionID, d.Service
		requests[i], reads[i], writes[i], errorsCol[i] = d.Requests, d.Reads, d.Writes, d.Errors
		lastUsed[i] = nullTime(d.LastUsed)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	// FOR KEY SHARE holds each session against a concurrent delete until
	// the statistics are in; sessions already gone are skipped.
	return s.wrap(retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO conn_stats AS c (session_id, service, requests, reads, writes, errors, last_used)
			SELECT d.session_id, d.service, d.requests, d.reads, d.writes, d.errors, d.last_used
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::timestamptz[])
				AS d(session_id, service, requests, reads, writes, errors, last_used)
			JOIN sessions s ON s.id = d.session_id
			ORDER BY d.session_id, d.service
			FOR KEY SHARE OF s
			ON CONFLICT (session_id, service) DO UPDATE SET
				requests = c.requests + excluded.requests,
				reads = c.reads + excluded.reads,
				writes = c.writes + excluded.writes,
				errors = c.errors + excluded.errors,
				last_used = greatest(c.last_used, excluded.last_used)`,
			sessions, services, requests, reads, writes, errorsCol, lastUsed)
		return err
	}))
}

func (s *Store) ConnStats(ctx context.Context, sessionID string) ([]sessiond.ConnStat, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var out []sessiond.ConnStat
	err := retry(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, `SELECT service, requests, reads, writes, errors, last_used
			FROM conn_stats WHERE session_id = $1 ORDER BY service`, sessionID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				c    sessiond.ConnStat
				last *time.Time
			)
			if err := rows.Scan(&c.Service, &c.Requests, &c.Reads, &c.Writes, &c.Errors, &last); err != nil {
				return err
			}
			if last != nil {
				c.LastUsed = last.UTC()
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

func (s *Store) CreateAPIKey(ctx context.Context, k *sessiond.APIKey) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, name, secret_hash, created) VALUES ($1, $2, $3, $4)`,
		k.ID, k.Name, k.SecretHash, k.Created)
	if err = s.wrap(err); sessiond.ErrorCode(err) == sessiond.ECONFLICT {
		return &sessiond.Error{Code: sessiond.ECONFLICT, Message: "api key " + k.ID + " already exists", Err: err}
	}
	return err
}

func scanKey(row pgx.Row) (*sessiond.APIKey, error) {
	var k sessiond.APIKey
	if err := row.Scan(&k.ID, &k.Name, &k.SecretHash, &k.Created); err != nil {
		return nil, err
	}
	k.Created = k.Created.UTC()
	return &k, nil
}

func (s *Store) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var k *sessiond.APIKey
	err := retry(ctx, func() (err error) {
		k, err = scanKey(s.pool.QueryRow(ctx, `SELECT id, name, secret_hash, created FROM api_keys WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("api key", id)
	}
	return k, s.wrap(err)
}

func (s *Store) ListAPIKeys(ctx context.Context) ([]*sessiond.APIKey, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var out []*sessiond.APIKey
	err := retry(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT id, name, secret_hash, created FROM api_keys ORDER BY created, id`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*sessiond.APIKey, error) { return scanKey(r) })
		return err
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	if out == nil {
		out = []*sessiond.APIKey{}
	}
	return out, nil
}

func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int64
	err := retry(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM api_keys WHERE id = $1`, id)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return s.wrap(err)
	}
	if n == 0 {
		return notFound("api key", id)
	}
	return nil
}
