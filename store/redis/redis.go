package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
)

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// Log receives the engine's warnings (stream loss and recovery).
	Log *slog.Logger
	// Origin names this instance on the events it publishes; default a
	// random id.
	Origin string
	// OpTimeout bounds each operation; default 5s.
	OpTimeout time.Duration
	// Prefix starts every key of the store; default "sessiond:". It may
	// not hold '{' or '}' (the hash tags follow it).
	Prefix string
	// IdleTimeout and Retention are the service's (sessiond.Config): keys
	// expire Retention plus a margin after the deadline of their session
	// (see "Expiry" in the package doc). Defaults 24h and 7 days.
	IdleTimeout time.Duration
	Retention   time.Duration
	// EventRetention is how long the stream's logs keep events for
	// catching up; default one hour.
	EventRetention time.Duration
	// ListenPing is how long a subscription waits for a message before it
	// pings its connection, so that a silent loss is found; default 5s.
	ListenPing time.Duration
}

// Store is a sessiond.Store on Redis or Redis Cluster, shared between
// instances.
type Store struct {
	rdb     goredis.UniversalClient
	log     *slog.Logger
	timeout time.Duration
	prefix  string
	idle    time.Duration
	keep    time.Duration // Retention + keepMargin: how long a dead session's keys stay
	// strayMargin is the package's; tests shorten it.
	strayMargin time.Duration
	stream      *Stream
	closeOnce   sync.Once
}

var (
	_ sessiond.Store     = (*Store)(nil)
	_ sessiond.Streamer  = (*Store)(nil)
	_ sessiond.IDChooser = (*Store)(nil)
)

// keepMargin is added to the Retention in every key's expiry: the clocks
// of instances and server may differ, and the sweep runs only every so
// often.
const keepMargin = time.Hour

// Open connects to the server or cluster at url and starts the stream:
//
//	redis://[user:password@]host:port[/db]      standalone
//	rediss://...                                standalone over TLS
//	redis+cluster://[user:password@]h1:p1,h2:p2,...   Redis Cluster
//	rediss+cluster://...                        Redis Cluster over TLS
//
// A query parameter prefix=... sets the key prefix when Options.Prefix is
// empty (so that a URL alone can name a store); sslrootcert, sslcert and
// sslkey name TLS files, as in PostgreSQL URLs (tlsFiles); the other
// parameters of standalone URLs are go-redis's (dial_timeout, pool_size,
// ...).
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Origin == "" {
		var b [8]byte
		rand.Read(b[:])
		opts.Origin = hex.EncodeToString(b[:])
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 5 * time.Second
	}
	rawURL, prefix, err := cutPrefix(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = prefix
	}
	if opts.Prefix == "" {
		opts.Prefix = "sessiond:"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, sessiond.Errorf(sessiond.EINVALID, "redis store: the key prefix %q holds a brace", opts.Prefix)
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 24 * time.Hour
	}
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.EventRetention <= 0 {
		opts.EventRetention = time.Hour
	}
	if opts.ListenPing <= 0 {
		opts.ListenPing = 5 * time.Second
	}
	rdb, err := newClient(rawURL, opts.OpTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{
		rdb: rdb, log: opts.Log, timeout: opts.OpTimeout, prefix: opts.Prefix,
		idle: opts.IdleTimeout, keep: opts.Retention + keepMargin, strayMargin: strayMargin,
	}
	if err := s.Ping(ctx); err != nil {
		rdb.Close()
		return nil, err
	}
	if s.stream, err = newStream(ctx, s, opts); err != nil {
		rdb.Close()
		return nil, err
	}
	return s, nil
}

// cutPrefix removes the query parameter prefix from rawURL and returns
// it.
func cutPrefix(rawURL string) (string, string, error) {
	rawURL, vals, err := cutParams(rawURL, "prefix")
	return rawURL, vals[0], err
}

// cutParams removes the query parameters names, which are the engine's
// and not go-redis's, from rawURL, and returns their values in the order
// of names ("" for one that is absent).
func cutParams(rawURL string, names ...string) (string, []string, error) {
	vals := make([]string, len(names))
	base, query, ok := strings.Cut(rawURL, "?")
	if !ok {
		return rawURL, vals, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", vals, sessiond.Errorf(sessiond.EINVALID, "redis store URL: %v", err)
	}
	for i, name := range names {
		vals[i] = q.Get(name)
		q.Del(name)
	}
	if len(q) > 0 {
		base += "?" + q.Encode()
	}
	return base, vals, nil
}

// NewClient makes a go-redis client of a store URL as Open makes its own:
// the prefix parameter left out, every network step bounded by timeout.
// For tools and baselines that must reach the server the engine's way
// (cmd/sessiond-load).
func NewClient(rawURL string, timeout time.Duration) (goredis.UniversalClient, error) {
	rawURL, _, err := cutPrefix(rawURL)
	if err != nil {
		return nil, err
	}
	return newClient(rawURL, timeout)
}

// newClient makes the client of url, every network step bounded by
// timeout.
func newClient(rawURL string, timeout time.Duration) (goredis.UniversalClient, error) {
	rawURL, files, err := cutTLSFiles(rawURL)
	if err != nil {
		return nil, err
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, sessiond.Errorf(sessiond.EINVALID, "redis store URL: no scheme")
	}
	if files.named() && !strings.HasPrefix(scheme, "rediss") {
		return nil, sessiond.Errorf(sessiond.EINVALID, "redis store URL: sslrootcert, sslcert and sslkey need TLS (rediss:// or rediss+cluster://)")
	}
	switch scheme {
	case "redis", "rediss":
		o, err := goredis.ParseURL(rawURL)
		if err != nil {
			return nil, sessiond.Errorf(sessiond.EINVALID, "redis store URL: %v", err)
		}
		if o.TLSConfig != nil {
			if err := files.apply(o.TLSConfig); err != nil {
				return nil, err
			}
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = timeout, timeout, timeout, timeout
		o.ContextTimeoutEnabled = true
		return goredis.NewClient(o), nil
	case "redis+cluster", "rediss+cluster":
		o := &goredis.ClusterOptions{
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
			ContextTimeoutEnabled: true,
		}
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			user, pass, hasPass := strings.Cut(rest[:i], ":")
			var err error
			if o.Username, err = url.PathUnescape(user); err == nil && hasPass {
				o.Password, err = url.PathUnescape(pass)
			}
			if err != nil {
				return nil, sessiond.Errorf(sessiond.EINVALID, "redis store URL: %v", err)
			}
			rest = rest[i+1:]
		}
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			rest = rest[:i]
		}
		for _, addr := range strings.Split(rest, ",") {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return nil, sessiond.Errorf(sessiond.EINVALID, "redis store URL: address %q: %v", addr, err)
			}
			o.Addrs = append(o.Addrs, addr)
		}
		if scheme == "rediss+cluster" {
			host, _, _ := net.SplitHostPort(o.Addrs[0])
			o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
			if err := files.apply(o.TLSConfig); err != nil {
				return nil, err
			}
		}
		return goredis.NewClusterClient(o), nil
	}
	return nil, sessiond.Errorf(sessiond.EINVALID, "redis store URL: unknown scheme %q", scheme)
}

// Stream returns the store's event stream (sessiond.Streamer).
func (s *Store) Stream() sessiond.Stream { return s.stream }

// Ping reports whether the server (every master of a cluster) answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if c, ok := s.rdb.(*goredis.ClusterClient); ok {
		return s.wrap(c.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			return m.Ping(ctx).Err()
		}))
	}
	return s.wrap(s.rdb.Ping(ctx).Err())
}

// Close stops the stream and closes the client; closing again does
// nothing.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stream.Close()
		err = s.rdb.Close()
	})
	return err
}

// op bounds one operation by the OpTimeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

var errUnavailable = "the session store is unavailable"

// wrap turns a client error into a sessiond.Error: failing to reach the
// server, a lost connection, no answer in time, or a server that cannot
// serve now (loading, cluster down, failover) is EUNAVAILABLE; anything
// else is internal.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	var se *sessiond.Error
	if errors.As(err, &se) {
		return err
	}
	if unavailable(err) {
		return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: errUnavailable, Err: err}
	}
	return sessiond.Internal(err)
}

// unavailable reports errors of reaching the server, or of a server that
// cannot serve now, rather than of the command: any error that is not a
// server's reply, and the replies LOADING, CLUSTERDOWN, TRYAGAIN,
// MASTERDOWN, READONLY (a failover under way), BUSY, MOVED and ASK (a
// resharding under way, after the client's own redirections).
func unavailable(err error) bool {
	var re goredis.Error
	if !errors.As(err, &re) {
		return true
	}
	msg := re.Error()
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY", "MOVED", "ASK"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
