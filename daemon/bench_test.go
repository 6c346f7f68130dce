package daemon

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"sessiond"
	"sessiond/internal/httpx"
	"sessiond/internal/httpx/httpxtest"
)

// Benchmarks over real loopback HTTP, with a keep-alive client and 64
// concurrent clients (b.SetParallelism), against the embedded store with
// durable writes. BenchmarkHTTPBare is the baseline T: a bare net/http
// handler answering a POST with fixed JSON. Compare ns/op side by side from
// one run; cmd/sessiond-load prints throughput ratios.

var fixed = []byte(`{"id":"0123456789abcdef0123456789abcdef","user_id":"user-1","active":true,"data":{"cart":3}}` + "\n")

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}
}

func runPost(b *testing.B, url string, body func(r *rand.Rand) []byte) {
	c := benchClient()
	b.ReportAllocs()
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			resp, err := c.Post(url, "application/json", bytes.NewReader(body(r)))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

func BenchmarkHTTPBare(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(fixed)
	}))
	defer srv.Close()
	runPost(b, srv.URL, func(*rand.Rand) []byte { return []byte(`{"session_id":"0123456789abcdef0123456789abcdef"}`) })
}

func benchMain(b *testing.B, n int) (*Main, []string) {
	m := startMain(b, "embedded")
	ids := make([]string, n)
	for i := range ids {
		s, _, err := m.Service.Open(context.Background(), sessiond.OpenRequest{UserID: "u" + strconv.Itoa(i), Data: []byte(`{"cart":3}`)})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = s.ID
	}
	return m, ids
}

func BenchmarkHTTPGetSessionByID(b *testing.B) {
	m, ids := benchMain(b, 1000)
	runPost(b, "http://"+m.PublicAddr()+"/v1/sessions/get_session_by_id", func(r *rand.Rand) []byte {
		return []byte(`{"session_id":"` + ids[r.IntN(len(ids))] + `"}`)
	})
}

func BenchmarkHTTPOpenSession(b *testing.B) {
	m, _ := benchMain(b, 0)
	runPost(b, "http://"+m.PublicAddr()+"/v1/sessions/open_session", func(r *rand.Rand) []byte {
		return []byte(`{"user_id":"u` + strconv.Itoa(r.IntN(1000)) + `","client":"bench","data":{"cart":3}}`)
	})
}

func BenchmarkHTTPStoreSessionData(b *testing.B) {
	m, ids := benchMain(b, 1000)
	runPost(b, "http://"+m.PublicAddr()+"/v1/sessions/store_session_data", func(r *rand.Rand) []byte {
		return []byte(`{"session_id":"` + ids[r.IntN(len(ids))] + `","data":{"cart":` + strconv.Itoa(r.IntN(100)) + `}}`)
	})
}

// BenchmarkPublicVerify calls the public listener's whole handler (the
// middleware with metrics and access-log switch, the routing, the JSON-RPC
// API, the Service, the embedded store) with a reused request and writer:
// what sessiond adds to net/http's own work for a verify, and what it
// allocates. cmd/sessiond-load measures the same request over loopback
// against T.
func BenchmarkPublicVerify(b *testing.B) {
	h, req := verifyBench(b, 1)
	r, rd, w := req(0)
	b.ReportAllocs()
	for b.Loop() {
		serveVerify(h, r, rd, w)
	}
	checkVerified(b, w)
}

// BenchmarkPublicVerifyParallel is BenchmarkPublicVerify on both cores at
// once, over 1,000 sessions picked at random, as the load program's
// verify runs: it also counts what the two cores contend for (locks,
// shared counters) and the cache misses of a working set larger than one
// session.
func BenchmarkPublicVerifyParallel(b *testing.B) {
	const n = 1000
	h, req := verifyBench(b, n)
	type call struct {
		r  *http.Request
		rd *httpxtest.Body
		w  *httpxtest.Writer
	}
	// A set of calls for each goroutine, reused.
	sets := make([][]call, runtime.GOMAXPROCS(0))
	for g := range sets {
		sets[g] = make([]call, n)
		for i := range sets[g] {
			c := &sets[g][i]
			c.r, c.rd, c.w = req(i)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := next.Add(1) - 1
		calls := sets[g]
		rnd := rand.New(rand.NewPCG(uint64(g), 1))
		var last *httpxtest.Writer
		for pb.Next() {
			c := &calls[rnd.IntN(n)]
			serveVerify(h, c.r, c.rd, c.w)
			last = c.w
		}
		if last != nil {
			checkVerified(b, last)
		}
	})
}

// verifyBench opens n sessions of one API key through the public handler
// of a daemon on the embedded store, and returns the handler and a
// function making the verify request of session i (a new request, body
// and writer each call).
func verifyBench(b *testing.B, n int) (http.Handler, func(i int) (*http.Request, *httpxtest.Body, *httpxtest.Writer)) {
	m := startMain(b, "embedded")
	var h http.Handler
	for _, l := range m.listeners {
		if l.name == "public" {
			h = l.srv.Handler
		}
	}
	key, secret, err := m.Service.CreateAPIKey(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	ctx := httpx.BaseContext(m.Log)(nil) // the server's base context
	newReq := func(body []byte) *http.Request {
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/session/jsonrpc", nil)
		r.Header.Set("APIKey", key.ID)
		r.Header.Set("Secret", secret)
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = int64(len(body))
		return r
	}
	tokenRE := regexp.MustCompile(`"access_token":"([^"]+)"`)
	bodies := make([][]byte, n)
	for i := range bodies {
		open := []byte(`{"jsonrpc":"2.0","id":1,"method":"session.open_session","params":{"user_id":"u` + strconv.Itoa(i) + `"}}`)
		r, rd, w := newReq(open), &httpxtest.Body{}, httpxtest.NewWriter()
		rd.Reset(open)
		r.Body = rd
		h.ServeHTTP(w, r)
		tok := tokenRE.FindSubmatch(w.Body)
		if tok == nil {
			b.Fatalf("open: %d %s", w.Status, w.Body)
		}
		bodies[i] = []byte(`{"jsonrpc":"2.0","id":1,"method":"session.verify_session_token","params":{"token":"` + string(tok[1]) + `"}}`)
	}
	return h, func(i int) (*http.Request, *httpxtest.Body, *httpxtest.Writer) {
		rd := &httpxtest.Body{}
		rd.Reset(bodies[i])
		return newReq(bodies[i]), rd, httpxtest.NewWriter()
	}
}

// serveVerify serves r again: its body rewound, the writer cleared.
func serveVerify(h http.Handler, r *http.Request, rd *httpxtest.Body, w *httpxtest.Writer) {
	delete(r.Header, "X-Correlation-Id") // set by the middleware last time
	rd.Seek(0, io.SeekStart)
	r.Body = rd
	w.Reset()
	h.ServeHTTP(w, r)
}

func checkVerified(b *testing.B, w *httpxtest.Writer) {
	if w.Status != http.StatusOK || string(w.Body) != `{"jsonrpc":"2.0","result":{"active":true},"id":1}` {
		b.Fatalf("got %d %s", w.Status, w.Body)
	}
}
