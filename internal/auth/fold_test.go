package auth

import (
	"net/http"
	"testing"
)

func TestHeaderFolding(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		same bool
	}{
		{"X-Real-IP", "x_real_ip", true},
		{"X-REAL-IP", "X-Real-Ip", true},
		{"X-Real-IP", "X-Real-IPs", false},
		{"X-Real-IP", "", false},
	} {
		if got := SameHeader(tt.a, tt.b); got != tt.same {
			t.Errorf("SameHeader(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
	if !HeaderHasPrefix("x_forwarded_port", "X-Forwarded") || HeaderHasPrefix("X-Forward", "X-Forwarded") || HeaderHasPrefix("X", "") {
		t.Error("HeaderHasPrefix")
	}
	h := http.Header{"Xdata_session_id": {"forged"}, "X-Drop-Me": {"1"}, "Accept": {"*/*"}}
	DefaultHeaders.WithDefaults().StripWith(h, func(name string) bool { return SameHeader(name, "x-drop-me") })
	if len(h) != 1 || h.Get("Accept") == "" {
		t.Errorf("StripWith left %v", h)
	}
}
