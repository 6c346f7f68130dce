package main

// The Redis side of a run with -store redis://... or redis+cluster://...:
// a key prefix per daemon and per baseline, whose keys are deleted at the
// end (on every master of a cluster), and the "bare go-redis" baseline, a
// handler of T's shape that runs the engine's own commands for the
// operation through one go-redis client of the engine's kind.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
	"sessiond/config"
	"sessiond/store/redis"
)

// isRedisURL reports whether store names a Redis server or cluster.
func isRedisURL(store string) bool {
	for _, s := range []string{"redis://", "rediss://", "redis+cluster://", "rediss+cluster://"} {
		if strings.HasPrefix(store, s) {
			return true
		}
	}
	return false
}

// redisPrefixes hands out fresh key prefixes on one server or cluster and
// deletes their keys at the end of the run, or when the program is
// interrupted.
type redisPrefixes struct {
	base string // the URL given with -store
	rdb  goredis.UniversalClient

	mu      sync.Mutex
	created []string
	onExit  []func() // run after the keys are deleted on an interrupt (a private cluster's stop)
}

func newRedisPrefixes(base string) (*redisPrefixes, error) {
	rdb, err := redisClient(base)
	if err != nil {
		return nil, err
	}
	return &redisPrefixes{base: base, rdb: rdb}, nil
}

// create returns a fresh prefix load<random>: and the URL of a store under
// it (the engine's ?prefix= parameter).
func (p *redisPrefixes) create() (prefix, storeURL string) {
	var b [6]byte
	rand.Read(b[:])
	prefix = "load" + hex.EncodeToString(b[:]) + ":"
	p.mu.Lock()
	p.created = append(p.created, prefix)
	p.mu.Unlock()
	sep := "?"
	if strings.Contains(p.base, "?") {
		sep = "&"
	}
	return prefix, p.base + sep + "prefix=" + prefix
}

// deleteAll deletes the keys of every prefix made so far on every master
// (SCAN, then UNLINK a batch at a time); failures are printed.
func (p *redisPrefixes) deleteAll() {
	p.mu.Lock()
	prefixes := p.created
	p.created = nil
	p.mu.Unlock()
	for _, prefix := range prefixes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		n, err := deleteKeys(ctx, p.rdb, prefix)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "sessiond-load: deleting the keys of %s (%d deleted): %v\n", prefix, n, err)
		}
	}
}

// Close deletes the keys and closes the client.
func (p *redisPrefixes) Close() {
	p.deleteAll()
	p.rdb.Close()
}

// deleteOnInterrupt deletes the keys (and stops a private cluster) and
// exits when the program receives SIGINT or SIGTERM; the returned function
// stops watching.
func (p *redisPrefixes) deleteOnInterrupt() func() {
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "\nsessiond-load: %s: deleting the keys\n", s)
			// Stop the load first; the daemons still run, so delete
			// again after their background writes (touches, batched
			// events: within a second) have come.
			stopping.Store(true)
			time.Sleep(500 * time.Millisecond)
			p.mu.Lock()
			prefixes := slices.Clone(p.created)
			p.mu.Unlock()
			p.deleteAll()
			time.Sleep(1500 * time.Millisecond)
			p.mu.Lock()
			p.created = append(prefixes, p.created...)
			p.mu.Unlock()
			p.deleteAll()
			p.mu.Lock()
			exits := p.onExit
			p.mu.Unlock()
			for _, f := range exits {
				f()
			}
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}

// eachMaster calls fn with a client of every master (the server itself
// when standalone).
func eachMaster(ctx context.Context, rdb goredis.UniversalClient, fn func(ctx context.Context, c *goredis.Client) error) error {
	if cc, ok := rdb.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, fn)
	}
	return fn(ctx, rdb.(*goredis.Client))
}

// deleteKeys deletes every key under prefix and returns how many.
func deleteKeys(ctx context.Context, rdb goredis.UniversalClient, prefix string) (int, error) {
	var mu sync.Mutex
	total := 0
	err := eachMaster(ctx, rdb, func(ctx context.Context, c *goredis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, prefix+"*", 5000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				pipe := c.Pipeline()
				for _, k := range keys {
					pipe.Unlink(ctx, k)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					return err
				}
				mu.Lock()
				total += len(keys)
				mu.Unlock()
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
	return total, err
}

// usedMemory returns INFO memory's used_memory, summed over the masters.
func usedMemory(ctx context.Context, rdb goredis.UniversalClient) (int64, error) {
	var mu sync.Mutex
	var sum int64
	err := eachMaster(ctx, rdb, func(ctx context.Context, c *goredis.Client) error {
		v, err := infoField(ctx, c, "memory", "used_memory")
		n, _ := strconv.ParseInt(v, 10, 64)
		mu.Lock()
		sum += n
		mu.Unlock()
		return err
	})
	return sum, err
}

// streamMemory returns the bytes the stream's 16 logs under prefix take
// (MEMORY USAGE, every entry counted); 0 if that fails.
func streamMemory(ctx context.Context, rdb goredis.UniversalClient, prefix string) int64 {
	var sum int64
	for x := range 16 {
		n, _ := rdb.MemoryUsage(ctx, fmt.Sprintf("%s{ev%x}:log", prefix, x), 0).Result()
		sum += n
	}
	return sum
}

// infoField returns one field of INFO section.
func infoField(ctx context.Context, c *goredis.Client, section, field string) (string, error) {
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

// serverPIDs returns the process ids of the masters when they run on this
// machine (INFO server's process_id, checked to be a redis-server in
// /proc), for their CPU time; nil when one does not.
func serverPIDs(ctx context.Context, rdb goredis.UniversalClient) []int {
	var mu sync.Mutex
	var pids []int
	err := eachMaster(ctx, rdb, func(ctx context.Context, c *goredis.Client) error {
		if host, _, _ := net.SplitHostPort(c.Options().Addr); host != "127.0.0.1" && host != "localhost" && host != "::1" {
			return errors.New("not local")
		}
		v, err := infoField(ctx, c, "server", "process_id")
		if err != nil {
			return err
		}
		pid, _ := strconv.Atoi(v)
		if name, _, ok := procStat(v); !ok || !strings.HasPrefix(name, "redis-server") {
			return errors.New("not a local redis-server")
		}
		mu.Lock()
		pids = append(pids, pid)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil
	}
	return pids
}

// processCPU returns the CPU time (user and system) the processes have
// used, from /proc (the kernel's clock tick, 10 ms, is its resolution).
func processCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		_, f, ok := procStat(strconv.Itoa(pid))
		if !ok {
			continue
		}
		for _, v := range f[11:13] { // utime stime
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * (time.Second / 100)
}

// redisClient makes a client of the store URL as the engine makes its own
// (store/redis NewClient): a Client for redis://, a ClusterClient for
// redis+cluster://h1,h2,..., the engine's timeouts (5s) and go-redis's
// default pool (10 connections per CPU, per node).
func redisClient(rawURL string) (goredis.UniversalClient, error) {
	rdb, err := redis.NewClient(rawURL, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", config.Redact(rawURL), err)
	}
	return rdb, nil
}

// The engine's key layout and encoding (store/redis keys.go), restated for
// the baseline; TestBareRedis checks that its keys and fields are the
// engine's.

func groupOf(id string) int {
	if len(id) == 32 && strings.Trim(id, "0123456789abcdef") == "" {
		v, _ := strconv.ParseUint(id[:2], 16, 8)
		return int(v)
	}
	return hashGroup("i\x00" + id)
}

func hashGroup(s string) int {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int(h.Sum32() & 0xff)
}

// newSessionID places a session of a user in the user's home group, as
// the engine's NewSessionID.
func newSessionID(userID string) string {
	var b [16]byte
	rand.Read(b[:])
	if userID != "" {
		b[0] = byte(hashGroup("u\x00" + userID))
	}
	return hex.EncodeToString(b[:])
}

// bareRedis is the bare go-redis baseline: handlers of T's shape (read the
// POST body, answer fixed JSON) that run the engine's commands for one
// operation through one client, reading the daemon's keys (prefix) and
// writing its opens under a prefix of its own (openPrefix).
type bareRedis struct {
	rdb                goredis.UniversalClient
	prefix, openPrefix string
	idle, keep         time.Duration // the daemon's IdleTimeout, and its Retention plus the engine's margin (an hour)
}

func (b *bareRedis) base(prefix string, g int) string { return fmt.Sprintf("%s{%02x}:", prefix, g) }

func (b *bareRedis) sessionKey(prefix, id string) string {
	return b.base(prefix, groupOf(id)) + "s:" + id
}

func (b *bareRedis) tokenKey(prefix string, hash []byte) string {
	h := hex.EncodeToString(hash)
	return prefix + "{" + h[:4] + "}:t:" + h
}

var errBareNotFound = errors.New("not found")

// read is the engine's read of a session by id (HGETALL), decoded as the
// engine decodes it.
func (b *bareRedis) read(ctx context.Context, id string) (*sessiond.Session, error) {
	m, err := b.rdb.HGetAll(ctx, b.sessionKey(b.prefix, id)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, errBareNotFound
	}
	s := &sessiond.Session{ID: id, UserID: m["u"], UserName: m["n"], Active: m["a"] == "1", CloseReason: m["cr"],
		Address: m["ad"], Client: m["cl"], APIKeyID: m["k"]}
	for _, t := range []struct {
		dst *time.Time
		f   string
	}{{&s.OpenTime, "o"}, {&s.RequestTime, "r"}, {&s.CloseTime, "c"}, {&s.ExpireTime, "e"}} {
		if v := m[t.f]; v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, err
			}
			*t.dst = time.UnixMicro(n).UTC()
		}
	}
	if v, ok := m["us"]; ok {
		s.User = []byte(v)
	}
	if v, ok := m["d"]; ok {
		s.Data = []byte(v)
	}
	if v := m["t"]; v != "" {
		s.TokenHash = []byte(v)
	}
	return s, nil
}

// byToken is the engine's GetByTokenHash: GET of the token pointer, then
// the read of the session it names, which must hold that hash.
func (b *bareRedis) byToken(ctx context.Context, token string) error {
	hash := sessiond.HashSecret(token)
	cur, err := b.rdb.Get(ctx, b.tokenKey(b.prefix, hash)).Result()
	if errors.Is(err, goredis.Nil) {
		return errBareNotFound
	} else if err != nil {
		return err
	}
	id, _, _ := strings.Cut(cur, " ")
	s, err := b.read(ctx, id)
	if err == nil && string(s.TokenHash) != string(hash) {
		err = errBareNotFound
	}
	return err
}

func answerRedis(w http.ResponseWriter, fixed []byte, err error) {
	if errors.Is(err, errBareNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	answer(w, fixed, err)
}

// get answers {"session_id":...} with the engine's Get.
func (b *bareRedis) get(fixed []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := b.read(r.Context(), firstValue(r))
		answerRedis(w, fixed, err)
	})
}

// verify answers {"token":...} with the engine's GetByTokenHash of the
// token's hash.
func (b *bareRedis) verify(fixed []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerRedis(w, fixed, b.byToken(r.Context(), firstValue(r)))
	})
}

// gateway runs the engine's GetByTokenHash of the request's session token
// before handing the request to next (the bare ReverseProxy): a gateway
// without a cache.
func (b *bareRedis) gateway(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := b.byToken(r.Context(), r.Header.Get("Xdata-Session-Token")); err != nil {
			answerRedis(w, nil, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// open answers {"user_id":...} with the engine's Create of a new session of
// that user, with what the open scenario's requests carry: the token
// pointer's SET NX, then the create script (EVALSHA, the same Lua, keys and
// arguments). It stops there: no event, no UserSessions.
func (b *bareRedis) open(fixed []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := firstValue(r)
		now := time.Now()
		sess := &sessiond.Session{ID: newSessionID(user), UserID: user, UserName: "Load", Active: true,
			OpenTime: now, RequestTime: now, Address: "127.0.0.1", Client: "load", Data: []byte(`{"n":1}`),
			TokenHash: sessiond.HashSecret(sessiond.NewSecret())}
		answer(w, fixed, b.create(r.Context(), sess, now))
	})
}

// create is the engine's Create on the success path, under openPrefix.
func (b *bareRedis) create(ctx context.Context, sess *sessiond.Session, now time.Time) error {
	at := b.expiry(sess, now)
	pexp := (at/day + 2) * day
	value := sess.ID + " " + strconv.FormatInt(now.UnixMilli(), 10)
	ok, err := b.rdb.SetArgs(ctx, b.tokenKey(b.openPrefix, sess.TokenHash), value,
		goredis.SetArgs{Mode: "NX", ExpireAt: time.UnixMilli(pexp)}).Result()
	if err != nil {
		return err
	}
	if ok != "OK" {
		return errors.New("token pointer exists")
	}
	args := append([]any{sess.ID, at, "v", mrand.Int64N(1 << 50)}, sessionFields(sess)...)
	res, err := createScript.Run(ctx, b.rdb, []string{b.base(b.openPrefix, groupOf(sess.ID))}, args...).Result()
	if _, ok := res.([]any); err == nil && !ok {
		err = errors.New("session exists")
	}
	return err
}

const day = 24 * 60 * 60 * 1000

// expiry is the engine's (Store.expiry) for an active session.
func (b *bareRedis) expiry(sess *sessiond.Session, now time.Time) int64 {
	d := sess.Deadline(b.idle)
	if d.Before(now) {
		d = now
	}
	return d.Add(b.keep).UnixMilli()
}

// sessionFields is the engine's encoding of a session's hash.
func sessionFields(sess *sessiond.Session) []any {
	active := "0"
	if sess.Active {
		active = "1"
	}
	micro := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return strconv.FormatInt(t.UnixMicro(), 10)
	}
	f := []any{
		"u", sess.UserID, "n", sess.UserName, "a", active,
		"o", sess.OpenTime.UnixMicro(), "r", sess.RequestTime.UnixMicro(), "c", micro(sess.CloseTime), "e", micro(sess.ExpireTime),
		"cr", sess.CloseReason, "ad", sess.Address, "cl", sess.Client, "k", sess.APIKeyID, "t", string(sess.TokenHash),
	}
	if sess.User != nil {
		f = append(f, "us", string(sess.User))
	}
	if sess.Data != nil {
		f = append(f, "d", string(sess.Data))
	}
	return f
}

// createScript is the engine's create script itself, so that its SHA is
// the engine's.
var createScript = goredis.NewScript(redis.CreateScript)
