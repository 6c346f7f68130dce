// Package gateway forwards authenticated requests to backends (SPEC section
// 6): each configured route maps a path prefix to an upstream, and every
// request under a prefix is refused if its path could lead out of the
// prefix (route.go, confined), authenticated with a session token (or
// APIKey/Secret), stripped of every credential, identity and client address
// header the client sent, given the session's id (and directory) and a
// fresh X-Forwarded-For (internal/clientip) in trusted headers, streamed to
// the upstream with httputil.ReverseProxy, and counted in the session's
// statistics.
//
// The package also owns the error dialect of section 6 (see errors.go),
// which the session files API shares.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sessiond"
	"sessiond/internal/auth"
	"sessiond/internal/clientip"
	"sessiond/internal/gwerr"
	"sessiond/internal/httpx"
)

// SessionDirs gives a session its directory. *sessiondir.Dirs implements it.
type SessionDirs interface {
	// Ensure creates the session's directory if needed and returns its
	// absolute path.
	Ensure(sessionID string) (string, error)
}

// Options configure a Gateway. Zero values take the defaults.
type Options struct {
	// Headers names the credential and identity headers.
	Headers auth.Headers
	// Dirs, when set, gives each session a directory whose absolute path
	// is sent to upstreams in Headers.SessionDir.
	Dirs SessionDirs
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// headers (504 beyond). Default 30s. Bodies may stream for longer.
	ResponseHeaderTimeout time.Duration
	// DialTimeout bounds connecting to an upstream (502 beyond). Default 10s.
	DialTimeout time.Duration
	// FlushInterval is how often a response is flushed to the client while
	// its body is copied. The default, 0, flushes every write of a response
	// whose length is unknown (chunked, streaming) or that is an event
	// stream, and lets a response of known length go out as the 4 KiB write
	// buffer fills: every body streams, none is held whole. -1 flushes
	// every write of every response, which costs an extra write of the
	// headers alone per request (about 25% of throughput for small
	// responses, see BenchmarkGatewayGet).
	FlushInterval time.Duration
	// Log receives upstream failures. Default: the request's logger
	// (httpx.Logger).
	Log *slog.Logger
	// Clients tells the client address sent on in X-Forwarded-For, and
	// which proxies in front of sessiond are trusted. Default: none is;
	// the client is the direct peer.
	Clients *clientip.Resolver
	// Limiter slows down repeated authentication failures per source
	// (429); nil limits nothing.
	Limiter *auth.Limiter
	// OnForwarded, when set, is told of every request forwarded to an
	// upstream, once it is over (metrics): its route's prefix, the wait
	// for the upstream's response headers (0 when none came), and whether
	// it failed as the session statistics count it (502/504 from the
	// gateway, 5xx from the upstream, or a response broken off).
	OnForwarded func(prefix string, upstream time.Duration, failed bool)
}

// Defaults of Options.
const (
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultDialTimeout           = 10 * time.Second
)

// Gateway is an http.Handler that forwards requests to the route with the
// longest prefix covering their path.
type Gateway struct {
	svc       *sessiond.Service
	routes    []*route // longest prefix first
	hdr       auth.Headers
	sidKey    string // canonical header names, set without re-canonicalizing
	dirKey    string
	dirs      SessionDirs
	transport *http.Transport
	log       *slog.Logger
	clients   *clientip.Resolver
	limiter   *auth.Limiter // nil: no limit
	onForward func(prefix string, upstream time.Duration, failed bool)
}

type route struct {
	Route
	proxy *httputil.ReverseProxy
}

// New returns a Gateway over routes. Register it on a ServeMux for each of
// Prefixes(), or call it for any path: it answers 404 for paths no route
// covers.
func New(svc *sessiond.Service, routes []Route, opts Options) (*Gateway, error) {
	if svc == nil {
		return nil, errors.New("gateway: a session service is required")
	}
	if opts.ResponseHeaderTimeout <= 0 {
		opts.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	hdr := opts.Headers.WithDefaults()
	g := &Gateway{
		svc:     svc,
		hdr:     hdr,
		sidKey:  http.CanonicalHeaderKey(hdr.SessionID),
		dirKey:  http.CanonicalHeaderKey(hdr.SessionDir),
		dirs:    opts.Dirs,
		log:     opts.Log,
		clients: opts.Clients,
	}
	g.limiter = opts.Limiter
	g.onForward = opts.OnForwarded

	// One pooled keep-alive transport for every upstream. It passes bodies
	// through untouched (no transparent gzip) and bounds the wait for
	// response headers; bodies themselves may stream for as long as they
	// need.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.ResponseHeaderTimeout = opts.ResponseHeaderTimeout
	t.DisableCompression = true
	g.transport = t

	seen := make(map[string]bool)
	bufs := &bufferPool{}
	for _, r := range routes {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("gateway route %q is given twice", r.Prefix)
		}
		seen[r.Prefix] = true
		rt := &route{Route: r}
		rt.proxy = &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { g.rewrite(rt, pr) },
			Transport:     t,
			FlushInterval: opts.FlushInterval,
			BufferPool:    bufs,
			ErrorHandler:  func(w http.ResponseWriter, r *http.Request, err error) { g.proxyError(rt, w, r, err) },
			// The client's answer carries the request's correlation id
			// already (httpx.Middleware): never a second one.
			ModifyResponse: func(resp *http.Response) error {
				delete(resp.Header, httpx.CorrelationHeader)
				if x := exchangeOf(resp.Request); x != nil && !x.start.IsZero() {
					x.answered = time.Since(x.start)
				}
				return nil
			},
			ErrorLog: nil, // errors reach ErrorHandler; body copy failures only mean a peer went away
		}
		g.routes = append(g.routes, rt)
	}
	// Longest prefix first, so that /api/v1/dataproc/admin/ wins over
	// /api/v1/dataproc/.
	slices.SortStableFunc(g.routes, func(a, b *route) int { return len(b.Prefix) - len(a.Prefix) })
	return g, nil
}

// Routes returns the routes, longest prefix first.
func (g *Gateway) Routes() []Route {
	out := make([]Route, len(g.routes))
	for i, r := range g.routes {
		out[i] = r.Route
	}
	return out
}

// Prefixes returns the ServeMux patterns that cover every route: the
// prefix itself, and for a prefix without a trailing '/' also its subtree.
func (g *Gateway) Prefixes() []string {
	var out []string
	for _, r := range g.routes {
		out = append(out, r.Prefix)
		if !strings.HasSuffix(r.Prefix, "/") {
			out = append(out, r.Prefix+"/")
		}
	}
	return out
}

// Covers reports whether some route covers the URL path. A server that
// wants paths with "..", "." or "//" elements forwarded unchanged (a
// ServeMux redirects them to their clean form first) can send every
// covered path straight to the Gateway, ahead of its mux.
func (g *Gateway) Covers(urlPath string) bool { return g.match(urlPath) != nil }

// Close closes idle upstream connections.
func (g *Gateway) Close() { g.transport.CloseIdleConnections() }

func (g *Gateway) match(urlPath string) *route {
	for _, r := range g.routes {
		if covers(r.Prefix, urlPath) {
			return r
		}
	}
	return nil
}

// exchange is the state of one forwarded request. It is also the request's
// context (it embeds the client's), so that the proxy's Rewrite and
// ErrorHandler hooks find it without another allocation.
type exchange struct {
	context.Context
	sessionID string
	dir       string
	failed    bool // the gateway answered 502/504
	// start is when the request was forwarded and answered how long the
	// upstream took to answer its headers; set only for OnForwarded.
	start    time.Time
	answered time.Duration
	body     countingBody
	w        countingWriter
}

type exchangeKey struct{}

func (x *exchange) Value(key any) any {
	if key == (exchangeKey{}) {
		return x
	}
	return x.Context.Value(key)
}

func exchangeOf(r *http.Request) *exchange {
	x, _ := r.Context().Value(exchangeKey{}).(*exchange)
	return x
}

// ServeHTTP authenticates the request and forwards it to its route.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := g.match(r.URL.Path)
	if rt == nil {
		gwerr.WriteError(w, r, sessiond.Errorf(sessiond.ENOTFOUND, "no gateway route covers %s", r.URL.Path))
		return
	}
	// Before authentication: refusing costs nothing, and nothing of the
	// request is forwarded.
	if !confined(rt.Prefix, r) {
		gwerr.WriteError(w, r, sessiond.Errorf(sessiond.EINVALID,
			"the path could lead out of %s once normalized (dot-segments, encoded slashes or an encoded prefix)", rt.Prefix))
		return
	}
	caller, err := g.limiter.Authenticate(r, g.svc, g.hdr.Credentials(r))
	if err != nil {
		gwerr.WriteError(w, r, err)
		return
	}
	x := &exchange{Context: r.Context()}
	if caller.Session != nil {
		x.sessionID = caller.Session.ID
		if g.dirs != nil {
			if x.dir, err = g.dirs.Ensure(x.sessionID); err != nil {
				gwerr.WriteError(w, r, sessiond.Internal(fmt.Errorf("session directory of %s: %w", x.sessionID, err)))
				return
			}
		}
	}
	out := r.WithContext(x)
	if r.Body != nil && r.Body != http.NoBody {
		x.body.rc = r.Body
		out.Body = &x.body
		// The transport may still read the request body (if only to see
		// its end) after the upstream has answered and the response is
		// being copied. An HTTP/1 server closes a request body once the
		// response starts, unless full duplex is on; that late read would
		// then fail and make the transport drop the upstream connection
		// mid-response. Not every ResponseWriter supports it (HTTP/2 is
		// full duplex already), so an error here is fine.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	x.w.ResponseWriter = w
	if x.sessionID == "" && g.onForward == nil {
		rt.proxy.ServeHTTP(&x.w, out)
		return
	}
	if g.onForward != nil {
		x.start = time.Now()
	}
	done := false
	defer g.record(rt, x, &done)
	rt.proxy.ServeHTTP(&x.w, out)
	done = true
}

// record adds the exchange to the session's statistics and tells
// OnForwarded of it. It also runs when the proxy aborts a response midway
// (by panicking with http.ErrAbortHandler): that counts as failed unless
// the client left.
func (g *Gateway) record(rt *route, x *exchange, done *bool) {
	failed := x.failed || x.w.status >= 500 || (!*done && x.Context.Err() == nil)
	if x.sessionID != "" {
		g.svc.RecordConnection(x.sessionID, rt.Prefix, x.body.n.Load(), x.w.n, failed)
	}
	if g.onForward != nil {
		g.onForward(rt.Prefix, x.answered, failed)
	}
}

// rewrite builds the upstream request: same path and query, upstream
// scheme and host, fresh X-Forwarded-*, no client credentials or identity
// headers, and our own session headers.
func (g *Gateway) rewrite(rt *route, pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme = rt.Upstream.Scheme
	out.URL.Host = rt.Upstream.Host
	out.Host = "" // the upstream's own Host; the client's is in X-Forwarded-Host
	// The path exactly as the client sent it (encoded slashes and all),
	// and the query too: Rewrite mode would drop parameters it cannot parse.
	if p := originPath(in.RequestURI); p != "" {
		out.URL.Opaque = p
	}
	out.URL.RawQuery = in.URL.RawQuery

	// No client-chosen credential, identity or address header goes on,
	// in any spelling; the forwarding headers are then set fresh.
	g.hdr.StripWith(out.Header, clientip.IsAddressHeader)
	g.setForwarded(in, out.Header)
	if x := exchangeOf(in); x != nil && x.sessionID != "" {
		out.Header[g.sidKey] = []string{x.sessionID}
		if x.dir != "" {
			out.Header[g.dirKey] = []string{x.dir}
		}
	}
}

// setForwarded sets X-Forwarded-For (the client's address, or the chain
// of a trusted proxy from the client on), -Proto and -Host. A trusted
// proxy's own -Proto and -Host are kept when they are plain values (a proxy
// that terminates TLS says "https").
func (g *Gateway) setForwarded(in *http.Request, h http.Header) {
	_, xff, trusted := g.clients.Forwarded(in)
	if xff != "" {
		h["X-Forwarded-For"] = []string{xff}
	}
	proto, host := "http", in.Host
	if in.TLS != nil {
		proto = "https"
	}
	if trusted {
		if v := in.Header.Values("X-Forwarded-Proto"); len(v) == 1 && (v[0] == "http" || v[0] == "https") {
			proto = v[0]
		}
		if v := in.Header.Values("X-Forwarded-Host"); len(v) == 1 && v[0] != "" && !strings.ContainsAny(v[0], ", \t") {
			host = v[0]
		}
	}
	h["X-Forwarded-Proto"] = []string{proto}
	h["X-Forwarded-Host"] = []string{host}
}

// originPath returns the path of an origin-form request target ("/a%2Fb"
// of "/a%2Fb?q=1"), or "" when the target has another form.
func originPath(requestURI string) string {
	p := requestURI
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	// "//x" would be sent as "http://x": leave such paths to URL.Path.
	if len(p) == 0 || p[0] != '/' || strings.HasPrefix(p, "//") {
		return ""
	}
	return p
}

// proxyError answers an upstream failure: nothing when the client has gone,
// 504 on a timeout, 502 otherwise.
func (g *Gateway) proxyError(rt *route, w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeOf(r)
	if errors.Is(r.Context().Err(), context.Canceled) {
		return // the client left (or the server is shutting down): no one to answer
	}
	if x != nil {
		if berr := x.body.failed(); berr != nil {
			// The client's body broke, not the upstream: the client's
			// error, answered 400 and not counted against the upstream.
			httpx.Logger(r.Context()).Debug("gateway: broken request body", "route", rt.Prefix, "err", berr)
			gwerr.WriteError(w, r, sessiond.Errorf(sessiond.EINVALID, "reading the request body: %v", berr))
			return
		}
		x.failed = true
	}
	var e *sessiond.Error
	if isTimeout(err) {
		e = sessiond.Errorf(sessiond.ETIMEOUT, "the upstream of %s did not answer in time", rt.Prefix)
	} else {
		e = sessiond.Errorf(sessiond.EUNAVAILABLE, "the upstream of %s is unavailable", rt.Prefix)
	}
	log := g.log
	if log == nil {
		log = httpx.Logger(r.Context())
	}
	attrs := []any{"route", rt.Prefix, "upstream", rt.Upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err}
	if x != nil && x.sessionID != "" {
		attrs = append(attrs, "session_id", x.sessionID)
	}
	if id := httpx.CorrelationID(r); id != "" {
		attrs = append(attrs, "correlation_id", id)
	}
	log.Warn("gateway: upstream failed", attrs...)
	gwerr.WriteError(w, r, gwerr.Upstream(e))
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// countingBody counts the bytes read from the client, and remembers a
// failed read (a broken chunked body, a client that stopped mid-body). The
// transport may still read it after the handler returns, hence the atomics.
type countingBody struct {
	rc      io.ReadCloser
	n       atomic.Int64
	readErr atomic.Pointer[error]
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF {
		b.readErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// failed returns the error a read of the client's body gave, if any.
func (b *countingBody) failed() error {
	if p := b.readErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *countingBody) Close() error { return b.rc.Close() }

// countingWriter counts the body bytes written to the client and records
// the final status. Unwrap lets http.ResponseController (which the proxy
// uses to flush) reach the server's writer.
type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferPool recycles the proxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32*1024)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != 32*1024 {
		return
	}
	buf = buf[:cap(buf)]
	b.p.Put(&buf)
}
