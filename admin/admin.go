// Package admin serves the admin listener (SPEC section 7): a JSON:API
// resource API in the style of the MaxScale REST API, authenticated with
// HTTP Basic, plus the unauthenticated health probes.
//
// The package is laid out so that resources are added one file at a time:
//
//	admin.go    Options, New, the router and its registration helpers
//	auth.go     HTTP Basic authentication and the generated admin password
//	password.go hashed admin passwords (bcrypt, argon2id) and HashPassword
//	jsonapi.go  documents, writeDoc, writeError, request body decoding
//	health.go   /health/live and /health/ready
//	apikeys.go  /v1/apikeys
//	sessions.go /v1/sessions and its connections
//	query.go    filter, page and fields parameters of a listing
//	instance.go /v1/, the instance
//	console/    the web console at / (embedded page, script and styles)
//
// A new resource adds its routes in routes() and its handlers in its own
// file, using writeDoc, writeError and decodeDoc.
package admin

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"sessiond"
	"sessiond/admin/console"
	"sessiond/internal/auth"
	"sessiond/internal/httpx"
)

// APIPrefix is the version prefix of every resource route. Each route
// answers both with and without it; links always carry it.
const APIPrefix = "/v1"

// Options configure the admin handler.
type Options struct {
	// Users maps admin user names to their passwords, as written in the
	// configuration: the password itself, or its bcrypt hash ($2a$, $2b$,
	// $2y$) or argon2id PHC string ($argon2id$..., see HashPassword). With
	// none, the user "admin" gets a password from
	// AdminPassword, else from <DataDir>/admin-password, else a new random
	// one (see LoadOrCreatePassword).
	Users map[string]string
	// AdminPassword is the value of SESSIOND_ADMIN_PASSWORD, read by main.
	// It is used only when Users is empty.
	AdminPassword string
	// DataDir holds the generated admin password file.
	DataDir string
	// BodyLimit caps request bodies; 0 means httpx.DefaultBodyLimit (1 MiB).
	BodyLimit int64
	// Log receives the handler's logs; nil discards them.
	Log *slog.Logger
	// Stdout receives the one line that shows a newly generated admin
	// password; nil means os.Stdout.
	Stdout io.Writer
	// Limiter slows down repeated authentication failures per client
	// address (429 with Retry-After) and logs them, bounded. Nil: the
	// handler makes one of its own with the defaults of auth.LimiterOptions.
	Limiter *auth.Limiter
	// Metrics, when set, serves GET /metrics (authenticated like every
	// resource: Prometheus scrapes with basic_auth).
	Metrics http.Handler
	// Version, Started and Store describe the instance at GET /v1/: the
	// daemon's version, its start (zero: when New was called) and its
	// store engine's name (never its URL, which may hold a password;
	// empty: named from the store's Go type).
	Version string
	Started time.Time
	Store   string
}

// server is the admin handler. Handlers of every resource are its methods.
type server struct {
	svc       *sessiond.Service
	users     atomic.Pointer[users]
	limiter   *auth.Limiter
	log       *slog.Logger
	bodyLimit int64
	opts      Options // for SetUsers

	mux *http.ServeMux
	// public holds the patterns served without authentication.
	public map[string]bool
}

// Handler is the handler of the admin listener.
type Handler struct {
	s *server
	h http.Handler // s behind the shared middleware
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.h.ServeHTTP(w, r) }

// SetUsers replaces the admin users (as Options.Users; empty means the
// generated or SESSIOND_ADMIN_PASSWORD password of DefaultUser) at run
// time, for a configuration reload. Requests already authenticated are
// not affected; the next ones are checked against the new users only. On
// error the old users stay.
func (h *Handler) SetUsers(creds map[string]string) error {
	u, err := h.s.loadUsers(creds)
	if err != nil {
		return err
	}
	h.s.users.Store(u)
	return nil
}

// New returns the handler of the admin listener. It fails only when no
// admin password can be found or stored, or an admin user is invalid.
func New(svc *sessiond.Service, opts Options) (*Handler, error) {
	if svc == nil {
		return nil, fmt.Errorf("admin: a service is required")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{
		svc:       svc,
		limiter:   opts.Limiter,
		log:       log,
		bodyLimit: opts.BodyLimit,
		opts:      opts,
		mux:       http.NewServeMux(),
		public:    make(map[string]bool),
	}
	if s.limiter == nil {
		s.limiter = auth.NewLimiter(auth.LimiterOptions{Log: log, API: "admin"})
	}
	u, err := s.loadUsers(opts.Users)
	if err != nil {
		return nil, err
	}
	s.users.Store(u)
	if s.bodyLimit <= 0 {
		s.bodyLimit = httpx.DefaultBodyLimit
	}
	if s.opts.Started.IsZero() {
		s.opts.Started = svc.Now()
	}
	if s.opts.Version == "" {
		s.opts.Version = "devel"
	}
	if s.opts.Store == "" {
		s.opts.Store = storeEngine(svc.Store())
	}
	s.routes()
	return &Handler{s: s, h: httpx.Middleware(log, s)}, nil
}

// loadUsers builds the admin users of creds, or with none, DefaultUser
// with the password of LoadOrCreatePassword.
func (s *server) loadUsers(creds map[string]string) (*users, error) {
	if len(creds) == 0 {
		pw, err := LoadOrCreatePassword(s.opts.DataDir, s.opts.AdminPassword, s.opts.Stdout)
		if err != nil {
			return nil, err
		}
		creds = map[string]string{DefaultUser: pw}
	}
	return newUsers(creds)
}

// routes registers every route of the admin listener.
func (s *server) routes() {
	s.open("GET /health/live", s.live)
	s.open("GET /health/ready", s.ready)

	s.api("GET /apikeys", s.listAPIKeys)
	s.api("POST /apikeys", s.createAPIKey)
	s.api("GET /apikeys/{id}", s.getAPIKey)
	s.api("DELETE /apikeys/{id}", s.revokeAPIKey)

	s.api("GET /sessions", s.listSessions)
	s.api("GET /sessions/{$}", s.listSessions) // maxctrl's show sessions asks for sessions/
	s.api("DELETE /sessions", s.closeSessions)
	s.api("GET /sessions/{id}", s.getSession)
	s.api("GET /sessions/{id}/connections", s.listConnections)
	s.api("DELETE /sessions/{id}", s.closeSession)

	if s.opts.Metrics != nil {
		s.page("GET /metrics", s.opts.Metrics)
	}
	// The web console: its page at / and its assets under /console/.
	c := console.New()
	for _, p := range c.Patterns() {
		s.page(p, c)
	}
	// The instance answers at /v1/ only: the bare / is the web console's.
	s.page("GET "+APIPrefix+"/{$}", http.HandlerFunc(s.instance))
	s.page("GET "+APIPrefix, http.HandlerFunc(s.instance))
}

// api registers an authenticated resource route, given without the version
// prefix ("GET /apikeys"), under both APIPrefix and the bare path.
func (s *server) api(pattern string, h http.HandlerFunc) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		panic("admin: route pattern must be \"METHOD /path\": " + pattern)
	}
	s.mux.HandleFunc(method+" "+APIPrefix+path, h)
	s.mux.HandleFunc(pattern, h)
}

// page registers an authenticated route exactly as given, with no versioned
// alias (for /metrics and the console).
func (s *server) page(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// open registers a route served without authentication (health probes).
func (s *server) open(pattern string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, h)
	s.public[pattern] = true
}

// ServeHTTP authenticates every request except those for public routes,
// then routes it. Unknown paths and methods get JSON:API errors rather than
// the mux's plain-text ones; an unauthenticated client learns nothing about
// which routes exist.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving admin request", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, r, sessiond.Internal(fmt.Errorf("panic: %v", v)))
		}
	}()
	_, pattern := s.mux.Handler(r)
	if !s.public[pattern] && !s.authenticate(w, r) {
		return
	}
	if err := checkQuery(r); err != nil {
		writeError(w, r, err)
		return
	}
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // sets the path values
		return
	}
	// No route matched: let the mux decide between 404, 405 and a redirect
	// to the cleaned path, then answer errors in our own dialect.
	rec := &recorder{header: make(http.Header), status: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		writeError(w, r, &sessiond.Error{Code: sessiond.ENOTFOUND, Message: "no resource at " + r.URL.Path})
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeStatusError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow)
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
	}
}

// recorder captures what the mux answers for an unmatched request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
