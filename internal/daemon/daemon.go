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
	"path/filepath"
	"strings"
	"time"

	"sessiond"
	"sessiond/admin"
	"sessiond/api/commandable"
	"sessiond/api/files"
	"sessiond/api/jsonrpc"
	"sessiond/api/rest"
	"sessiond/config"
	"sessiond/gateway"
	"sessiond/internal/auth"
	"sessiond/internal/httpx"
	"sessiond/store/embedded"
	"sessiond/store/memory"
)

// Version is the version reported in logs; cmd/sessiond sets it.
var Version = "devel"

// Main is one running daemon: its store, service and two listeners.
type Main struct {
	Config        config.Config
	Log           *slog.Logger
	Stdout        io.Writer // where the generated admin password is printed
	AdminPassword string    // SESSIOND_ADMIN_PASSWORD
	Clock         sessiond.Clock

	Store   sessiond.Store
	Service *sessiond.Service
	Dirs    *files.Dirs

	public, admin     *http.Server
	publicLn, adminLn net.Listener
	failed            chan error
	gateway           *gateway.Gateway
	// Failed receives an error if a listener stops unexpectedly.
	Failed <-chan error
}

// Open opens the store, starts the service and both listeners.
func (m *Main) Open() error {
	cfg := m.Config
	m.failed = make(chan error, 2)
	m.Failed = m.failed
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	var err error
	if m.Store, err = openStore(cfg); err != nil {
		return err
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

	m.Dirs, err = files.NewDirs(filepath.Join(cfg.DataDir, "sessions"), files.Quota{MaxBytes: cfg.QuotaBytes, MaxFiles: cfg.QuotaFiles})
	if err != nil {
		return err
	}
	m.Service.OnEnd(m.Dirs.Remove)
	if err := m.Dirs.Reconcile(context.Background(), m.Service); err != nil {
		m.Log.Warn("removing directories of ended sessions", "err", err)
	}
	m.Service.Start()

	pub, err := m.PublicHandler()
	if err != nil {
		return err
	}
	adm, err := admin.New(m.Service, admin.Options{
		Users: cfg.AdminUsers, DataDir: cfg.DataDir, Log: m.Log, Stdout: m.Stdout, AdminPassword: m.AdminPassword,
	})
	if err != nil {
		return err
	}
	if m.publicLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return err
	}
	if m.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		return err
	}
	m.public = newServer(httpx.Middleware(m.Log, pub), m.Log)
	m.admin = newServer(adm, m.Log) // admin.New adds the middleware itself
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{m.public, m.publicLn}, {m.admin, m.adminLn}} {
		go func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.failed <- err
			}
		}()
	}
	m.Log.Info("sessiond listening", "public", m.publicLn.Addr().String(), "admin", m.adminLn.Addr().String(),
		"store", storeName(cfg.Store), "data_dir", cfg.DataDir, "version", Version)
	return nil
}

// NewLogger builds the logger that cfg asks for, writing to w.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ReplaceAll(strings.ToLower(cfg.LogLevel), "warning", "warn")))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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

// PublicAddr and AdminAddr return the listeners' actual addresses.
func (m *Main) PublicAddr() string { return m.publicLn.Addr().String() }
func (m *Main) AdminAddr() string  { return m.adminLn.Addr().String() }

func (m *Main) headers() auth.Headers {
	c := m.Config
	return auth.Headers{Token: c.HeaderToken, APIKey: c.HeaderAPIKey, Secret: c.HeaderSecret,
		SessionID: c.HeaderSessionID, SessionDir: c.HeaderSessionDir}.WithDefaults()
}

// PublicHandler routes the public listener over m.Service and m.Dirs: the
// commandable and REST APIs, the JSON-RPC Session API, session files and
// gateway routes (without the logging middleware).
func (m *Main) PublicHandler() (http.Handler, error) {
	cfg, svc, hdr := m.Config, m.Service, m.headers()
	mux := http.NewServeMux()
	cmd := commandable.New(svc, commandable.Options{BodyLimit: cfg.BodyLimit})
	mux.Handle("/v1/sessions/", cmd)
	rst := rest.New(svc, rest.Options{BodyLimit: cfg.BodyLimit})
	mux.Handle("/sessions", rst)
	mux.Handle("/sessions/", rst)
	rpc := jsonrpc.New(svc, jsonrpc.Options{BodyLimit: cfg.BodyLimit, Headers: hdr})
	mux.Handle("/api/v1/session/jsonrpc", rpc)
	mux.Handle("/api/v2/session/jsonrpc", rpc)
	fh := files.New(svc, m.Dirs, files.Options{Headers: hdr})
	mux.Handle(filesPrefix, fh)
	var gw *gateway.Gateway
	if len(cfg.Gateway) > 0 {
		routes := make([]gateway.Route, 0, len(cfg.Gateway))
		for _, g := range cfg.Gateway {
			r, err := gateway.ParseRoute(g)
			if err != nil {
				return nil, fmt.Errorf("gateway %q: %w", g, err)
			}
			routes = append(routes, r)
		}
		var err error
		gw, err = gateway.New(svc, routes, gateway.Options{Headers: hdr, Dirs: m.Dirs, ResponseHeaderTimeout: cfg.UpstreamTimeout, Log: m.Log})
		if err != nil {
			return nil, err
		}
		m.gateway = gw
		for _, p := range gw.Prefixes() {
			mux.Handle(p, gw)
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusNotFound, "", map[string]string{"message": "no route for " + r.URL.Path})
	})
	// Gateway and files paths go to their handlers before the ServeMux,
	// which would redirect paths holding "..", "." or "//" elsewhere: the
	// gateway forwards paths unchanged, and the files API refuses such
	// paths with 400 itself.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case gw != nil && gw.Covers(p):
			gw.ServeHTTP(w, r)
		case strings.HasPrefix(p, filesPrefix):
			fh.ServeHTTP(w, r)
		default:
			if !apiRoute(w, r, cmd, rst, rpc) {
				mux.ServeHTTP(w, r)
			}
		}
	}), nil
}

// apiRoute answers the paths under the prefixes of the commandable, REST
// and Session APIs, each in its API's format, before the ServeMux could
// answer a near miss with a redirect or a plain-text 404 (/v1/sessions,
// /api/v1/session/files, /api/v1/session/jsonrpc/). It reports false for
// other paths.
func apiRoute(w http.ResponseWriter, r *http.Request, cmd, rst, rpc http.Handler) bool {
	switch p := r.URL.Path; {
	case p == "/v1/sessions" || strings.HasPrefix(p, "/v1/"):
		cmd.ServeHTTP(w, r) // answers what it does not serve itself
	case p == "/sessions" || strings.HasPrefix(p, "/sessions/"):
		rst.ServeHTTP(w, r)
	case p == "/api/v1/session/jsonrpc" || p == "/api/v2/session/jsonrpc":
		rpc.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/api/v1/session/jsonrpc/") || strings.HasPrefix(p, "/api/v2/session/jsonrpc/"):
		jsonrpc.NoRoute(w, r)
	case strings.HasPrefix(p, "/api/"):
		// Session files and gateway routes live here: their dialect.
		gateway.WriteError(w, r, &sessiond.Error{Code: sessiond.ENOTFOUND,
			Message: "no such route: " + clip(p) + " (session files are under " + filesPrefix + ")"})
	default:
		return false
	}
	return true
}

func clip(s string) string {
	if len(s) > 100 {
		return strings.ToValidUTF8(s[:100], "") + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// filesPrefix is where the session files API is served.
const filesPrefix = "/api/v1/session/files/"

func openStore(cfg config.Config) (sessiond.Store, error) {
	switch name := storeName(cfg.Store); name {
	case "embedded":
		cached := cfg.CacheSessions
		if cached == 0 {
			cached = -1 // embedded.Options: negative disables
		}
		return embedded.Open(cfg.DataDir, embedded.Options{CachedSessions: cached})
	case "memory":
		return memory.New(), nil
	default:
		return nil, fmt.Errorf("store %s is not supported by this build yet", name)
	}
}

// storeName names the engine of a --store value without its credentials.
func storeName(s string) string {
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		return scheme
	}
	return s
}

// Close stops accepting requests, drains those in flight (bounded), flushes
// pending writes and closes the store.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var errs []error
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{m.public, m.publicLn}, {m.admin, m.adminLn}} {
		switch {
		case s.srv != nil:
			if err := s.srv.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		case s.ln != nil: // Open failed before serving
			s.ln.Close()
		}
	}
	if m.Service != nil {
		if err := m.Service.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.gateway != nil {
		m.gateway.Close()
	}
	if m.Store != nil {
		if err := m.Store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
