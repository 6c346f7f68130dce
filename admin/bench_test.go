package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/embedded"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// The listing's cost at scale: the first page of GET /v1/sessions with
// meta.total, unfiltered and filtered by user, over an embedded store of
// -admin.sessions sessions (10,000 users, so a user has a hundredth of a
// percent of them); also filtered by state and the instance (GET /v1/),
// whose counts of active sessions the store makes by reading every
// session's times. Filling a store takes minutes, so it is kept in
// -admin.benchdir (default: the temporary directory) and reused by the
// next run. Run with:
//
//	go test -run '^$' -bench ListSessions -benchtime 50x ./admin
//
// and on PostgreSQL (the shared test server; a fresh schema each run):
//
//	go test -run '^$' -bench ListSessions -benchtime 20x ./admin -args -admin.engine=postgres
//
// and on Redis (a private redis-server the benchmark starts):
//
//	go test -run '^$' -bench ListSessions -benchtime 20x ./admin -args -admin.engine=redis
var (
	benchSessions = flag.Int("admin.sessions", 1_000_000, "sessions in the store of BenchmarkListSessions")
	benchDir      = flag.String("admin.benchdir", "", "where BenchmarkListSessions keeps its filled store (default: the temporary directory)")
	benchVacuum   = flag.Bool("admin.vacuum", true, "on postgres, VACUUM (ANALYZE) the sessions after the fill, as autovacuum would")
	benchEngine   = flag.String("admin.engine", "embedded", "engine of BenchmarkListSessions: embedded, postgres (a fresh schema on the test server) or redis (a private redis-server), the last two filled at every run")
)

const benchUsers = 10_000

// benchSession is the i-th session of the benchmark store: a millisecond
// apart, user i%benchUsers.
func benchSession(i int, start time.Time) *sessiond.Session {
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i))
	h := sha256.Sum256(seed[:])
	t := start.Add(time.Duration(i) * time.Millisecond)
	return &sessiond.Session{
		ID:          hex.EncodeToString(h[:16]),
		UserID:      "user-" + strconv.Itoa(i%benchUsers),
		UserName:    "User",
		Active:      true,
		OpenTime:    t,
		RequestTime: t,
		Address:     "10.0.0.1",
		Client:      "bench",
		Data:        []byte(`{"cart":[1,2,3]}`),
		TokenHash:   h[16:],
	}
}

// benchStore opens the filled store of n sessions, filling it first if
// no earlier run did, with parallel Creates (as many clients would).
func benchStore(b *testing.B, n int) sessiond.Store {
	b.Helper()
	dir := *benchDir
	if dir == "" {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, fmt.Sprintf("sessiond-admin-bench-%d", n))
	done := filepath.Join(dir, "filled")
	var (
		st    sessiond.Store
		pgURL string // vacuumed after the fill
	)
	switch *benchEngine {
	case "embedded":
		es, err := embedded.Open(dir, embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { es.Close() })
		if _, err := os.Stat(done); err == nil {
			return es
		}
		st = es
	case "postgres":
		// The fill commits without waiting for the disk: the listing is
		// measured, not the inserts.
		url := pgtest.Schema(b)
		ps, err := postgres.Open(b.Context(), url+"&synchronous_commit=off", postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ps.Close() })
		st, done = ps, ""
		if *benchVacuum {
			pgURL = url
		}
	case "redis":
		// A private server, so that a million sessions never load the
		// shared one; it goes at the end of the run.
		rs, err := redis.Open(b.Context(), redistest.StartServer(b).URL(), redis.Options{IdleTimeout: 365 * 24 * time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rs.Close() })
		st, done = rs, ""
	default:
		b.Fatalf("-admin.engine %q: want embedded, postgres or redis", *benchEngine)
	}
	start := time.Now().Add(-time.Duration(n) * time.Millisecond).UTC().Truncate(time.Millisecond)
	b.Logf("filling a %s store with %d sessions", *benchEngine, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				sess := benchSession(i, start)
				if c, ok := st.(sessiond.IDChooser); ok {
					// As the Service places them: by user (Redis).
					sess.ID = c.NewSessionID("", sess.UserID)
				}
				if _, err := st.Create(context.Background(), sess, 0); err != nil && sessiond.ErrorCode(err) != sessiond.ECONFLICT {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if pgURL != "" {
		// As autovacuum would soon after a million inserts: counts are
		// index-only scans once the pages are marked all-visible.
		if _, err := pgtest.Conn(b, pgURL).Exec(b.Context(), `VACUUM (ANALYZE) sessions`); err != nil {
			b.Fatal(err)
		}
	}
	if done != "" {
		if err := os.WriteFile(done, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

func BenchmarkListSessions(b *testing.B) {
	st := benchStore(b, *benchSessions)
	svc := sessiond.NewService(st, nil, sessiond.Config{IdleTimeout: 365 * 24 * time.Hour}, nil)
	h := newHandler(b, svc)
	for _, bc := range []struct{ name, path string }{
		{"unfiltered", "/v1/sessions"},
		{"user", "/v1/sessions?filter[user]=user-4242"},
		{"state", "/v1/sessions?filter[state]=active"},
		{"instance", "/v1/"}, // counts the active sessions
		// The web console's poll: a page of 50, the table's fields only.
		{"console", "/v1/sessions?page[size]=50&page[number]=0&fields[sessions]=state,user,user_name,client,remote,connected,last_request,expires,idle"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, bc.path, nil)
			r.SetBasicAuth(testUser, testPassword)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
