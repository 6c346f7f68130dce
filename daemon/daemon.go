// Package daemon wires a running sessiond: store, service, the public and
// admin listeners. cmd/sessiond and the load program both use it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sessiond"
	"sessiond/admin"
	"sessiond/api/commandable"
	"sessiond/api/files"
	"sessiond/api/jsonrpc"
	"sessiond/api/rest"
	"sessiond/config"
	"sessiond/gateway"
	"sessiond/internal/auth"
	"sessiond/internal/clientip"
	"sessiond/internal/gwerr"
	"sessiond/internal/httpx"
	"sessiond/internal/piperr"
	"sessiond/metrics"
	"sessiond/sessiondir"
	"sessiond/store/cache"
	"sessiond/store/embedded"
	"sessiond/store/memory"
	"sessiond/store/postgres"
	"sessiond/store/redis"
)

// Version is the version reported in logs; cmd/sessiond sets it.
var Version = "devel"

// Main is one running daemon: its store, service and listeners.
type Main struct {
	Config        config.Config
	Log           *slog.Logger
	Level         *slog.LevelVar // Log's level, changed by Reload; may be nil
	Stdout        io.Writer      // where the generated admin password is printed
	AdminPassword string         // SESSIOND_ADMIN_PASSWORD
	Clock         sessiond.Clock

	// Registry holds the daemon's metrics, served at GET /metrics on the
	// admin listener; Open makes one unless set before. Never the global
	// registry: two daemons in one process keep their own.
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics // made by Open, in Registry
	// MetricsOptions tune the metrics (their Log defaults to Log).
	MetricsOptions metrics.Options

	// Store is opened by Open from Config.Store, unless set before; either
	// way Open puts the metrics' timing decorator around the engine (under
	// a shared engine's cache), and the Service reads it.
	Store   sessiond.Store
	Service *sessiond.Service
	Dirs    *sessiondir.Dirs
	// publicLimiter slows down authentication failures on the public
	// listener: one for all its dialects, kept across gateway reloads.
	publicLimiter *auth.Limiter

	// AdminHandler serves the admin listener; its SetUsers replaces the
	// admin users on a configuration reload.
	AdminHandler *admin.Handler

	listeners []*listener // public, [internal,] admin
	failed    chan error
	gateway   atomic.Pointer[gateway.Gateway] // nil: no routes
	clients   *clientip.Resolver              // client addresses, with the trusted proxies
	accessLog atomic.Bool                     // Config.AccessLog, switched by Reload
	unwatch   func()                          // ends the metrics' event subscription
	// trustedInternal: the internal listener serves the trusted APIs (set
	// by Open; read per request, unlike Config, which Reload replaces).
	trustedInternal bool

	instanceOnce sync.Once
	instanceName string

	// Failed receives an error if a listener stops unexpectedly.
	Failed <-chan error
}

// Open binds every listener, then opens the store, starts the service and
// serves. Nothing is created on disk (data directory, admin password) when
// a listener cannot be bound or a certificate cannot be read. It refuses
// to serve the trusted APIs on a non-loopback public listener unless
// Config.AllowPublicTrustedAPIs (see TrustedAPIsExposedError).
func (m *Main) Open() error {
	cfg := m.Config
	m.failed = make(chan error, 3)
	m.Failed = m.failed
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.InternalListen == "" {
		if why := trustedExposure(context.Background(), cfg.Listen); why != "" {
			if !cfg.AllowPublicTrustedAPIs {
				return &TrustedAPIsExposedError{Listen: cfg.Listen, Why: why}
			}
			m.Log.Warn("the trusted commandable and REST APIs are served without authentication on a public address "+
				"(allow-public-trusted-apis is set): whoever reaches it can read, change and close any session; "+
				"use --internal-listen to serve them to your backends only", "listen", cfg.Listen, "why", why)
		}
	}
	for _, spec := range listenerSpecs(cfg) {
		l := &listener{name: spec.name}
		if spec.cert != "" {
			c, err := loadCertificate(spec.cert, spec.key)
			if err != nil {
				return fmt.Errorf("%s listener: %w", spec.name, err)
			}
			l.cert = c
		}
		ln, err := net.Listen("tcp", spec.addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", spec.name, err)
		}
		l.ln = ln
		m.listeners = append(m.listeners, l)
	}

	if m.Registry == nil {
		m.Registry = prometheus.NewRegistry()
	}
	var err error
	mopts := m.MetricsOptions
	if mopts.Log == nil {
		mopts.Log = m.Log
	}
	if m.Metrics, err = metrics.New(m.Registry, mopts); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	m.accessLog.Store(cfg.AccessLog)
	m.trustedInternal = cfg.InternalListen != ""
	if m.Store == nil {
		if m.Store, err = openStore(cfg, m.Log, m.instance(), m.Metrics.Store); err != nil {
			return err
		}
	} else {
		m.Store = m.Metrics.Store(m.Store)
	}
	m.Service = sessiond.NewService(m.Store, m.Clock, sessiond.Config{
		IdleTimeout:      cfg.IdleTimeout,
		Retention:        cfg.Retention,
		SweepInterval:    cfg.SweepInterval,
		TouchInterval:    cfg.TouchInterval,
		DefaultExpiresIn: cfg.DefaultExpiresIn,
		MaxExpiresIn:     cfg.MaxExpiresIn,
		MaxTake:          cfg.MaxTake,
		DataLimit:        int(cfg.DataLimit),
		MaxUserSessions:  cfg.MaxUserSessions,
	}, m.Log)
	if m.unwatch, err = m.Metrics.Watch(m.Service); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	m.Dirs, err = sessiondir.NewDirs(filepath.Join(cfg.DataDir, "sessions"), sessiondir.Quota{MaxBytes: cfg.QuotaBytes, MaxFiles: cfg.QuotaFiles})
	if err != nil {
		return err
	}
	m.Service.OnEnd(m.Dirs.Remove)
	if err := m.Dirs.Reconcile(context.Background(), m.Service); err != nil {
		m.Log.Warn("removing directories of ended sessions", "err", err)
	}
	// After a gap in the stream longer than its catch-up can replay, the
	// ends it missed are found by reconciling the directories with the
	// store, as at start.
	m.Service.Events().Subscribe(func(evs []sessiond.Event) {
		for _, e := range evs {
			if e.Kind == sessiond.EventResumed {
				go func() {
					if err := m.Dirs.Reconcile(context.Background(), m.Service); err != nil {
						m.Log.Warn("removing directories of sessions that ended during a gap in the event stream", "err", err)
					}
				}()
			}
		}
	})
	m.Service.Start()

	pub, err := m.PublicHandler()
	if err != nil {
		return err
	}
	adm, err := admin.New(m.Service, admin.Options{
		Users: cfg.AdminUsers, DataDir: cfg.DataDir, Log: m.Log, Stdout: m.Stdout, AdminPassword: m.AdminPassword,
		Limiter: m.newLimiter("admin"), Metrics: m.Metrics.Handler(),
		Version: Version, Store: storeName(cfg.Store), // GET /v1/ shows them (never the store's URL)
	})
	if err != nil {
		return err
	}
	m.AdminHandler = adm
	attrs := []any{}
	for _, l := range m.listeners {
		switch l.name {
		case "public":
			l.srv = newServer(m.wrap(pub, m.publicAPI), m.Log)
		case "internal":
			l.srv = newServer(m.wrap(m.InternalHandler(), internalAPI), m.Log)
		case "admin":
			// admin.New adds the middleware itself; this outer one, which
			// the inner one then leaves alone, counts and logs.
			l.srv = newServer(m.wrap(adm, func(*http.Request) string { return metrics.APIAdmin }), m.Log)
		}
		attrs = append(attrs, l.name, l.ln.Addr().String())
		if l.cert != nil {
			l.srv.TLSConfig = l.cert.tlsConfig()
			attrs = append(attrs, l.name+"_tls", true)
		}
	}
	for _, l := range m.listeners {
		go func() {
			var err error
			if l.cert != nil {
				err = l.srv.ServeTLS(l.ln, "", "") // certificates come from TLSConfig.GetCertificate
			} else {
				err = l.srv.Serve(l.ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.failed <- fmt.Errorf("%s listener: %w", l.name, err)
			}
		}()
	}
	m.Log.Info("sessiond listening", append(attrs, "store", storeName(cfg.Store), "data_dir", cfg.DataDir, "version", Version, "instance", m.instance())...)
	return nil
}

// NewLogger builds the logger that cfg asks for, writing to w, at the
// level held by level (set here from cfg; Reload changes it).
func NewLogger(cfg config.Config, w io.Writer, level *slog.LevelVar) *slog.Logger {
	level.Set(parseLevel(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseLevel reads a log level that config.Validate accepted.
func parseLevel(s string) slog.Level {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ReplaceAll(strings.ToLower(s), "warning", "warn")))
	return level
}

// wrap puts h behind the middleware every listener shares: correlation
// ids, metrics of each request (api names its API) and the access log.
func (m *Main) wrap(h http.Handler, api func(*http.Request) string) http.Handler {
	return httpx.Wrap(h, httpx.Options{Log: m.Log, API: api, AccessLog: &m.accessLog, Observe: m.Metrics.Request, Client: m.clients.Client})
}

func newServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       httpx.BaseContext(log),
	}
}

// PublicAddr, InternalAddr and AdminAddr return the listeners' actual
// addresses ("" for a listener that is off).
func (m *Main) PublicAddr() string   { return m.addr("public") }
func (m *Main) InternalAddr() string { return m.addr("internal") }
func (m *Main) AdminAddr() string    { return m.addr("admin") }

func (m *Main) addr(name string) string {
	for _, l := range m.listeners {
		if l.name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

func (m *Main) headers() auth.Headers {
	c := m.Config
	return auth.Headers{Token: c.HeaderToken, APIKey: c.HeaderAPIKey, Secret: c.HeaderSecret,
		SessionID: c.HeaderSessionID, SessionDir: c.HeaderSessionDir}.WithDefaults()
}

// PublicHandler routes the public listener over m.Service and m.Dirs: the
// JSON-RPC Session API, session files, gateway routes and, unless the
// internal listener serves them, the commandable and REST APIs (without
// the logging middleware). Every path is routed by hand: a ServeMux would
// redirect paths holding "..", "." or "//" (which the gateway forwards
// unchanged and the files API refuses itself) and near misses such as
// /v1/sessions, and answer those in no API's format.
func (m *Main) PublicHandler() (http.Handler, error) {
	cfg, svc, hdr := m.Config, m.Service, m.headers()
	clients, err := clientip.New(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	m.clients = clients
	if m.publicLimiter == nil {
		m.publicLimiter = m.newLimiter("public")
	}
	lim := m.publicLimiter
	cmd, rst := m.trustedHandlers()
	if cfg.InternalListen != "" {
		// Served on the internal listener: here, unrouted paths answered
		// in the Pip.Services format.
		cmd, rst = http.HandlerFunc(piperr.NoRoute), http.HandlerFunc(piperr.NoRoute)
	}
	rpc := jsonrpc.New(svc, jsonrpc.Options{BodyLimit: cfg.BodyLimit, Headers: hdr, Clients: clients, Limiter: lim})
	fh := files.New(svc, m.Dirs, files.Options{Headers: hdr, Limiter: lim})
	gw, err := m.newGateway(cfg)
	if err != nil {
		return nil, err
	}
	m.gateway.Store(gw) // Reload swaps it
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := m.gateway.Load()
		switch p := r.URL.Path; {
		case gw != nil && gw.Covers(p):
			gw.ServeHTTP(w, r)
		case strings.HasPrefix(p, filesPrefix):
			fh.ServeHTTP(w, r)
		default:
			if !apiRoute(w, r, cmd, rst, rpc) {
				httpx.WriteJSON(w, http.StatusNotFound, "", map[string]string{"message": "no route for " + httpx.Clip(p, 100)})
			}
		}
	}), nil
}

// publicAPI names the API that answers r on the public listener (the api
// of its metrics and access log line); it follows PublicHandler's routing.
func (m *Main) publicAPI(r *http.Request) string {
	p := r.URL.Path
	switch gw := m.gateway.Load(); {
	case gw != nil && gw.Covers(p):
		return metrics.APIGateway
	case strings.HasPrefix(p, filesPrefix):
		return metrics.APIFiles
	}
	if api := internalAPI(r); api != metrics.APINone {
		if m.trustedInternal {
			return metrics.APINone // served on the internal listener
		}
		return api
	}
	if p == "/api/v1/session/jsonrpc" || p == "/api/v2/session/jsonrpc" ||
		strings.HasPrefix(p, "/api/v1/session/jsonrpc/") || strings.HasPrefix(p, "/api/v2/session/jsonrpc/") {
		return metrics.APIJSONRPC
	}
	return metrics.APINone
}

// internalAPI names the API that answers r on the internal listener; it
// follows trustedRoute.
func internalAPI(r *http.Request) string {
	switch p := r.URL.Path; {
	case p == "/v1/sessions" || strings.HasPrefix(p, "/v1/"):
		return metrics.APICommandable
	case p == "/sessions" || strings.HasPrefix(p, "/sessions/"):
		return metrics.APIREST
	}
	return metrics.APINone
}

// trustedHandlers returns the trusted Pip.Services APIs (SPEC sections 3
// and 4), served on the public listener, or on the internal one when it
// is set.
func (m *Main) trustedHandlers() (cmd, rst http.Handler) {
	cfg, svc := m.Config, m.Service
	return commandable.New(svc, commandable.Options{BodyLimit: cfg.BodyLimit}), rest.New(svc, rest.Options{BodyLimit: cfg.BodyLimit})
}

// InternalHandler routes the internal listener: the trusted APIs, and
// every other path answered in their error format (without the logging
// middleware).
func (m *Main) InternalHandler() http.Handler {
	cmd, rst := m.trustedHandlers()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trustedRoute(w, r, cmd, rst) {
			piperr.NoRoute(w, r)
		}
	})
}

// newGateway builds the gateway of cfg's routes; nil when there are none.
func (m *Main) newGateway(cfg config.Config) (*gateway.Gateway, error) {
	if len(cfg.Gateway) == 0 {
		return nil, nil
	}
	routes := make([]gateway.Route, 0, len(cfg.Gateway))
	for _, g := range cfg.Gateway {
		r, err := gateway.ParseRoute(g)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return gateway.New(m.Service, routes, gateway.Options{Headers: m.headers(), Dirs: m.Dirs, ResponseHeaderTimeout: cfg.UpstreamTimeout,
		Log: m.Log, Clients: m.clients, Limiter: m.publicLimiter, OnForwarded: m.Metrics.Forwarded})
}

// newLimiter returns the authentication failure limiter of one listener
// (SPEC section 10), on the daemon's clock. Its source is the client
// address, as the trusted proxies tell it (PublicHandler sets m.clients
// first).
//
// Its failures are counted per API: the admin limiter's are the admin
// API's; the public one serves several, told apart by path (publicAPI).
func (m *Main) newLimiter(listener string) *auth.Limiter {
	opts := auth.LimiterOptions{Log: m.Log, API: listener}
	apiOf := m.publicAPI
	if listener == "admin" {
		apiOf = func(*http.Request) string { return metrics.APIAdmin }
	}
	opts.OnFailed = func(r *http.Request) { m.Metrics.AuthFailed(apiOf(r)) }
	opts.OnRefused = func(r *http.Request) { m.Metrics.AuthThrottled(apiOf(r)) }
	if m.clients != nil {
		opts.Source = m.clients.Client
	}
	if m.Clock != nil {
		opts.Now = m.Clock.Now
	}
	return auth.NewLimiter(opts)
}

// apiRoute answers the paths under the prefixes of the commandable, REST
// and Session APIs, each in its API's format, before the ServeMux could
// answer a near miss with a redirect or a plain-text 404 (/v1/sessions,
// /api/v1/session/files, /api/v1/session/jsonrpc/). It reports false for
// other paths.
func apiRoute(w http.ResponseWriter, r *http.Request, cmd, rst, rpc http.Handler) bool {
	if trustedRoute(w, r, cmd, rst) {
		return true
	}
	switch p := r.URL.Path; {
	case p == "/api/v1/session/jsonrpc" || p == "/api/v2/session/jsonrpc":
		rpc.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/api/v1/session/jsonrpc/") || strings.HasPrefix(p, "/api/v2/session/jsonrpc/"):
		jsonrpc.NoRoute(w, r)
	case strings.HasPrefix(p, "/api/"):
		// Session files and gateway routes live here: their dialect.
		gwerr.WriteError(w, r, &sessiond.Error{Code: sessiond.ENOTFOUND,
			Message: "no such route: " + httpx.Clip(p, 100) + " (session files are under " + filesPrefix + ")"})
	default:
		return false
	}
	return true
}

// trustedRoute answers the paths under the commandable and REST APIs'
// prefixes (each answers what it does not serve in its own format), and
// reports false for other paths.
func trustedRoute(w http.ResponseWriter, r *http.Request, cmd, rst http.Handler) bool {
	switch p := r.URL.Path; {
	case p == "/v1/sessions" || strings.HasPrefix(p, "/v1/"):
		cmd.ServeHTTP(w, r)
	case p == "/sessions" || strings.HasPrefix(p, "/sessions/"):
		rst.ServeHTTP(w, r)
	default:
		return false
	}
	return true
}

// filesPrefix is where the session files API is served.
const filesPrefix = "/api/v1/session/files/"

// openStore opens the engine of cfg.Store with timed (the metrics' timing
// decorator) around the engine itself: under the per-instance cache of a
// shared engine, so that the store's latency histogram counts trips to the
// store, not cache hits.
func openStore(cfg config.Config, log *slog.Logger, instance string, timed func(sessiond.Store) sessiond.Store) (sessiond.Store, error) {
	switch name := storeName(cfg.Store); name {
	case "embedded":
		cached := cfg.CacheSessions
		if cached == 0 {
			cached = -1 // embedded.Options: negative disables
		}
		st, err := embedded.Open(cfg.DataDir, embedded.Options{CachedSessions: cached, Log: log})
		if err != nil {
			return nil, err
		}
		return timed(st), nil
	case "memory":
		return timed(memory.New()), nil
	case "postgres", "postgresql":
		// Many instances share the database: each serves verify, get and
		// the gateway from its own cache, which the event stream (LISTEN/
		// NOTIFY) keeps right.
		ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
		defer cancel()
		pg, err := postgres.Open(ctx, cfg.Store, postgres.Options{Log: log, Origin: instance})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", config.Redact(cfg.Store), err)
		}
		return cache.New(timed(pg), cache.Options{}), nil
	case "redis", "rediss", "redis+cluster", "rediss+cluster":
		// As PostgreSQL: a per-instance cache kept right by the stream
		// (sharded pub/sub and a log per shard).
		ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
		defer cancel()
		rs, err := redis.Open(ctx, cfg.Store, redis.Options{Log: log, Origin: instance,
			IdleTimeout: cfg.IdleTimeout, Retention: cfg.Retention})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", config.Redact(cfg.Store), err)
		}
		return cache.New(timed(rs), cache.Options{}), nil
	default:
		return nil, fmt.Errorf("store %s is not supported by this build yet", name)
	}
}

// storeOpenTimeout bounds connecting to a shared store and migrating it at
// start.
const storeOpenTimeout = 30 * time.Second

// instance names this process on the events it publishes and in the
// shared store's connections: host, process id and a random suffix.
func (m *Main) instance() string {
	m.instanceOnce.Do(func() {
		host, _ := os.Hostname()
		m.instanceName = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), sessiond.NewID()[:8])
	})
	return m.instanceName
}

// storeName names the engine of a --store value without its credentials.
func storeName(s string) string {
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		return scheme
	}
	return s
}

// Close stops accepting requests, drains those in flight, flushes pending
// writes and closes the store, all within Config.DrainTimeout (default
// 15s): the servers get two thirds of it (then their connections are
// closed), the flush and the store the rest. A step that does not finish
// in time is logged and left behind, with the steps after it, so that a
// hung store cannot keep the process from stopping.
func (m *Main) Close() error {
	timeout := m.Config.DrainTimeout
	if timeout <= 0 {
		timeout = config.DefaultDrainTimeout
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var errs []error
	drain, cancel := context.WithDeadline(context.Background(), start.Add(timeout*2/3))
	defer cancel()
	for _, l := range m.listeners {
		switch {
		case l.srv != nil:
			if err := l.srv.Shutdown(drain); err != nil {
				m.Log.Warn("stopping: requests still running after the drain time; closing their connections", "listener", l.name, "err", err)
				l.srv.Close()
				errs = append(errs, fmt.Errorf("%s listener: %w", l.name, err))
			}
		case l.ln != nil: // Open failed before serving
			l.ln.Close()
		}
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"flushing pending writes", func() error {
			if m.Service != nil {
				err := m.Service.Stop()
				if m.unwatch != nil {
					m.unwatch()
				}
				return err
			}
			return nil
		}},
		{"closing the gateway", func() error {
			if gw := m.gateway.Load(); gw != nil {
				gw.Close()
			}
			return nil
		}},
		{"closing the store", func() error {
			if m.Store != nil {
				return m.Store.Close()
			}
			return nil
		}},
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for i, step := range steps {
		done := make(chan error, 1)
		go func() { done <- step.run() }()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", step.name, err))
			}
		case <-timer.C:
			var skipped []string
			for _, s := range steps[i+1:] {
				skipped = append(skipped, s.name)
			}
			m.Log.Error("stopping: a step did not finish within the drain timeout; exiting without it",
				"step", step.name, "skipped", skipped, "drain_timeout", timeout.String())
			return errors.Join(append(errs, fmt.Errorf("%s did not finish within the drain timeout (%s)", step.name, timeout))...)
		}
	}
	return errors.Join(errs...)
}
