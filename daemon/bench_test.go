package daemon

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"sessiond"
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
