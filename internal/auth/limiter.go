package auth

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sessiond"
	"sessiond/internal/httpx"
)

// Defaults of LimiterOptions.
const (
	DefaultBurst    = 10
	DefaultInterval = time.Second
	DefaultCapacity = 16384
	DefaultLogRate  = 5
)

// LimiterOptions configure a Limiter. Zero values take the defaults.
type LimiterOptions struct {
	// Burst is how many failures in a row a source may make before it is
	// refused. Default 10.
	Burst int
	// Interval is how often a refused source earns one more attempt: past
	// its burst, a source fails at most once per Interval. Default 1s.
	Interval time.Duration
	// Capacity bounds the sources remembered; past it, the source whose
	// last failure is the oldest is forgotten. Default 16384 (about 2 MB).
	Capacity int
	// Source returns the client address of a request. Default RemoteHost.
	Source func(*http.Request) string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives the failure log lines; nil discards them.
	Log *slog.Logger
	// LogRate bounds the failure lines logged per second; the rest are
	// counted and reported in one "suppressed" line, written with the
	// first failure of a later second. Default 5.
	LogRate int
	// API names the listener in log lines ("public", "admin").
	API string
	// OnFailed and OnRefused, when set, are told of each failure (Failed)
	// and each request refused for its source's failures (Check): the
	// daemon counts them in its metrics. They must be cheap.
	OnFailed, OnRefused func(*http.Request)
}

// Limiter slows down repeated authentication failures per source (SPEC
// section 10). It is shared by every dialect of a listener and sits before
// any credential check: a source over its budget is refused with a
// sessiond.ETOOMANY error, whose Details["retry_after"] holds the whole
// seconds to wait, before a password is hashed or the store is read.
//
// Each source owes a debt that every failure raises by Interval and time
// pays back (a generic cell rate algorithm, one time per source); it is
// refused while the debt exceeds (Burst-1)*Interval. Only failures write
// the table, which is sharded, bounded by Capacity and forgets sources
// that are paid up. A request costs one atomic load while the table is
// empty, a clock read more while no source is in debt, and one shard
// lookup otherwise; a success never writes.
//
// IPv6 sources count per /64, since one host usually holds a whole /64.
// The methods of a nil *Limiter do nothing.
type Limiter struct {
	allowance time.Duration // the debt a source may carry and still be heard
	interval  time.Duration
	perShard  int
	source    func(*http.Request) string
	now       func() time.Time
	seed      maphash.Seed
	size      atomic.Int64 // sources in the table
	until     atomic.Int64 // unix nanoseconds when every source's debt is paid
	shards    [numShards]shard
	log       failureLog
	onFailed  func(*http.Request)
	onRefused func(*http.Request)
}

const numShards = 16

type shard struct {
	mu         sync.Mutex
	m          map[sourceKey]*entry
	head, tail *entry // most and least recently failed
	_          [64]byte
}

// sourceKey is the table key of a source: its address, or for a source
// that is no IP address, its text (clipped).
type sourceKey struct {
	addr  netip.Addr
	other string
}

type entry struct {
	key        sourceKey
	due        int64 // unix nanoseconds when the source's debt is paid
	prev, next *entry
}

// NewLimiter returns a Limiter with the given options.
func NewLimiter(opts LimiterOptions) *Limiter {
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCapacity
	}
	if opts.Source == nil {
		opts.Source = RemoteHost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LogRate <= 0 {
		opts.LogRate = DefaultLogRate
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	l := &Limiter{
		allowance: time.Duration(opts.Burst-1) * opts.Interval,
		interval:  opts.Interval,
		perShard:  max(1, opts.Capacity/numShards),
		source:    opts.Source,
		now:       opts.Now,
		seed:      maphash.MakeSeed(),
		log:       failureLog{log: opts.Log, rate: opts.LogRate, api: opts.API},
		onFailed:  opts.OnFailed,
		onRefused: opts.OnRefused,
	}
	for i := range l.shards {
		l.shards[i].m = make(map[sourceKey]*entry)
	}
	return l
}

// RemoteHost is the default source of a request: the host of its
// RemoteAddr. (Behind a proxy, pass Source a function that trusts the
// proxy's forwarding header instead.)
func RemoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// Len returns the number of sources the table holds.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	return int(l.size.Load())
}

// Check returns an ETOOMANY error when the source of r is over its
// failure budget, and nil otherwise. Call it before checking credentials.
func (l *Limiter) Check(r *http.Request) error {
	if l == nil || l.size.Load() == 0 {
		return nil
	}
	t := l.now()
	if t.UnixNano() >= l.until.Load() {
		return nil // every source is paid up
	}
	err := l.allow(l.source(r), t)
	if err != nil && l.onRefused != nil {
		l.onRefused(r)
	}
	return err
}

// Failed records a failed authentication of r and logs it (bounded in rate
// and length). user is what the client gave as its name or key id, "" if
// nothing; it is clipped and quoted, and never a password or token.
func (l *Limiter) Failed(r *http.Request, user string) {
	if l == nil {
		return
	}
	src := l.source(r)
	now := l.now()
	wait := l.fail(src, now)
	l.log.failed(now, r, src, user, wait)
	if l.onFailed != nil {
		l.onFailed(r)
	}
}

// Authenticator authenticates credentials (sessiond.Service does).
type Authenticator interface {
	Authenticate(ctx context.Context, c sessiond.Credentials) (*sessiond.Caller, error)
}

// Authenticate checks the source of r, then authenticates c with a, and
// records a failure when the credentials were wrong (see
// sessiond.ErrWrongCredentials). Missing credentials and those of a closed
// or expired session are refused without counting.
func (l *Limiter) Authenticate(r *http.Request, a Authenticator, c sessiond.Credentials) (*sessiond.Caller, error) {
	if err := l.Check(r); err != nil {
		return nil, err
	}
	caller, err := a.Authenticate(r.Context(), c)
	if err != nil && errors.Is(err, sessiond.ErrWrongCredentials) {
		user := ""
		if c.Token == "" {
			user = c.APIKey
		}
		l.Failed(r, user)
	}
	return caller, err
}

func (l *Limiter) key(src string) sourceKey {
	if a, err := netip.ParseAddr(src); err == nil {
		a = a.Unmap().WithZone("")
		if a.Is6() {
			p, _ := a.Prefix(64)
			a = p.Addr()
		}
		return sourceKey{addr: a}
	}
	return sourceKey{other: httpx.Clip(src, 64)}
}

func (l *Limiter) shardOf(k sourceKey) *shard {
	return &l.shards[maphash.Comparable(l.seed, k)%numShards]
}

// allow is Check for the source src.
func (l *Limiter) allow(src string, t time.Time) error {
	k := l.key(src)
	s := l.shardOf(k)
	now := t.UnixNano()
	var wait time.Duration
	s.mu.Lock()
	if e := s.m[k]; e != nil {
		wait = time.Duration(e.due-now) - l.allowance
		if e.due <= now { // paid up: nothing left to remember
			s.remove(e)
			delete(s.m, k)
			l.size.Add(-1)
		}
	}
	s.prune(l, now)
	s.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	l.log.refused(t)
	secs := int((wait + time.Second - 1) / time.Second)
	return &sessiond.Error{Code: sessiond.ETOOMANY,
		Message: "too many failed authentication attempts from this address; retry in " + strconv.Itoa(secs) + " s",
		Details: map[string]any{"retry_after": secs}}
}

// fail adds one failure to src's debt and returns how long src must now
// wait (0 or less: it may try again at once).
func (l *Limiter) fail(src string, t time.Time) time.Duration {
	k := l.key(src)
	s := l.shardOf(k)
	now := t.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[k]
	switch {
	case e != nil:
		s.remove(e)
	case len(s.m) >= l.perShard:
		e = s.tail // forget the source that failed least recently
		s.remove(e)
		delete(s.m, e.key)
		*e = entry{key: k}
	default:
		e = &entry{key: k}
		l.size.Add(1)
	}
	s.m[k] = e
	s.pushFront(e)
	if e.due < now {
		e.due = now
	}
	e.due += int64(l.interval)
	for u := l.until.Load(); u < e.due && !l.until.CompareAndSwap(u, e.due); u = l.until.Load() {
	}
	s.prune(l, now)
	return time.Duration(e.due-now) - l.allowance
}

// prune forgets a paid-up source or two, so that the table empties (and
// Check becomes free again) once an attack stops. s.mu is held.
func (s *shard) prune(l *Limiter, now int64) {
	for i := 0; i < 2 && s.tail != nil && s.tail.due <= now; i++ {
		old := s.tail
		s.remove(old)
		delete(s.m, old.key)
		l.size.Add(-1)
	}
}

// remove unlinks e from the shard's list (not from its map).
func (s *shard) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if s.head == e {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if s.tail == e {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

// failureLog writes failure lines, at most rate per second; the others are
// counted and reported in one line when the next second begins.
type failureLog struct {
	log  *slog.Logger
	rate int
	api  string

	mu         sync.Mutex
	window     int64 // the unix second being counted
	lines      int   // lines written in window
	suppressed int   // failure lines left out since the last report
	refusals   int   // requests refused since the last report
}

// maxLogged is the most bytes of a client-chosen name that a log line
// quotes.
const maxLogged = 64

// report starts the second of now, first writing what was left out in
// the earlier ones.
func (f *failureLog) report(now time.Time) {
	sec := now.Unix()
	if sec == f.window {
		return
	}
	if f.suppressed > 0 || f.refusals > 0 {
		f.log.Warn("authentication failures: log lines suppressed", "api", f.api,
			"suppressed", f.suppressed, "refused", f.refusals)
		f.suppressed, f.refusals = 0, 0
	}
	f.window, f.lines = sec, 0
}

func (f *failureLog) failed(now time.Time, r *http.Request, src, user string, wait time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.report(now)
	if f.lines >= f.rate {
		f.suppressed++
		return
	}
	f.lines++
	attrs := []any{"api", f.api, "source", httpx.Clip(src, maxLogged), "path", httpx.Clip(r.URL.Path, maxLogged),
		"correlation_id", httpx.CorrelationID(r)}
	if user != "" {
		// slog's handlers quote a value holding spaces, quotes or control
		// characters, so the clipped name cannot forge a line or field.
		attrs = append(attrs, "user", httpx.Clip(user, maxLogged))
		if len(user) > maxLogged {
			attrs = append(attrs, "user_bytes", len(user))
		}
	}
	if wait > 0 {
		attrs = append(attrs, "slowed_down", true)
	}
	f.log.Info("authentication failed", attrs...)
}

// refused counts a request refused for its source's failures; refusals
// are reported only in the "suppressed" line.
func (f *failureLog) refused(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.report(now)
	f.refusals++
}
