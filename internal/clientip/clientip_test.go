package clientip

import (
	"net/http"
	"strings"
	"testing"
)

func TestParseTrusted(t *testing.T) {
	p, err := ParseTrusted([]string{"10.0.0.0/8", "192.0.2.7, ::1", " fd00::/8 ", "::ffff:198.51.100.1", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range p {
		got = append(got, x.String())
	}
	if g, w := strings.Join(got, " "), "10.0.0.0/8 192.0.2.7/32 ::1/128 fd00::/8 198.51.100.1/32 10.0.0.0/8"; g != w {
		t.Errorf("got %s, want %s", g, w)
	}
	_, err = ParseTrusted([]string{"10.0.0.0/33", "example.com", "1.2.3.4", "fe80::1%eth0"})
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.0/33"`) || !strings.Contains(err.Error(), `"example.com"`) ||
		!strings.Contains(err.Error(), `"fe80::1%eth0"`) || strings.Contains(err.Error(), "1.2.3.4") {
		t.Errorf("got %v, want every bad entry named, and only those", err)
	}
}

func TestForwarded(t *testing.T) {
	r, err := New([]string{"10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer string
		xff        []string
		res        *Resolver
		client     string
		chain      string
		trusted    bool
	}{
		{"nil resolver", "10.0.0.1:5", []string{"1.1.1.1"}, nil, "10.0.0.1", "10.0.0.1", false},
		{"untrusted peer", "192.0.2.1:5", []string{"1.1.1.1"}, r, "192.0.2.1", "192.0.2.1", false},
		{"trusted peer, no chain", "10.0.0.1:5", nil, r, "10.0.0.1", "10.0.0.1", true},
		{"rightmost untrusted", "10.0.0.1:5", []string{"6.6.6.6, 1.1.1.1", "10.9.9.9"}, r, "1.1.1.1", "1.1.1.1, 10.9.9.9, 10.0.0.1", true},
		{"all trusted: leftmost", "10.0.0.1:5", []string{"10.0.0.3, 10.0.0.2"}, r, "10.0.0.3", "10.0.0.3, 10.0.0.2, 10.0.0.1", true},
		{"ports and v4-in-v6", "[::1]:5", []string{"[2001:db8::1]:443, ::ffff:10.0.0.2"}, r, "2001:db8::1", "2001:db8::1, 10.0.0.2, ::1", true},
		{"garbage stops the walk", "10.0.0.1:5", []string{"1.1.1.1, unknown, 10.0.0.2"}, r, "10.0.0.2", "10.0.0.2, 10.0.0.1", true},
		{"not an IP peer", "@", nil, r, "@", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			c, chain, trusted := tt.res.Forwarded(req)
			if c != tt.client || chain != tt.chain || trusted != tt.trusted {
				t.Errorf("got %q, %q, %v; want %q, %q, %v", c, chain, trusted, tt.client, tt.chain, tt.trusted)
			}
			if got := tt.res.Client(req); got != tt.client {
				t.Errorf("Client: got %q, want %q", got, tt.client)
			}
		})
	}
}

func TestIsAddressHeader(t *testing.T) {
	for _, name := range []string{
		"X-Forwarded-For", "x_forwarded_for", "X-FORWARDED-PORT", "X-Forwarded-Prefix", "X-Forwarded", "X-Forwarded-Ssl",
		"Forwarded", "FORWARDED_FOR", "X-Original-Forwarded-For", "X-Real-Ip", "x_real_ip", "True-Client-IP",
		"Cf-Connecting-Ip", "X-Client-IP", "X-Cluster-Client-IP", "Fastly-Client-IP", "Client-Ip",
	} {
		if !IsAddressHeader(name) {
			t.Errorf("%s: not seen as an address header", name)
		}
	}
	for _, name := range []string{"Accept", "Content-Type", "X-Request-Id", "Authorization", "X-Real", "Cookie", "Xdata-Session-Id"} {
		if IsAddressHeader(name) {
			t.Errorf("%s: seen as an address header", name)
		}
	}
	h := http.Header{"X_real_ip": {"1"}, "Accept": {"*/*"}, "Forwarded": {"for=1"}}
	Strip(h)
	if len(h) != 1 || h.Get("Accept") != "*/*" {
		t.Errorf("Strip left %v", h)
	}
}
