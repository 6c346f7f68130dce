// Package pgtest gives tests a PostgreSQL to use: a fresh schema on the
// shared test database (Schema), or a private server that a test may stop
// and start (StartServer).
//
// The shared database is at $SESSIOND_TEST_POSTGRES, by default
// postgres://postgres@127.0.0.1:5432/test (trust authentication). Private
// servers are made with the initdb and pg_ctl of /usr/lib/postgresql/*/bin
// (or $SESSIOND_PG_BIN); as root they run as the user postgres.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the shared test database when $SESSIOND_TEST_POSTGRES is
// not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// BaseURL returns the URL of the shared test database.
func BaseURL() string {
	if u := os.Getenv("SESSIOND_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultURL
}

// Schema creates a fresh schema on the shared test database, drops it when
// the test ends, and returns a URL whose search_path is that schema.
func Schema(t testing.TB) string {
	t.Helper()
	return SchemaOn(t, BaseURL())
}

// Conn opens a connection of the test's own to u (a Schema's URL, or
// BaseURL), closed when the test ends.
func Conn(t testing.TB, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", redact(u), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// SchemaOn is Schema on the database at base (for example a private
// server's URL).
func SchemaOn(t testing.TB, base string) string {
	t.Helper()
	name := "t_" + randomHex(8)
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	if err := exec("CREATE SCHEMA " + ident); err != nil {
		t.Fatalf("pgtest: creating schema on %s: %v", redact(base), err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + ident + " CASCADE"); err != nil {
			t.Errorf("pgtest: dropping schema %s: %v", name, err)
		}
	})
	return WithParam(t, base, "search_path", name)
}

// WithParam returns u with the query parameter key set to value.
func WithParam(t testing.TB, u, key, value string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("pgtest: URL %s: %v", redact(u), err)
	}
	q := parsed.Query()
	q.Set(key, value)
	parsed.RawQuery = q.Encode()
	return parsed.String()
}

func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(unparsable URL)"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Server is a private PostgreSQL server of one test, in its own
// directory, on a free port of 127.0.0.1.
type Server struct {
	t       testing.TB
	bin     string
	dir     string // holds data/, the socket and the log; readable by the server's user
	port    int
	asUser  []string // the command prefix that runs as the server's user
	running bool
}

// StartServer initialises and starts a private server; it is stopped and
// removed when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := pgBin()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as postgres when the test runs as root.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{t: t, bin: bin, dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		if srv.running {
			srv.signal(syscall.SIGCONT)
			srv.pgctl("stop", "-m", "immediate")
		}
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root needs the user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		srv.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv.run(filepath.Join(bin, "initdb"), "-D", srv.data(), "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")
	srv.Start()
	return srv
}

// pgBin finds the directory of initdb and pg_ctl.
func pgBin() (string, error) {
	if d := os.Getenv("SESSIOND_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Reverse(dirs) // the newest version first
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no pg_ctl in /usr/lib/postgresql/*/bin or PATH (set SESSIOND_PG_BIN)")
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) run(name string, args ...string) {
	s.t.Helper()
	argv := append(append(slices.Clone(s.asUser), name), args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("pgtest: %s: %v\n%s", filepath.Base(name), err, out)
	}
}

func (s *Server) pgctl(args ...string) {
	s.t.Helper()
	s.run(filepath.Join(s.bin, "pg_ctl"), append([]string{"-D", s.data()}, args...)...)
}

// Start starts the server (again) on its port and waits until it accepts
// connections.
func (s *Server) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", s.port, s.dir)
	s.pgctl("start", "-w", "-t", "30", "-l", filepath.Join(s.dir, "log"), "-o", opts)
	s.running = true
}

// Stop stops the server (fast shutdown: connections are cut, committed
// work is kept) and waits until it is down.
func (s *Server) Stop() {
	s.t.Helper()
	s.pgctl("stop", "-w", "-m", "fast")
	s.running = false
}

// Freeze stops every process of the server (SIGSTOP) without closing a
// connection: the server is there but answers nothing, as across a
// network partition. Thaw resumes it.
func (s *Server) Freeze() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

// signal sends sig to the postmaster and to each of its children.
func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	text, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	first, _, _ := strings.Cut(string(text), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		s.t.Fatalf("pgtest: postmaster.pid: %v", err)
	}
	// The postmaster first, so that it forks no backend between the
	// listing of its children and their signal (a connection the pool
	// opened at that moment would go on answering).
	if err := syscall.Kill(pm, sig); err != nil && err != syscall.ESRCH {
		s.t.Fatalf("pgtest: signal %v to %d: %v", sig, pm, err)
	}
	if sig == syscall.SIGSTOP {
		// kill only queues the signal: a fork under way when it came
		// may still finish, after the listing below. Once the
		// postmaster shows as stopped, none is.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if state, _ := procStat(fmt.Sprintf("/proc/%d/stat", pm)); state == "T" || time.Now().After(deadline) {
				break
			}
		}
	}
	var pids []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		if _, ppid := procStat(st); ppid == pm {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
			s.t.Fatalf("pgtest: signal %v to %d: %v", sig, pid, err)
		}
	}
}

// procStat reads the state and the parent's pid from a /proc/<pid>/stat
// file; "" and 0 if it cannot.
func procStat(name string) (state string, ppid int) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, so read after the
	// last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// URL returns the URL of the server's database postgres.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}
