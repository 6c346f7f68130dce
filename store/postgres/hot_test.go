package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sessiond"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
)

// updates returns the updates and the HOT updates counted on the sessions
// table of the schema at u, waiting until at least want updates are
// counted: backends report their counts to the statistics some time after
// their statements (at once when they exit).
func updates(t *testing.T, u string, want int64) (n, hot int64) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	schema := pu.Query().Get("search_path")
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := query(t, u, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
			WHERE schemaname = $1 AND relname = 'sessions'`, schema)
		got, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) ([2]int64, error) {
			var c [2]int64
			return c, r.Scan(&c[0], &c[1])
		})
		if err != nil {
			t.Fatal(err)
		}
		if got[0] >= want || time.Now().After(deadline) {
			return got[0], got[1]
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A touch within the minute of a session's request time changes no indexed
// column, so PostgreSQL updates the row in place (HOT: no index entry
// written); a touch into a later minute moves the sweep's request_bucket
// and is an ordinary update.
func TestTouchIsHOT(t *testing.T) {
	u := pgtest.Schema(t)
	s := open(t, u, postgres.Options{})
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	const n, every = 300, 10
	for i := range n {
		id := fmt.Sprintf("s%04d", i)
		sess := &sessiond.Session{ID: id, UserID: "u", Active: true, OpenTime: base, RequestTime: base.Add(time.Second),
			TokenHash: []byte(id), Data: []byte(`{"cart":[1,2,3]}`)}
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Every tenth session in use, as a flush of request times writes them:
	// twice in the same minute, then once in the next.
	touch := func(at time.Time) {
		var batch []sessiond.Touch
		for i := 0; i < n; i += every {
			batch = append(batch, sessiond.Touch{ID: fmt.Sprintf("s%04d", i), Time: at})
		}
		if err := s.Touch(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	touch(base.Add(20 * time.Second))
	touch(base.Add(40 * time.Second))
	s.Close() // its backends exit, and report their counts
	const touched = n / every
	if upd, hot := updates(t, u, 2*touched); upd != 2*touched || hot != 2*touched {
		t.Fatalf("after two touches within the minute: %d updates, %d HOT; want %d, all HOT", upd, hot, 2*touched)
	}

	s = open(t, u, postgres.Options{})
	touch(base.Add(70 * time.Second))
	s.Close()
	if upd, hot := updates(t, u, 3*touched); upd != 3*touched || hot != 2*touched {
		t.Errorf("after a touch into the next minute: %d updates, %d HOT; want %d, %d HOT", upd, hot, 3*touched, 2*touched)
	}
	// The touches were written, and the sweep's column followed them.
	s = open(t, u, postgres.Options{})
	got, err := s.Get(t.Context(), "s0000")
	if err != nil {
		t.Fatal(err)
	}
	if !got.RequestTime.Equal(base.Add(70 * time.Second)) {
		t.Errorf("request time after the touches: %v, want %v", got.RequestTime, base.Add(70*time.Second))
	}
	bucket, err := pgx.CollectExactlyOneRow(query(t, u, `SELECT request_bucket FROM sessions WHERE id = 's0000'`),
		pgx.RowTo[time.Time])
	if want := base.Add(time.Minute); err != nil || !bucket.Equal(want) {
		t.Errorf("request_bucket after the touches: %v (%v), want %v", bucket.UTC(), err, want)
	}
}

// The idle sweep finds sessions by request_bucket and decides by
// request_time: of two sessions in the minute of the idle bound, the one
// used before the bound is closed and the one used after it is kept.
func TestSweepInTheBoundsMinute(t *testing.T) {
	u := pgtest.Schema(t)
	s := open(t, u, postgres.Options{})
	idle := 30 * time.Minute
	now := time.Date(2026, 11, 22, 10, 0, 30, 0, time.UTC) // the bound is 09:30:30
	for id, used := range map[string]time.Duration{
		"before": -idle - 10*time.Second, // 09:30:20, in the bound's minute
		"after":  -idle + 10*time.Second, // 09:30:40, in the bound's minute
		"old":    -2 * idle,
		"recent": -time.Minute,
	} {
		sess := &sessiond.Session{ID: id, Active: true, OpenTime: now.Add(-3 * idle), RequestTime: now.Add(used),
			TokenHash: []byte(id)}
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			t.Fatal(err)
		}
	}
	closed, err := s.CloseExpired(t.Context(), now, idle)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(closed)
	if !slices.Equal(closed, []string{"before", "old"}) {
		t.Errorf("swept %v, want [before old]", closed)
	}
	// A touch moves a session out of the sweep's reach.
	if err := s.Touch(t.Context(), []sessiond.Touch{{ID: "after", Time: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if closed, err := s.CloseExpired(t.Context(), now.Add(idle), idle); err != nil || !slices.Equal(closed, []string{"recent"}) {
		t.Errorf("second sweep: %v (%v), want [recent]", closed, err)
	}
}

// A schema at version 1, with sessions, is migrated to the HOT layout: each
// session's request_bucket is filled from its request time, and the sweep
// and touches work on the migrated rows.
func TestMigrateFromVersion1(t *testing.T) {
	u := pgtest.Schema(t)
	v1, err := os.ReadFile("migrations/001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn := pgtest.Conn(t, u)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, sql := range []string{
		string(v1),
		postgres.SQLMigrationsTable,
		`INSERT INTO schema_migrations (version) VALUES (1)`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	used := map[string]time.Time{
		"idle":  now.Add(-time.Hour + 17*time.Second + 250*time.Millisecond),
		"alive": now.Add(-time.Minute + 42*time.Second),
	}
	for id, at := range used {
		if _, err := conn.Exec(ctx, `INSERT INTO sessions (id, active, open_time, request_time, token_hash)
			VALUES ($1, true, $2, $2, $3)`, id, at, []byte(id)); err != nil {
			t.Fatal(err)
		}
	}

	s := open(t, u, postgres.Options{})
	for id, at := range used {
		var bucket time.Time
		if err := conn.QueryRow(ctx, `SELECT request_bucket FROM sessions WHERE id = $1`, id).Scan(&bucket); err != nil {
			t.Fatal(err)
		}
		if want := postgres.RequestBucket(at); !bucket.Equal(want) {
			t.Errorf("%s: request_bucket %v after the migration, want %v", id, bucket.UTC(), want)
		}
	}
	closed, err := s.CloseExpired(t.Context(), now, 30*time.Minute)
	if err != nil || !slices.Equal(closed, []string{"idle"}) {
		t.Errorf("sweep after the migration: %v (%v), want [idle]", closed, err)
	}
	if err := s.Touch(t.Context(), []sessiond.Touch{{ID: "alive", Time: now}}); err != nil {
		t.Fatal(err)
	}
	var bucket time.Time
	if err := conn.QueryRow(ctx, `SELECT request_bucket FROM sessions WHERE id = 'alive'`).Scan(&bucket); err != nil || !bucket.Equal(now) {
		t.Errorf("request_bucket after a touch: %v (%v), want %v", bucket.UTC(), err, now)
	}
}
