// Command sessiond-load measures sessiond's throughput on loopback against
// baselines measured in the same run, and prints the ratios the project
// targets (see README.md, "Performance").
//
// Every figure is a ratio to a baseline measured next to it with the same
// load generator: T, a bare net/http handler answering a POST with fixed
// JSON, or, for the gateway, a bare httputil.ReverseProxy in front of the
// same upstream. Each scenario runs several rounds, each round measuring
// the baseline and the scenario back to back (in alternating order), and
// reports the median of the rounds' ratios with their range. Absolute
// numbers on a shared machine are noise; ratios measured side by side much
// less so.
//
// With -store postgres://..., every daemon runs on that database, each in
// a fresh schema dropped at the end, and each scenario has a second
// baseline measured in the same rounds: "bare pgx", a handler of T's shape
// that runs the engine's own statement for the operation (by id, by token
// hash, the INSERT) through a pgxpool, on a table of the engine's schema.
//
// With -store redis://host:port/db or redis+cluster://h1:p1,h2:p2,...,
// every daemon runs under a key prefix of its own (?prefix=load<hex>:),
// whose keys are deleted at the end (on every master) and on Ctrl-C, and
// the second baseline is "bare go-redis": a handler of T's shape running
// the engine's own commands for the operation (HGETALL of the session;
// GET of the token pointer, then HGETALL; SET NX of the pointer, then
// EVALSHA of the engine's create script) through one go-redis client of
// the engine's kind. -redis-cluster starts a private three-master
// cluster (redis-server and redis-cli from $PATH) and runs on it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sessiond"
	"sessiond/config"
	"sessiond/daemon"
)

func main() {
	var (
		duration = flag.Duration("duration", 3*time.Second, "length of each measurement")
		conns    = flag.Int("conns", 64, "concurrent keep-alive connections")
		rounds   = flag.Int("rounds", 7, "rounds per scenario, each a baseline measurement next to a scenario measurement (the median of the rounds' ratios is reported)")
		large    = flag.Int("large", 1_000_000, "sessions stored for the large get_session_by_id run (0 skips it)")
		settle   = flag.Duration("settle", 15*time.Second, "pause after storing the large set, so that the store's background work (compaction) ends before measuring")
		only     = flag.String("only", "", "comma-separated scenarios to run (get1k,open,verify,gateway,getlarge); empty runs all")
		dataDir  = flag.String("data-dir", "", "directory for the daemons' data directories, main and open (default: a temporary one)")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of each round of each scenario and of each of its baselines (servers and load; not the set-up) to `prefix`.<scenario>.<round> and `prefix`.<scenario>.<baseline>.<round>")
		eachFlag = flag.Bool("each", false, "print every round's figures, not only the medians")
		tracep   = flag.String("trace", "", "write an execution trace of each round of each scenario and of each of its baselines, named as for -cpuprofile (see go tool trace)")
		store    = flag.String("store", "embedded", "the daemons' store: embedded, a PostgreSQL URL (postgres://user@host:port/db), on which each daemon and the bare pgx baseline get a fresh schema, dropped at the end, or a Redis URL (redis://host:port/db, redis+cluster://h1:p1,h2:p2,...), on which each gets a key prefix of its own, deleted at the end")
		cluster  = flag.Bool("redis-cluster", false, "start a private three-master Redis Cluster (redis-server, redis-cli) in a temporary directory, run on it (-store is ignored), and stop it at the end")
	)
	flag.Parse()
	profilePrefix, tracePrefix, each = *cpuprof, *tracep, *eachFlag
	if *cluster {
		c, err := startCluster()
		if err != nil {
			fmt.Fprintln(os.Stderr, "sessiond-load:", err)
			os.Exit(1)
		}
		*store = c.URL()
		stopCluster = c.Stop
	}
	err := run(*duration, *conns, *rounds, *large, *settle, *only, *dataDir, *store)
	if stopCluster != nil {
		stopCluster()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiond-load:", err)
		os.Exit(1)
	}
}

// stopping is set on an interrupt: the load and the prefill stop sending,
// so that the store's keys can be deleted without new ones coming.
var stopping atomic.Bool

// haltIfStopping parks the caller (the run) once stopping is set, until
// the interrupt's handler exits, so that nothing half-measured is printed.
func haltIfStopping() {
	if stopping.Load() {
		select {}
	}
}

// stopCluster stops the private cluster of -redis-cluster (also on an
// interrupt, after its keys are deleted); nil without one.
var stopCluster func()

// profilePrefix and tracePrefix, when set, name the CPU profiles and the
// execution traces written per round of each scenario.
var profilePrefix, tracePrefix string

// each tells measure to print every round.
var each bool

// profile starts a CPU profile and an execution trace, as asked, of the
// round named key and returns the function that ends them.
func profile(key string) func() {
	var stops []func()
	start := func(prefix string, begin func(io.Writer) error, end func()) {
		if prefix == "" {
			return
		}
		f, err := os.Create(prefix + "." + key)
		if err == nil {
			if err = begin(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sessiond-load:", err)
			return
		}
		stops = append(stops, func() { end(); f.Close() })
	}
	start(profilePrefix, pprof.StartCPUProfile, pprof.StopCPUProfile)
	start(tracePrefix, trace.Start, trace.Stop)
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// baseline is what a scenario is measured against, in the same rounds.
type baseline struct {
	name   string
	addr   string
	req    builder
	target float64 // the scenario's least ratio to it; 0: none
}

type result struct {
	name string
	ops  float64 // median ops/s of the scenario
	refs []refResult
}

// refResult is a scenario's figures against one baseline.
type refResult struct {
	name      string
	ref       float64 // median ops/s of the baseline
	ratio     float64 // median of the rounds' ratios
	low, high float64 // the lowest and highest round's ratio
	target    float64
}

func run(duration time.Duration, conns, rounds, large int, settle time.Duration, only, dataDir, store string) error {
	want := map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	enabled := func(name string) bool { return len(want) == 0 || want[name] }

	if dataDir == "" {
		d, err := os.MkdirTemp("", "sessiond-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dataDir = d
	}

	// A trivial upstream for the gateway, a bare reverse proxy to it, and the
	// bare handler T.
	upstream := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	}))
	upURL, _ := url.Parse("http://" + upstream)
	bareProxyHandler := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upURL)
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.SetXForwarded()
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024},
	}
	bareProxy := serve(bareProxyHandler)
	fixed := []byte(`{"id":"0123456789abcdef0123456789abcdef","user_id":"user-1","user_name":"User One","active":true,` +
		`"open_time":"2026-11-22T10:00:00.000Z","request_time":"2026-11-22T10:00:00.000Z","close_time":null,` +
		`"expire_time":null,"address":"10.0.0.1","client":"web","user":null,"data":{"cart":3}}` + "\n")
	bare := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(fixed)))
		w.Write(fixed)
	}))

	// On PostgreSQL: a fresh schema for each daemon and one for the bare
	// pgx baseline's table (two: reads, and the open's inserts), all
	// dropped at the end. pg is nil on the embedded store.
	var (
		pg       *bareDB
		pgOpen   *bareDB
		schemas  *pgSchemas
		pgSchema string // the main daemon's schema
	)
	onPG := strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
	onRedis := isRedisURL(store)
	if !onPG && !onRedis && store != "embedded" {
		return fmt.Errorf("-store %s: embedded, a postgres:// URL or a redis:// or redis+cluster:// URL", config.Redact(store))
	}
	// On Redis: a key prefix for each daemon and one for the bare
	// go-redis baseline's opens, all deleted at the end. rd is nil
	// elsewhere.
	var (
		prefixes   *redisPrefixes
		rd         *bareRedis
		mainPrefix string
	)
	daemonStore := func() (string, error) { return "embedded", nil }
	if onPG {
		schemas = &pgSchemas{base: store}
		defer schemas.dropAll()
		defer schemas.dropOnInterrupt()()
		daemonStore = func() (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			name, u, err := schemas.create(ctx)
			if pgSchema == "" {
				pgSchema = name
			}
			return u, err
		}
	}

	if onRedis {
		var err error
		if prefixes, err = newRedisPrefixes(store); err != nil {
			return err
		}
		defer prefixes.Close()
		if stopCluster != nil {
			prefixes.onExit = append(prefixes.onExit, stopCluster)
		}
		defer prefixes.deleteOnInterrupt()()
		daemonStore = func() (string, error) {
			prefix, u := prefixes.create()
			if mainPrefix == "" {
				mainPrefix = prefix
			}
			return u, nil
		}
	}

	mainStore, err := daemonStore()
	if err != nil {
		return err
	}
	m, err := startDaemon(filepath.Join(dataDir, "main"), upstream, mainStore)
	if err != nil {
		return err
	}
	defer m.Close()
	sd := m.PublicAddr()
	svc := m.Service
	ctx := context.Background()

	fmt.Printf("sessiond-load: %d connections, %s per measurement, median ratio of %d rounds; GOMAXPROCS=%s\n\n",
		conns, duration, rounds, strconv.Itoa(runtime.GOMAXPROCS(0)))

	key, secret, err := svc.CreateAPIKey(ctx, "load")
	if err != nil {
		return err
	}
	ids, tokens, err := prefill(ctx, svc, key.ID, 1000, nil, nil)
	if err != nil {
		return err
	}
	if onPG {
		if pg, err = openBareDB(ctx, schemas); err != nil {
			return err
		}
		defer pg.Close()
		if err := pg.copySessions(ctx, pgSchema); err != nil {
			return err
		}
		fmt.Printf("  (store %s: schemas %s for sessiond, %s for bare pgx; pools of %d connections)\n",
			config.Redact(store), pgSchema, pg.schema, pg.pool.Config().MaxConns)
	}
	if onRedis {
		cfg := config.Default()
		openPrefix, _ := prefixes.create()
		rd = &bareRedis{rdb: prefixes.rdb, prefix: mainPrefix, openPrefix: openPrefix,
			idle: cfg.IdleTimeout, keep: cfg.Retention + time.Hour}
		fmt.Printf("  (store %s: prefix %s for sessiond, %s for bare go-redis's opens; appendonly %s)\n",
			config.Redact(store), mainPrefix, openPrefix, redisConfig(ctx, prefixes.rdb, "appendonly"))
	}

	post := func(path string, body func(r *rand.Rand) string, hdr string) builder {
		return func(r *rand.Rand, b []byte) []byte {
			payload := body(r)
			b = append(b, "POST "...)
			b = append(b, path...)
			b = append(b, " HTTP/1.1\r\nHost: load\r\nContent-Type: application/json\r\n"...)
			b = append(b, hdr...)
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, int64(len(payload)), 10)
			b = append(b, "\r\n\r\n"...)
			return append(b, payload...)
		}
	}
	bareReq := post("/", func(*rand.Rand) string { return `{"session_id":"0123456789abcdef0123456789abcdef"}` }, "")
	idBody := func(ids []string) func(r *rand.Rand) string {
		return func(r *rand.Rand) string { return `{"session_id":"` + ids[r.IntN(len(ids))] + `"}` }
	}
	getReq := func(ids []string) builder { return post("/v1/sessions/get_session_by_id", idBody(ids), "") }
	T := func(target float64) []baseline { return []baseline{{"T", bare, bareReq, target}} }
	// withPG adds the bare pgx baseline on PostgreSQL, serving h, loaded
	// with req.
	withPG := func(refs []baseline, h func() http.Handler, req builder, target float64) []baseline {
		if pg == nil {
			return refs
		}
		return append(refs, baseline{"bare pgx", serve(h()), req, target})
	}
	// withRedis adds the bare go-redis baseline on Redis likewise.
	withRedis := func(refs []baseline, h func() http.Handler, req builder, target float64) []baseline {
		if rd == nil {
			return refs
		}
		return append(refs, baseline{"bare go-redis", serve(h()), req, target})
	}

	// loadPG is load, and on PostgreSQL or Redis also the database
	// server's CPU time per 2xx response (the masters' on a cluster; 0 on
	// the embedded store, or when the server is not on this machine).
	var dbCPU func() time.Duration
	dbName := ""
	if onPG {
		if pm := schemas.postmaster(ctx); pm != 0 {
			dbCPU, dbName = func() time.Duration { return serverCPU(pm) }, "PostgreSQL's"
		}
	}
	if onRedis {
		if pids := serverPIDs(ctx, prefixes.rdb); pids != nil {
			dbCPU, dbName = func() time.Duration { return processCPU(pids) }, "Redis's"
		}
	}
	loadPG := func(addr string, c int, d time.Duration, build builder, want []byte) (float64, time.Duration, time.Duration) {
		if dbCPU == nil {
			n, cpu := load(addr, c, d, build, want)
			return n, cpu, 0
		}
		db0 := dbCPU()
		n, cpu := load(addr, c, d, build, want)
		return n, cpu, time.Duration(float64(dbCPU()-db0) / max(n*d.Seconds(), 1))
	}

	var results []result
	// measure runs the scenario (requests b to addr over c connections,
	// whose good answers hold want) against its baselines.
	measure := func(key, name string, refs []baseline, addr string, b builder, want string, c int) {
		// Each round measures the baselines and the scenario back to
		// back, in alternating order (baselines first, then scenario
		// first), and its ratios compare them: the machine's load drifts
		// between rounds more than within one.
		var ops []float64
		refOps := make([][]float64, len(refs))
		ratios := make([][]float64, len(refs))
		for i := 0; i < rounds; i++ {
			var cpu, dbCPU time.Duration
			refCPU, refDB := make([]time.Duration, len(refs)), make([]time.Duration, len(refs))
			scenario := func() {
				stop := profile(key + "." + strconv.Itoa(i+1))
				var n float64
				n, cpu, dbCPU = loadPG(addr, c, duration, b, []byte(want))
				ops = append(ops, n)
				stop()
			}
			baselines := func(order []int) {
				for _, j := range order {
					stop := profile(key + "." + strings.ReplaceAll(refs[j].name, " ", "-") + "." + strconv.Itoa(i+1))
					n, cpu, db := loadPG(refs[j].addr, c, duration, refs[j].req, nil)
					stop()
					refOps[j] = append(refOps[j], n)
					refCPU[j], refDB[j] = cpu, db
				}
			}
			order := make([]int, len(refs))
			for j := range order {
				order[j] = j
			}
			if i%2 == 1 {
				scenario()
				slices.Reverse(order)
			}
			baselines(order)
			if i%2 == 0 {
				scenario()
			}
			for j := range refs {
				ratios[j] = append(ratios[j], ops[i]/refOps[j][i])
			}
			if each {
				line := fmt.Sprintf("    round %d: %.0f / %.0f = %.2f", i+1, ops[i], refOps[0][i], ratios[0][i])
				cpus := fmt.Sprintf("%.1f / %.1f", float64(cpu)/1e3, float64(refCPU[0])/1e3)
				dbs := fmt.Sprintf("%.1f / %.1f", float64(dbCPU)/1e3, float64(refDB[0])/1e3)
				for j := 1; j < len(refs); j++ {
					line += fmt.Sprintf(", / %s %.0f = %.2f", refs[j].name, refOps[j][i], ratios[j][i])
					cpus += fmt.Sprintf(" / %.1f", float64(refCPU[j])/1e3)
					dbs += fmt.Sprintf(" / %.1f", float64(refDB[j])/1e3)
				}
				if dbName != "" {
					cpus += " µs; " + dbName + " " + dbs
				}
				fmt.Printf("%s (CPU per request %s µs)\n", line, cpus)
			}
		}
		r := result{name: name, ops: median(ops)}
		for j, ref := range refs {
			r.refs = append(r.refs, refResult{name: ref.name, ref: median(refOps[j]), ratio: median(ratios[j]),
				low: slices.Min(ratios[j]), high: slices.Max(ratios[j]), target: ref.target})
		}
		results = append(results, r)
		printResult(r)
	}

	if enabled("get1k") {
		refs := withPG(T(0.8), func() http.Handler { return pg.get(fixed) }, post("/", idBody(ids), ""), 0)
		refs = withRedis(refs, func() http.Handler { return rd.get(fixed) }, post("/", idBody(ids), ""), 0)
		measure("get1k", "get_session_by_id, 1k stored", refs, sd, getReq(ids), `"active":true`, conns)
	}
	if enabled("open") {
		openBody := func(r *rand.Rand) string {
			return `{"user_id":"u` + strconv.Itoa(r.IntN(1000)) + `","user_name":"Load","address":"127.0.0.1","client":"load","data":{"n":1}}`
		}
		open := post("/v1/sessions/open_session", openBody, "")
		// The open scenario writes hundreds of thousands of sessions, and
		// pebble flushes and compacts after them: it runs on a daemon and
		// store of its own (with the same 1,000 sessions to start from),
		// so that none of that lands in the other scenarios. On
		// PostgreSQL the bare pgx baseline inserts into a table of its
		// own too, starting from the main daemon's 1,000 sessions.
		openStore, err := daemonStore()
		if err != nil {
			return err
		}
		om, err := startDaemon(filepath.Join(dataDir, "open"), upstream, openStore)
		if err != nil {
			return err
		}
		if _, _, err := prefill(ctx, om.Service, "", 1000, nil, nil); err != nil {
			om.Close()
			return err
		}
		refs := T(0.4)
		if pg != nil {
			// On PostgreSQL the durable open's target is against the
			// engine's SQL for it (the user's lock, the insert, the count
			// against the per-user limit), not T; the INSERT alone is
			// shown beside it. Each has a table of its own, so that each
			// count sees only its own rows.
			var pgInsert *bareDB
			for _, b := range []**bareDB{&pgOpen, &pgInsert} {
				if *b, err = openBareDB(ctx, schemas); err != nil {
					om.Close()
					return err
				}
				defer (*b).Close()
				if err := (*b).copySessions(ctx, pgSchema); err != nil {
					om.Close()
					return err
				}
			}
			pgInsert.insertOnly = true
			refs = withPG(T(0), func() http.Handler { return pgOpen.open(fixed) }, post("/", openBody, ""), 0.8)
			refs = append(refs, baseline{"bare pgx INSERT", serve(pgInsert.open(fixed)), post("/", openBody, ""), 0})
		}
		if rd != nil {
			// On Redis too: against the engine's create commands alone.
			refs = withRedis(T(0), func() http.Handler { return rd.open(fixed) }, post("/", openBody, ""), 0.8)
		}
		measure("open", "open_session, durable, 64 clients", refs, om.PublicAddr(), open, `"active":true`, 64)
		if err := om.Close(); err != nil {
			return err
		}
	}
	if enabled("verify") {
		hdr := "APIKey: " + key.ID + "\r\nSecret: " + secret + "\r\n"
		verify := post("/api/v1/session/jsonrpc", func(r *rand.Rand) string {
			return `{"jsonrpc":"2.0","id":1,"method":"session.verify_session_token","params":{"token":"` + tokens[r.IntN(len(tokens))] + `"}}`
		}, hdr)
		tokenReq := post("/", func(r *rand.Rand) string { return `{"token":"` + tokens[r.IntN(len(tokens))] + `"}` }, "")
		refs := withPG(T(0.8), func() http.Handler { return pg.verify(fixed) }, tokenReq, 0)
		refs = withRedis(refs, func() http.Handler { return rd.verify(fixed) }, tokenReq, 0)
		measure("verify", "session.verify_session_token", refs, sd, verify, `"result":{"active":true}`, conns)
	}
	if enabled("gateway") {
		gw := func(r *rand.Rand, b []byte) []byte {
			b = append(b, "GET /up/v1/ping?x=1 HTTP/1.1\r\nHost: load\r\nXdata-Session-Token: "...)
			b = append(b, tokens[r.IntN(len(tokens))]...)
			return append(b, "\r\n\r\n"...)
		}
		plain := func(r *rand.Rand, b []byte) []byte {
			return append(b, "GET /up/v1/ping?x=1 HTTP/1.1\r\nHost: load\r\n\r\n"...)
		}
		direct, _ := load(upstream, conns, duration, plain, nil)
		fmt.Printf("  (direct upstream, no proxy: %.0f ops/s)\n", direct)
		// On PostgreSQL, bare pgx is the bare ReverseProxy after the
		// engine's SELECT of the token: a gateway without a cache.
		refs := withPG([]baseline{{"bare ReverseProxy", bareProxy, plain, 0.85}},
			func() http.Handler { return pg.gateway(bareProxyHandler) }, gw, 0)
		refs = withRedis(refs, func() http.Handler { return rd.gateway(bareProxyHandler) }, gw, 0)
		measure("gateway", "gateway GET, trivial upstream", refs, sd, gw, "ok\n", conns)
	}
	if enabled("getlarge") && large > len(ids) {
		start := time.Now()
		fmt.Printf("  (storing %d sessions...", large)
		var mem0 int64
		if onRedis {
			mem0, _ = usedMemory(ctx, prefixes.rdb)
		}
		all, _, err := prefill(ctx, svc, "", large-len(ids), ids, nil)
		if err != nil {
			return err
		}
		if onRedis {
			// Every session's keys and index entries, and its
			// session.opened event in the stream's log (kept an hour).
			if mem1, err := usedMemory(ctx, prefixes.rdb); err == nil {
				n := int64(large - len(ids))
				logs := streamMemory(ctx, prefixes.rdb, mainPrefix)
				fmt.Printf(" Redis used_memory %+d bytes for %d sessions, %d bytes per session, %d of them the stream's log;",
					mem1-mem0, n, (mem1-mem0)/n, logs/n)
			}
		}
		if pg != nil {
			if err := pg.copySessions(ctx, pgSchema); err != nil {
				return err
			}
		}
		fmt.Printf(" done in %s; %s for background compaction to settle)\n", time.Since(start).Round(time.Second), settle)
		time.Sleep(settle)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("  (Go heap in use with %s sessions stored: %d MiB)\n", human(large), ms.HeapInuse>>20)
		refs := withPG(T(0.75), func() http.Handler { return pg.get(fixed) }, post("/", idBody(all), ""), 0)
		refs = withRedis(refs, func() http.Handler { return rd.get(fixed) }, post("/", idBody(all), ""), 0)
		measure("getlarge", fmt.Sprintf("get_session_by_id, %s stored", human(large)), refs, sd, getReq(all), `"active":true`, conns)
	}

	fmt.Println()
	targets, failed := 0, 0
	for _, r := range results {
		for _, ref := range r.refs {
			if ref.target == 0 {
				continue
			}
			targets++
			if ref.ratio < ref.target {
				failed++
			}
		}
	}
	fmt.Printf("%d of %d targets met\n", targets-failed, targets)
	return nil
}

// startDaemon runs sessiond in-process on store (embedded: in dir), with
// its data directory in dir and a gateway route to upstream.
func startDaemon(dir, upstream, store string) (*daemon.Main, error) {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Store = store
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway = []string{"/up/=http://" + upstream}
	cfg.LogLevel = "error"
	m := &daemon.Main{Config: cfg, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Stdout: io.Discard, AdminPassword: "load"}
	if err := m.Open(); err != nil {
		return nil, err
	}
	return m, nil
}

// prefill opens n sessions through the service (durably, as the API does)
// with 256 concurrent writers, appending their ids and tokens to ids and
// tokens.
func prefill(ctx context.Context, svc *sessiond.Service, keyID string, n int, ids, tokens []string) ([]string, []string, error) {
	var (
		mu       sync.Mutex
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
	)
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && !stopping.Load() {
				s, tok, err := svc.Open(ctx, sessiond.OpenRequest{UserID: "user-" + strconv.Itoa(rand.IntN(100000)),
					UserName: "Load User", Address: "127.0.0.1", Client: "load", Data: []byte(`{"cart":3}`), APIKeyID: keyID})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					ids = append(ids, s.ID)
					tokens = append(tokens, tok)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	haltIfStopping()
	return ids, tokens, firstErr
}

// builder appends one complete HTTP/1.1 request to b.
type builder func(r *rand.Rand, b []byte) []byte

// load runs c keep-alive connections against addr for d and returns the
// rate of good responses per second and the process's CPU time (user and
// system: load generator and servers together) per good response. Each
// connection sends a request, reads the whole response, and repeats. A
// good response is a 2xx whose body holds want (any body when want is
// nil): a JSON-RPC error comes in a 200, and must not count as served.
func load(addr string, c int, d time.Duration, build builder, want []byte) (float64, time.Duration) {
	var ok, bad, wrong atomic.Int64
	var sample atomic.Pointer[string] // the first wrong answer's body
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, seed*7919))
			var conn net.Conn
			var br *bufio.Reader
			buf := make([]byte, 0, 1024)
			var body bytes.Buffer
			for time.Now().Before(deadline) && !stopping.Load() {
				if conn == nil {
					var err error
					if conn, err = net.Dial("tcp", addr); err != nil {
						bad.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					br = bufio.NewReaderSize(conn, 16<<10)
				}
				buf = build(r, buf[:0])
				if _, err := conn.Write(buf); err != nil {
					conn.Close()
					conn = nil
					bad.Add(1)
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					conn.Close()
					conn = nil
					bad.Add(1)
					continue
				}
				body.Reset()
				body.ReadFrom(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode < 200 || resp.StatusCode >= 300:
					bad.Add(1)
				case want != nil && !bytes.Contains(body.Bytes(), want):
					wrong.Add(1)
					b := body.String()
					sample.CompareAndSwap(nil, &b)
				default:
					ok.Add(1)
				}
			}
			if conn != nil {
				conn.Close()
			}
		}(uint64(i + 1))
	}
	wg.Wait()
	haltIfStopping()
	if n := bad.Load(); n > 0 {
		fmt.Printf("  (%s: %d failed requests)\n", addr, n)
	}
	if n := wrong.Load(); n > 0 {
		fmt.Printf("  (%s: %d answers without %q, not counted; the first: %.200q)\n", addr, n, want, *sample.Load())
	}
	n := ok.Load()
	return float64(n) / time.Since(start).Seconds(), (cpuTime() - cpu0) / time.Duration(max(n, 1))
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func serve(h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go (&http.Server{Handler: h}).Serve(ln)
	return ln.Addr().String()
}

// median returns the median of v (the upper one of an even count).
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// printResult prints a line per baseline: the scenario's figures on the
// first, the ratio to each baseline and its target, if it has one.
func printResult(r result) {
	for i, ref := range r.refs {
		verdict := ""
		if ref.target > 0 {
			verdict = fmt.Sprintf("; target %.2f, met", ref.target)
			if ref.ratio < ref.target {
				verdict = fmt.Sprintf("; target %.2f, MISSED", ref.target)
			}
		}
		head := fmt.Sprintf("%-36s %7.0f ops/s", r.name, r.ops)
		if i > 0 {
			head = fmt.Sprintf("%-36s %7s      ", "", "")
		}
		fmt.Printf("%s  %-17s %7.0f ops/s  ratio %.2f (rounds %.2f-%.2f%s)\n",
			head, ref.name, ref.ref, ref.ratio, ref.low, ref.high, verdict)
	}
}

func human(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}
