package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"sessiond"
	"sessiond/gateway"
	"sessiond/store/memory"
)

// The three benchmarks below send the same GET over real loopback HTTP with
// one shared keep-alive client: straight to a trivial upstream, through a
// bare httputil.ReverseProxy, and through the gateway (token lookup,
// header strip and inject, counting). Compare ns/op of the last two: the
// gateway should keep at least 0.85x the bare proxy's throughput.

func benchUpstream(b *testing.B) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","result":"1.0.0","id":1}`)
	}))
	b.Cleanup(up.Close)
	return up
}

func benchClient(b *testing.B) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 512
	b.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t}
}

func runBench(b *testing.B, url string, hdr http.Header) {
	client := benchClient(b)
	get := func() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header = hdr.Clone()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	get() // warm the connection pools
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get()
		}
	})
}

func BenchmarkDirectUpstream(b *testing.B) {
	up := benchUpstream(b)
	runBench(b, up.URL+"/api/v1/dataproc/jsonrpc", http.Header{})
}

func BenchmarkBareReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() }}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	rp.Transport = t
	srv := httptest.NewServer(rp)
	b.Cleanup(srv.Close)
	runBench(b, srv.URL+"/api/v1/dataproc/jsonrpc", http.Header{})
}

func BenchmarkGatewayGet(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	svc := sessiond.NewService(memory.New(), nil, sessiond.Config{}, nil)
	gw, err := gateway.New(svc, []gateway.Route{{Prefix: prefix, Upstream: target}},
		gateway.Options{Dirs: newDirs(b), ResponseHeaderTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gw.Close)
	ctx := context.Background()
	k, _, _ := svc.CreateAPIKey(ctx, "bench")
	_, token, err := svc.Open(ctx, sessiond.OpenRequest{APIKeyID: k.ID})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	b.Cleanup(srv.Close)
	runBench(b, srv.URL+prefix+"jsonrpc", http.Header{"Xdata-Session-Token": {token}})
}
