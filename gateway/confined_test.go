package gateway

import (
	"net/http"
	"testing"

	"sessiond/internal/auth"
	"sessiond/internal/clientip"
)

func TestConfined(t *testing.T) {
	tests := []struct {
		prefix, path string
		want         bool
	}{
		{"/api/v1/s/", "/api/v1/s/a/b.txt", true},
		{"/api/v1/s/", "/api/v1/s/", true},
		{"/api/v1/s/", "/api/v1/s/a/..", true},
		{"/api/v1/s/", "/api/v1/s/a/../../s/x", false}, // climbs out, even if it comes back
		{"/api/v1/s/", "/api/v1/s/..", false},
		{"/api/v1/s/", "/api/v1/s/..;x/y", false},
		{"/api/v1/s/", "/api/v1/s/a//../..", false},
		{"/api/v1/s/", `/api/v1/s/a\..\..`, false},
		{"/api/v1/s/", "/api/v1/s/%2e%2e/x", false}, // double-encoded, decoded once
		{"/api/v1/s/", "/api/v1/s/%2e%2", true},     // not an escape a backend could decode
		{"/api/v1/s/", "/api/v1/s/...", true},
		{"/metrics", "/metrics/../x", false},
		{"/metrics", "/metrics", true},
		{"/", "/../x", false},
		{"/", "/a/../x", true},
	}
	for _, tt := range tests {
		if got := confinedPath(tt.prefix, tt.path); got != tt.want {
			t.Errorf("confinedPath(%q, %q) = %v, want %v", tt.prefix, tt.path, got, tt.want)
		}
	}
}

// The per-request work the hardening added: the path check, the strip of
// address headers and the client address (no trusted proxies).
func BenchmarkHardeningHotPath(b *testing.B) {
	req, _ := http.NewRequest("GET", "http://gw/api/v1/dataproc/jsonrpc", nil)
	req.RemoteAddr = "192.0.2.1:50000"
	req.RequestURI = "/api/v1/dataproc/jsonrpc"
	hdr := http.Header{"Accept": {"*/*"}, "User-Agent": {"bench"}, "Content-Type": {"application/json"}, "Accept-Encoding": {"gzip"}}
	var res *clientip.Resolver
	strip := auth.DefaultHeaders.WithDefaults()
	b.ReportAllocs()
	for b.Loop() {
		if !confined("/api/v1/dataproc/", req) {
			b.Fatal("refused")
		}
		strip.StripWith(hdr, clientip.IsAddressHeader)
		if _, xff, _ := res.Forwarded(req); xff == "" {
			b.Fatal("no address")
		}
	}
}
