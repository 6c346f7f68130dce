// Package clientip finds the address of the client behind a request (SPEC
// section 6): the direct peer, unless the peer is a configured trusted
// proxy, in which case the address is read from the X-Forwarded-For chain
// that proxy sent. The gateway (what backends see) and the JSON-RPC Session
// API (the address a session records) both use it, so they agree.
//
// It also knows the request headers that carry a client address (the
// X-Forwarded-* and Forwarded family, X-Real-IP and the like), which a
// client must never get through to a backend.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"sessiond/internal/auth"
)

// Resolver tells the client address of requests. The zero value, and a nil
// *Resolver, trust no proxy: the client is always the direct peer.
type Resolver struct {
	trusted []netip.Prefix
}

// ParseTrusted reads a list of trusted proxies, each an IP address
// ("10.1.2.3", "::1") or a CIDR block ("10.0.0.0/8", "fd00::/8"). An entry
// may itself be a comma-separated list. It reports every bad entry.
func ParseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var bad []string
	for _, item := range list {
		for s := range strings.SplitSeq(item, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if strings.Contains(s, "/") {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					bad = append(bad, fmt.Sprintf("%q", s))
					continue
				}
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				bad = append(bad, fmt.Sprintf("%q", s))
				continue
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not an IP address or CIDR block: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

// New returns a Resolver that trusts the given proxies (see ParseTrusted).
func New(trusted []string) (*Resolver, error) {
	p, err := ParseTrusted(trusted)
	if err != nil {
		return nil, err
	}
	return &Resolver{trusted: p}, nil
}

// Trusts reports whether a is a trusted proxy.
func (r *Resolver) Trusts(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client returns the client address of req, without a port: the direct
// peer, or, when the peer is a trusted proxy, the rightmost address of its
// X-Forwarded-For that is not a trusted proxy itself.
func (r *Resolver) Client(req *http.Request) string {
	c, _, _ := r.Forwarded(req)
	return c
}

// Forwarded returns the client address of req (as Client does), the
// X-Forwarded-For value to send on, and whether the direct peer is a
// trusted proxy (whose other X-Forwarded-* headers may then be believed).
//
// The value to send on is the peer alone, unless the peer is trusted: then
// it is the part of the peer's chain from the client on, the peer
// appended. Entries left of the client were chosen by the client (or by
// proxies nobody trusts) and are dropped. A chain entry that is not an
// address ends the walk: the client is the nearest address to its right.
// forwardFor is "" when the peer's address is unknown (a unix socket).
func (r *Resolver) Forwarded(req *http.Request) (client, forwardFor string, trustedPeer bool) {
	peer, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr, "", false // not an IP peer: nothing to forward
	}
	if r == nil || len(r.trusted) == 0 {
		return peer, peer, false // the common case: nothing to parse
	}
	pa, err := netip.ParseAddr(peer)
	if err != nil || !r.Trusts(pa) {
		return peer, peer, false
	}
	var hops []string
	for _, v := range req.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	client = pa.Unmap().String()
	keep := len(hops)
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client, keep = a.String(), i
		if !r.Trusts(a) {
			break
		}
	}
	chain := make([]string, 0, len(hops)-keep+1)
	for _, h := range hops[keep:] {
		a, _ := parseHop(h)
		chain = append(chain, a.String())
	}
	chain = append(chain, peer)
	return client, strings.Join(chain, ", "), true
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("1.2.3.4:5", "[::1]:5") as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// Client-address headers other than the prefixed families below: the
// names proxies, CDNs and load balancers use to pass a client's address
// on. Any spelling of them a client sends is removed before a request is
// forwarded.
var addressHeaders = []string{
	"X-Real-IP",
	"True-Client-IP",
	"CF-Connecting-IP",
	"CF-Connecting-IPv6",
	"X-Client-IP",
	"X-Cluster-Client-IP",
	"Fastly-Client-IP",
	"Client-IP",
	"X-Originating-IP",
	"X-Remote-IP",
	"X-Remote-Addr",
	"X-ProxyUser-IP",
	"X-Envoy-External-Address",
	"X-Azure-ClientIP",
	"X-Appengine-User-IP",
	"Akamai-Client-IP",
}

// IsAddressHeader reports whether a header of this name may carry a client
// address or other forwarding information, however it is spelled (case and
// '_'/'-' folded as auth.SameHeader does): the X-Forwarded-* family
// (-For, -Proto, -Host, -Port, -Prefix, -Server, ... and X-Forwarded
// itself), Forwarded (RFC 7239) and Forwarded-*, X-Original-Forwarded-*,
// and the names in addressHeaders. It runs on every header of every
// gateway request, so it rejects the usual names after a byte or two.
func IsAddressHeader(name string) bool {
	if len(name) < 9 { // shorter than every name here
		return false
	}
	switch name[0] | 0x20 { // the first letter, folded
	case 'x':
		if auth.HeaderHasPrefix(name, "X-Forwarded") || auth.HeaderHasPrefix(name, "X-Original-Forwarded") {
			return true
		}
	case 'f':
		if auth.HeaderHasPrefix(name, "Forwarded") {
			return true
		}
	case 't', 'c', 'a':
	default:
		return false
	}
	for _, h := range addressHeaders {
		if len(h) == len(name) && auth.SameHeader(name, h) {
			return true
		}
	}
	return false
}

// Strip removes every address header (IsAddressHeader) from h.
func Strip(h http.Header) {
	for name := range h {
		if IsAddressHeader(name) {
			delete(h, name)
		}
	}
}
