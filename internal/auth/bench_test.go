package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"sessiond/internal/auth"
)

// BenchmarkCredentials reads APIKey/Secret credentials, as every JSON-RPC
// request authenticated with a key does.
func BenchmarkCredentials(b *testing.B) {
	h := auth.DefaultHeaders.WithDefaults()
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("APIKey", "k1")
	r.Header.Set("Secret", "s1")
	b.ReportAllocs()
	for b.Loop() {
		if c := h.Credentials(r); c.APIKey != "k1" {
			b.Fatal(c)
		}
	}
}

// BenchmarkLimiterCheck is the cost the limiter adds to every request:
// with no source in debt, and while other sources are refused.
func BenchmarkLimiterCheck(b *testing.B) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.RemoteAddr = "192.0.2.1:40000"
	b.Run("empty", func(b *testing.B) {
		l := auth.NewLimiter(auth.LimiterOptions{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Check(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("attacked", func(b *testing.B) {
		l := auth.NewLimiter(auth.LimiterOptions{Interval: time.Hour})
		for i := range 1000 {
			bad := httptest.NewRequest(http.MethodPost, "/", nil)
			bad.RemoteAddr = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256) + ":1"
			for range 20 {
				l.Failed(bad, "")
			}
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Check(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
