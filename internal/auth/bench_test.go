package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
