package jsonrpc

import (
	"context"
	"testing"

	"sessiond/internal/clientip"
)

// The address a session records is the client's as internal/clientip
// tells it (the same the gateway sends on): the peer (192.0.2.1 in these
// tests), unless the peer is a trusted proxy.
func TestOpenRecordsClientAddress(t *testing.T) {
	trustPeer, err := clientip.New([]string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		clients *clientip.Resolver
		xff     string
		want    string
	}{
		{"no proxy trusted", nil, "203.0.113.9", "192.0.2.1"},
		{"trusted peer", trustPeer, "6.6.6.6, 203.0.113.9", "203.0.113.9"},
		{"trusted peer, no chain", trustPeer, "", "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{Clients: tt.clients})
			hdr := e.a.creds()
			if tt.xff != "" {
				hdr.Set("X-Forwarded-For", tt.xff)
			}
			hdr.Set("X-Real-IP", "6.6.6.6")
			o := e.open(t, hdr, map[string]any{"user_id": "u"})
			s, err := e.svc.Get(context.Background(), o.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			if s.Address != tt.want {
				t.Errorf("address: got %q, want %q", s.Address, tt.want)
			}
		})
	}
}
