package main

// The PostgreSQL side of a run with -store postgres://...: a fresh schema
// per daemon and per baseline table, dropped at the end, and the "bare
// pgx" baseline, a handler of T's shape that runs the engine's own SQL
// through a pgxpool.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"sessiond"
	"sessiond/config"
	"sessiond/store/postgres"
)

// The engine's own statements: the bare pgx baseline runs exactly what
// sessiond runs for the same operation.
const (
	engineColumns = postgres.SQLColumns
	engineGet     = postgres.SQLGet
	engineVerify  = postgres.SQLGetByToken
	engineInsert  = postgres.SQLInsert
	engineLock    = postgres.SQLLockUser
	engineCrowded = postgres.SQLCrowded
)

// pgSchemas creates fresh schemas on one database and drops them all at
// the end of the run, or when the program is interrupted.
type pgSchemas struct {
	base string // the database URL given with -store

	mu      sync.Mutex
	created []string
}

// create makes a fresh schema named load_<random> and returns its name and
// a URL of the database whose search_path is that schema.
func (p *pgSchemas) create(ctx context.Context) (name, dbURL string, err error) {
	var b [6]byte
	rand.Read(b[:])
	name = "load_" + hex.EncodeToString(b[:])
	if err := p.exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("creating schema %s: %w", name, err)
	}
	p.mu.Lock()
	p.created = append(p.created, name)
	p.mu.Unlock()
	u, err := url.Parse(p.base)
	if err != nil {
		return "", "", err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return name, u.String(), nil
}

// connURL is the base URL without its pool_ parameters, which only
// pgxpool knows, for a connection of its own.
func (p *pgSchemas) connURL() string {
	u, err := url.Parse(p.base)
	if err != nil {
		return p.base
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// dropAll drops every schema made so far (with its tables), each within
// its own 30 seconds; failures are printed, not returned.
func (p *pgSchemas) dropAll() {
	p.mu.Lock()
	names := p.created
	p.created = nil
	p.mu.Unlock()
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := p.exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "sessiond-load: dropping schema %s: %v\n", name, err)
		}
		cancel()
	}
}

// dropOnInterrupt drops the schemas and exits when the program receives
// SIGINT or SIGTERM; the returned function stops watching.
func (p *pgSchemas) dropOnInterrupt() func() {
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "\nsessiond-load: %s: dropping the schemas\n", s)
			p.dropAll()
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}

// exec runs one statement on its own connection to the base database.
func (p *pgSchemas) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.connURL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// bareDB is the bare pgx baseline: handlers of T's shape (read the POST
// body, answer fixed JSON) that each send the engine's SQL for one
// operation, on a table made by the engine's migration, through a pool of
// pgxpool's default size (the engine's too).
type bareDB struct {
	pool   *pgxpool.Pool
	schema string
	// insertOnly makes open send the INSERT alone, without the per-user
	// limit's lock and count that the engine sends with it.
	insertOnly bool
}

// openBareDB makes a fresh schema, migrates it by opening the engine on
// it once, and connects a pool of its own to it.
func openBareDB(ctx context.Context, schemas *pgSchemas) (*bareDB, error) {
	name, dbURL, err := schemas.create(ctx)
	if err != nil {
		return nil, err
	}
	st, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		return nil, err
	}
	st.Close()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "sessiond-load bare pgx"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &bareDB{pool: pool, schema: name}, nil
}

func (b *bareDB) Close() { b.pool.Close() }

// copySessions copies into the baseline's table the sessions of schema
// from that it does not hold yet: the same rows, ids and token hashes as
// the daemon's.
func (b *bareDB) copySessions(ctx context.Context, from string) error {
	_, err := b.pool.Exec(ctx, `INSERT INTO sessions SELECT * FROM `+pgx.Identifier{from, "sessions"}.Sanitize()+
		` ON CONFLICT DO NOTHING`)
	if err == nil {
		_, err = b.pool.Exec(ctx, `ANALYZE sessions`)
	}
	return err
}

// scanRow reads one row of the engine's columns into what the engine's
// scanSession fills.
func scanRow(row pgx.Row) error {
	var (
		s                 sessiond.Session
		closeT, expireT   *time.Time
		user, data, token []byte
	)
	err := row.Scan(&s.ID, &s.UserID, &s.UserName, &s.Active, &s.OpenTime, &s.RequestTime, &closeT,
		&expireT, &s.CloseReason, &s.Address, &s.Client, &user, &data, &s.APIKeyID, &token)
	if err != nil {
		return err
	}
	s.OpenTime, s.RequestTime = s.OpenTime.UTC(), s.RequestTime.UTC()
	return nil
}

// firstValue returns the first JSON string value of a small request body
// (the text between the first `":"` and the next quote): the id, token or
// user id that the baseline's requests carry first. It reads at most 1 KiB
// and discards the rest.
func firstValue(r *http.Request) string {
	var buf [1024]byte
	n, _ := io.ReadFull(r.Body, buf[:])
	io.Copy(io.Discard, r.Body)
	body := buf[:n]
	for i := 0; i+3 <= len(body); i++ {
		if body[i] == '"' && body[i+1] == ':' && body[i+2] == '"' {
			rest := body[i+3:]
			for j, c := range rest {
				if c == '"' {
					return string(rest[:j])
				}
			}
			return ""
		}
	}
	return ""
}

// answer writes the fixed JSON of T, or the status of a failed statement.
func answer(w http.ResponseWriter, fixed []byte, err error) {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		http.Error(w, "not found", http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(fixed)))
		w.Write(fixed)
	}
}

// get answers {"session_id":...} with the engine's Get.
func (b *bareDB) get(fixed []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, fixed, scanRow(b.pool.QueryRow(r.Context(), engineGet, firstValue(r))))
	})
}

// verify answers {"token":...} with the engine's GetByTokenHash of the
// token's hash.
func (b *bareDB) verify(fixed []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hash := sessiond.HashSecret(firstValue(r))
		answer(w, fixed, scanRow(b.pool.QueryRow(r.Context(), engineVerify, hash)))
	})
}

// open answers {"user_id":...} with the engine's Create of a new session
// of that user, with what the open scenario's requests carry: the user's
// lock, the INSERT and the count in one batch and one implicit
// transaction (or, insertOnly, one autocommit INSERT), durable as the
// engine's (the server's synchronous_commit).
func (b *bareDB) open(fixed []byte) http.Handler {
	// What the Service passes Create: the default per-user limit, plus one.
	userMin := config.Default().MaxUserSessions + 1
	data := []byte(`{"n":1}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := firstValue(r)
		now := time.Now()
		args := []any{sessiond.NewID(), user, "Load", true, now, now, (*time.Time)(nil),
			(*time.Time)(nil), "", "127.0.0.1", "load", []byte(nil), data,
			"", sessiond.HashSecret(sessiond.NewSecret()), postgres.RequestBucket(now)}
		var err error
		if b.insertOnly {
			_, err = b.pool.Exec(r.Context(), engineInsert, args...)
		} else {
			// The engine's batch for a user's session: the user's lock,
			// the insert, the count against the limit.
			var crowded bool
			batch := &pgx.Batch{}
			batch.Queue(engineLock, "", user)
			batch.Queue(engineInsert, args...)
			batch.Queue(engineCrowded, "", user, userMin).QueryRow(func(row pgx.Row) error {
				return row.Scan(&crowded)
			})
			err = b.pool.SendBatch(r.Context(), batch).Close()
		}
		answer(w, fixed, err)
	})
}

// gateway runs the engine's GetByTokenHash of the request's session token
// before handing the request to next (the bare ReverseProxy): what a
// gateway without a cache would do.
func (b *bareDB) gateway(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hash := sessiond.HashSecret(r.Header.Get("Xdata-Session-Token"))
		if err := scanRow(b.pool.QueryRow(r.Context(), engineVerify, hash)); err != nil {
			answer(w, nil, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// postmaster returns the process id of the database server's postmaster,
// the parent of a backend of ours, when the server runs on this machine
// (0 otherwise).
func (p *pgSchemas) postmaster(ctx context.Context) int {
	conn, err := pgx.Connect(ctx, p.connURL())
	if err != nil {
		return 0
	}
	defer conn.Close(context.Background())
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0
	}
	name, f, ok := procStat(strconv.Itoa(backend))
	if !ok || name != "postgres" {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// serverCPU returns the CPU time (user and system) that the database
// server whose postmaster is pm has used so far: the postmaster's and its
// children's, with that of its ended children (backends whose connection
// closed, counted in the postmaster's), from /proc. Whoever else uses the
// server meanwhile is counted too. The resolution is the kernel's clock
// tick (10 ms) per process. 0 when pm is 0.
func serverCPU(pm int) time.Duration {
	if pm == 0 {
		return 0
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	pms := strconv.Itoa(pm)
	var ticks int64
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		_, f, ok := procStat(d.Name())
		if !ok || (d.Name() != pms && f[1] != pms) {
			continue
		}
		// utime stime cutime cstime
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * (time.Second / 100)
}

// procStat reads /proc/<pid>/stat: the command name and the fields after
// it (f[0] is the state, field 3 of stat(5); f[1] the parent's id).
func procStat(pid string) (name string, f []string, ok bool) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", nil, false
	}
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", nil, false
	}
	f = strings.Fields(string(stat[end+1:]))
	if len(f) < 15 {
		return "", nil, false
	}
	return string(stat[open+1 : end]), f, true
}
