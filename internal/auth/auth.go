// Package auth reads client credentials from HTTP headers. The JSON-RPC
// Session API, the gateway and the files API all authenticate the same way
// (SPEC section 5): a session token first, then APIKey/Secret.
package auth

import (
	"net/http"
	"strings"

	"sessiond"
	"sessiond/internal/httpx"
)

// Headers names the headers sessiond reads and sets. All are configurable.
type Headers struct {
	Token      string // session token from the client
	APIKey     string // API key id from the client
	Secret     string // API key secret from the client
	SessionID  string // session id, set by sessiond for backends
	SessionDir string // session directory, set by sessiond for backends
}

// DefaultHeaders are the header names of SPEC sections 5 and 6.
var DefaultHeaders = Headers{
	Token:      "Xdata-Session-Token",
	APIKey:     "APIKey",
	Secret:     "Secret",
	SessionID:  "Xdata-Session-Id",
	SessionDir: "Xdata-Session-Dir",
}

// WithDefaults fills empty names with the defaults and puts every name in
// canonical form (so Header.Get need not canonicalize it per request).
func (h Headers) WithDefaults() Headers {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
		*p = http.CanonicalHeaderKey(*p)
	}
	set(&h.Token, DefaultHeaders.Token)
	set(&h.APIKey, DefaultHeaders.APIKey)
	set(&h.Secret, DefaultHeaders.Secret)
	set(&h.SessionID, DefaultHeaders.SessionID)
	set(&h.SessionDir, DefaultHeaders.SessionDir)
	return h
}

// Credentials reads the credentials of r: the token header, else an
// `Authorization: Bearer` token, and the APIKey and Secret headers. h's
// names must be canonical, as WithDefaults makes them: they are looked up
// in the header map as they are (Header.Get would canonicalize each again
// on every request).
func (h Headers) Credentials(r *http.Request) sessiond.Credentials {
	c := sessiond.Credentials{
		Token:  strings.TrimSpace(httpx.HeaderValue(r.Header, h.Token)),
		APIKey: strings.TrimSpace(httpx.HeaderValue(r.Header, h.APIKey)),
		Secret: strings.TrimSpace(httpx.HeaderValue(r.Header, h.Secret)),
	}
	if c.Token == "" {
		if a := httpx.HeaderValue(r.Header, "Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			c.Token = strings.TrimSpace(a[7:])
		}
	}
	return c
}

// Strip removes from hdr every header that carries sessiond credentials or
// that only sessiond may set (token, APIKey, Secret, session id and dir,
// and an `Authorization: Bearer` token), matching names case-insensitively
// and with '_' and '-' treated alike, so that no variant of them reaches a
// backend. Other Authorization schemes are the backend's own and are kept.
// It allocates nothing.
func (h Headers) Strip(hdr http.Header) { h.StripWith(hdr, nil) }

// StripWith is Strip that also removes, in the same pass over hdr, every
// header whose name drop (when not nil) reports.
func (h Headers) StripWith(hdr http.Header, drop func(name string) bool) {
	for name, vals := range hdr {
		if drop != nil && drop(name) {
			delete(hdr, name)
			continue
		}
		if sameHeader(name, "Authorization") {
			for _, v := range vals {
				if len(v) >= 7 && strings.EqualFold(v[:7], "bearer ") {
					delete(hdr, name)
					break
				}
			}
			continue
		}
		if sameHeader(name, h.Token) || sameHeader(name, h.APIKey) || sameHeader(name, h.Secret) ||
			sameHeader(name, h.SessionID) || sameHeader(name, h.SessionDir) {
			delete(hdr, name)
		}
	}
}

// SameHeader reports whether two header names are the same once ASCII
// case is ignored and '_' and '-' are treated alike: the comparison every
// strip of client-sent headers uses, so that no spelling slips through.
func SameHeader(a, b string) bool { return sameHeader(a, b) }

// HeaderHasPrefix reports whether the header name begins with prefix,
// compared as SameHeader compares names.
func HeaderHasPrefix(name, prefix string) bool {
	return len(name) >= len(prefix) && prefix != "" && sameHeader(name[:len(prefix)], prefix)
}

// sameHeader compares header names ignoring ASCII case and treating '_'
// and '-' alike.
func sameHeader(a, b string) bool {
	if len(a) != len(b) || b == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := fold(a[i]), fold(b[i])
		if x != y {
			return false
		}
	}
	return true
}

func fold(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}
