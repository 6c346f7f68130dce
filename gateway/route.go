package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Route sends every request whose path is under Prefix to Upstream. The
// request path and query reach the upstream unchanged: Upstream gives only
// the scheme and host (and port).
type Route struct {
	// Prefix is a URL path starting with '/'. A prefix ending in '/' covers
	// the subtree below it ("/api/v1/dataproc/" covers
	// "/api/v1/dataproc/jsonrpc"); one without covers itself and the subtree
	// below it ("/metrics" covers "/metrics" and "/metrics/x", not
	// "/metricsx").
	Prefix string
	// Upstream is an http or https URL with a host and no path other than
	// "/", no query, fragment or user info.
	Upstream *url.URL
}

// String returns the route in the PREFIX=URL form ParseRoute reads.
func (r Route) String() string {
	u := ""
	if r.Upstream != nil {
		u = r.Upstream.String()
	}
	return r.Prefix + "=" + u
}

// ParseRoute reads a route in the form of the --gateway flag,
// "PREFIX=URL", for example "/api/v1/dataproc/=http://127.0.0.1:9000".
func ParseRoute(s string) (Route, error) {
	prefix, raw, ok := strings.Cut(s, "=")
	if !ok {
		return Route{}, fmt.Errorf("gateway route %q: want PREFIX=URL, e.g. /api/v1/dataproc/=http://127.0.0.1:9000", s)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Route{}, fmt.Errorf("gateway route %q: upstream URL: %v", s, err)
	}
	r := Route{Prefix: prefix, Upstream: u}
	if err := r.Validate(); err != nil {
		return Route{}, err
	}
	return r, nil
}

// Validate reports what is wrong with r, if anything.
func (r Route) Validate() error {
	if err := validPrefix(r.Prefix); err != nil {
		return fmt.Errorf("gateway route %q: %v", r.Prefix, err)
	}
	if err := validUpstream(r.Upstream); err != nil {
		return fmt.Errorf("gateway route %q: %v", r.Prefix, err)
	}
	return nil
}

func validPrefix(p string) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("prefix must start with '/'")
	}
	if len(p) > 1024 {
		return fmt.Errorf("prefix is longer than 1024 bytes")
	}
	for i := 0; i < len(p); i++ {
		if !prefixChar(p[i]) {
			// '%', '?', '#', '{', '}', spaces and controls would make the
			// prefix ambiguous, or a pattern when registered on a ServeMux.
			return fmt.Errorf("prefix may not contain %q", p[i])
		}
	}
	// No empty, "." or ".." segments: a ServeMux would redirect such paths
	// before they reached the route.
	if c := path.Clean(p); c != p && c+"/" != p {
		return fmt.Errorf("prefix must be a clean path (no //, /./ or /../), e.g. %q", c+"/")
	}
	return nil
}

// prefixChar reports whether c may appear literally in a prefix: RFC 3986
// path characters other than '%'.
func prefixChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("/-._~!$&'()*+,;=:@", c) >= 0
}

func validUpstream(u *url.URL) error {
	switch {
	case u == nil:
		return fmt.Errorf("upstream URL is required")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("upstream URL must be http:// or https://")
	case u.Opaque != "" || u.Hostname() == "":
		return fmt.Errorf("upstream URL must have a host, e.g. http://127.0.0.1:9000")
	case u.User != nil:
		return fmt.Errorf("upstream URL may not carry user info")
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("upstream URL may not have a path: the request path is forwarded unchanged")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("upstream URL may not have a query or fragment")
	}
	return nil
}

// covers reports whether the route prefix p covers the URL path.
func covers(p, urlPath string) bool {
	if !strings.HasPrefix(urlPath, p) {
		return false
	}
	return p[len(p)-1] == '/' || len(urlPath) == len(p) || urlPath[len(p)] == '/'
}

// confined reports whether the request path, once normalized by a backend,
// stays within the route prefix p (which covers its decoded form). It is
// deliberately pessimistic about how backends normalize:
//
//   - the path as sent must start with the prefix as written: a prefix
//     reached only by decoding ("/api/v1/dataproc%2Fx", "/%61pi/...") is
//     somewhere else to a backend that does not decode;
//   - '/' and '\' both separate segments, encoded or not (urlPath is
//     already decoded once, so "%2F" and "%5C" are separators here too);
//   - empty segments count for nothing ("a//.." climbs out of "a"), as in a
//     backend that merges slashes;
//   - a segment is "..", or ".." followed by ";parameters" (as in
//     "..;/"), after one decoding and after a second one ("%252e%252e");
//   - "." segments stay in place.
//
// A path is refused as soon as a ".." would climb above the prefix's own
// level; ".." that stays below it ("a/../b") is allowed. Nothing else of the
// path is judged: it reaches the upstream exactly as it came.
func confined(p string, r *http.Request) bool {
	sent := originPath(r.RequestURI) // what the upstream will get
	if sent == "" {
		sent = r.URL.EscapedPath()
	}
	if !covers(p, sent) {
		return false
	}
	return confinedPath(p, r.URL.Path)
}

// confinedPath is the dot-segment half of confined, on the decoded path.
func confinedPath(p, urlPath string) bool {
	if !strings.Contains(urlPath, "..") && strings.IndexByte(urlPath, '%') < 0 {
		return true // the usual path: no dot-segment can hide in it
	}
	floor := depth(p, 0, 0)
	if floor < 0 || depth(urlPath, 0, floor) < floor {
		return false
	}
	if strings.IndexByte(urlPath, '%') >= 0 {
		// A backend that decodes twice sees "%252e%252e" as "..".
		if again, err := url.PathUnescape(urlPath); err == nil && again != urlPath {
			return depth(again, 0, floor) >= floor
		}
	}
	return true
}

// depth walks the segments of a decoded path and returns how deep the
// walk is at its end, or the first depth below floor that it reaches.
func depth(s string, d, floor int) int {
	for len(s) > 0 {
		i := strings.IndexAny(s, `/\`)
		seg := s
		if i >= 0 {
			seg, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		switch seg {
		case "", ".":
		case "..":
			if d--; d < floor {
				return d
			}
		default:
			d++
		}
	}
	return d
}
