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
package main

import (
	"bufio"
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
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of each round of each scenario (servers and load; not the baselines, not the set-up) to `prefix`.<scenario>.<round>")
		eachFlag = flag.Bool("each", false, "print every round's figures, not only the medians")
		tracep   = flag.String("trace", "", "write an execution trace of each round of each scenario to `prefix`.<scenario>.<round> (see go tool trace)")
	)
	flag.Parse()
	profilePrefix, tracePrefix, each = *cpuprof, *tracep, *eachFlag
	if err := run(*duration, *conns, *rounds, *large, *settle, *only, *dataDir); err != nil {
		fmt.Fprintln(os.Stderr, "sessiond-load:", err)
		os.Exit(1)
	}
}

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

type result struct {
	name      string
	ops, ref  float64 // median ops/s of the scenario and of its baseline
	ratio     float64 // median of the rounds' ratios
	low, high float64 // the lowest and highest round's ratio
	refName   string
	target    float64
}

func run(duration time.Duration, conns, rounds, large int, settle time.Duration, only, dataDir string) error {
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
	bareProxy := serve(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upURL)
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.SetXForwarded()
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024},
	})
	fixed := []byte(`{"id":"0123456789abcdef0123456789abcdef","user_id":"user-1","user_name":"User One","active":true,` +
		`"open_time":"2026-11-22T10:00:00.000Z","request_time":"2026-11-22T10:00:00.000Z","close_time":null,` +
		`"expire_time":null,"address":"10.0.0.1","client":"web","user":null,"data":{"cart":3}}` + "\n")
	bare := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(fixed)))
		w.Write(fixed)
	}))

	m, err := startDaemon(filepath.Join(dataDir, "main"), upstream)
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
	getReq := func(ids []string) builder {
		return post("/v1/sessions/get_session_by_id", func(r *rand.Rand) string {
			return `{"session_id":"` + ids[r.IntN(len(ids))] + `"}`
		}, "")
	}

	var results []result
	measure := func(key, name, refName string, target float64, refAddr string, ref builder, addr string, b builder, c int) {
		// Each round measures the baseline and the scenario back to back,
		// in alternating order, and its ratio compares the two: the
		// machine's load drifts between rounds more than within one.
		var ops, refs, ratios []float64
		for i := 0; i < rounds; i++ {
			var cpu, refCPU time.Duration
			scenario := func() {
				stop := profile(key + "." + strconv.Itoa(i+1))
				var n float64
				n, cpu = load(addr, c, duration, b)
				ops = append(ops, n)
				stop()
			}
			if i%2 == 1 {
				scenario()
			}
			n, refCPU := load(refAddr, c, duration, ref)
			refs = append(refs, n)
			if i%2 == 0 {
				scenario()
			}
			ratios = append(ratios, ops[i]/refs[i])
			if each {
				fmt.Printf("    round %d: %.0f / %.0f = %.2f (CPU per request %.1f / %.1f µs)\n", i+1, ops[i], refs[i], ratios[i],
					float64(cpu)/1e3, float64(refCPU)/1e3)
			}
		}
		r := result{name: name, ops: median(ops), ref: median(refs), ratio: median(ratios),
			low: slices.Min(ratios), high: slices.Max(ratios), refName: refName, target: target}
		results = append(results, r)
		printResult(r)
	}

	if enabled("get1k") {
		measure("get1k", "get_session_by_id, 1k stored", "T", 0.8, bare, bareReq, sd, getReq(ids), conns)
	}
	if enabled("open") {
		open := post("/v1/sessions/open_session", func(r *rand.Rand) string {
			return `{"user_id":"u` + strconv.Itoa(r.IntN(1000)) + `","user_name":"Load","address":"127.0.0.1","client":"load","data":{"n":1}}`
		}, "")
		// The open scenario writes hundreds of thousands of sessions, and
		// pebble flushes and compacts after them: it runs on a daemon and
		// store of its own (with the same 1,000 sessions to start from),
		// so that none of that lands in the other scenarios.
		om, err := startDaemon(filepath.Join(dataDir, "open"), upstream)
		if err != nil {
			return err
		}
		if _, _, err := prefill(ctx, om.Service, "", 1000, nil, nil); err != nil {
			om.Close()
			return err
		}
		measure("open", "open_session, durable, 64 clients", "T", 0.4, bare, bareReq, om.PublicAddr(), open, 64)
		if err := om.Close(); err != nil {
			return err
		}
	}
	if enabled("verify") {
		hdr := "APIKey: " + key.ID + "\r\nSecret: " + secret + "\r\n"
		verify := post("/api/v1/session/jsonrpc", func(r *rand.Rand) string {
			return `{"jsonrpc":"2.0","id":1,"method":"session.verify_session_token","params":{"token":"` + tokens[r.IntN(len(tokens))] + `"}}`
		}, hdr)
		measure("verify", "session.verify_session_token", "T", 0.8, bare, bareReq, sd, verify, conns)
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
		direct, _ := load(upstream, conns, duration, plain)
		fmt.Printf("  (direct upstream, no proxy: %.0f ops/s)\n", direct)
		measure("gateway", "gateway GET, trivial upstream", "bare ReverseProxy", 0.85, bareProxy, plain, sd, gw, conns)
	}
	if enabled("getlarge") && large > len(ids) {
		start := time.Now()
		fmt.Printf("  (storing %d sessions...", large)
		all, _, err := prefill(ctx, svc, "", large-len(ids), ids, nil)
		if err != nil {
			return err
		}
		fmt.Printf(" done in %s; %s for background compaction to settle)\n", time.Since(start).Round(time.Second), settle)
		time.Sleep(settle)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("  (Go heap in use with %s sessions stored: %d MiB)\n", human(large), ms.HeapInuse>>20)
		measure("getlarge", fmt.Sprintf("get_session_by_id, %s stored", human(large)), "T", 0.75, bare, bareReq, sd, getReq(all), conns)
	}

	fmt.Println()
	failed := 0
	for _, r := range results {
		if r.ratio < r.target {
			failed++
		}
	}
	fmt.Printf("%d of %d targets met\n", len(results)-failed, len(results))
	return nil
}

// startDaemon runs sessiond in-process on the embedded store in dir, with a
// gateway route to upstream.
func startDaemon(dir, upstream string) (*daemon.Main, error) {
	cfg := config.Default()
	cfg.DataDir = dir
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
			for next.Add(1) <= int64(n) {
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
	return ids, tokens, firstErr
}

// builder appends one complete HTTP/1.1 request to b.
type builder func(r *rand.Rand, b []byte) []byte

// load runs c keep-alive connections against addr for d and returns the
// rate of 2xx responses per second and the process's CPU time (user and
// system: load generator and servers together) per 2xx response. Each
// connection sends a request, reads the whole response, and repeats.
func load(addr string, c int, d time.Duration, build builder) (float64, time.Duration) {
	var ok, bad atomic.Int64
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
			for time.Now().Before(deadline) {
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
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 200 && resp.StatusCode < 300 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
			if conn != nil {
				conn.Close()
			}
		}(uint64(i + 1))
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		fmt.Printf("  (%s: %d failed requests)\n", addr, n)
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

func printResult(r result) {
	verdict := "met"
	if r.ratio < r.target {
		verdict = "MISSED"
	}
	fmt.Printf("%-36s %7.0f ops/s  %-17s %7.0f ops/s  ratio %.2f (rounds %.2f-%.2f; target %.2f, %s)\n",
		r.name, r.ops, r.refName, r.ref, r.ratio, r.low, r.high, r.target, verdict)
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
