package cache_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/cache"
	"sessiond/store/memory"
	"sessiond/store/storetest"
)

// shared is the memory engine made to look shared: it has a stream, and it
// counts the reads that reach it. hook, if set, runs inside a read, after
// the session was read and before it is returned: the moment a concurrent
// invalidation can slip in.
type shared struct {
	*memory.Store
	stream    *sessiond.LocalStream
	gets      atomic.Int64
	tokenGets atomic.Int64
	hook      atomic.Pointer[func()]
}

func newShared() *shared {
	return &shared{Store: memory.New(), stream: sessiond.NewLocalStream("test")}
}

func (s *shared) Stream() sessiond.Stream { return s.stream }

func (s *shared) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	s.gets.Add(1)
	sess, err := s.Store.Get(ctx, id)
	s.runHook()
	return sess, err
}

func (s *shared) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	s.tokenGets.Add(1)
	sess, err := s.Store.GetByTokenHash(ctx, hash)
	s.runHook()
	return sess, err
}

// setHook runs fn inside the next read only.
func (s *shared) setHook(fn func()) {
	once := func() {
		s.hook.Store(nil)
		fn()
	}
	s.hook.Store(&once)
}

func (s *shared) runHook() {
	if h := s.hook.Load(); h != nil {
		(*h)()
	}
}

// fakeClock is a sessiond.Clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func tokenHash(name string) []byte {
	h := sha256.Sum256([]byte("token:" + name))
	return h[:]
}

func session(id string, now time.Time) *sessiond.Session {
	return &sessiond.Session{
		ID: id, UserID: "u-" + id, Active: true, OpenTime: now, RequestTime: now,
		Data: []byte(`{"n":1}`), TokenHash: tokenHash(id),
	}
}

// setup returns a cache over a fresh shared memory store holding one
// session "a", and the clock the cache reads.
func setup(t *testing.T, opts cache.Options) (*cache.Store, *shared, *fakeClock) {
	t.Helper()
	in := newShared()
	clock := &fakeClock{t: t0}
	if opts.Clock == nil {
		opts.Clock = clock
	}
	c := cache.New(in, opts)
	t.Cleanup(func() { c.Close() })
	if _, err := c.Create(t.Context(), session("a", t0), 0); err != nil {
		t.Fatal(err)
	}
	return c, in, clock
}

// reads returns how many session reads reached the inner store.
func (s *shared) reads() int64 { return s.gets.Load() + s.tokenGets.Load() }

// readBoth reads "a" by id and by token through c, checking the result.
func readBoth(t *testing.T, c *cache.Store) *sessiond.Session {
	t.Helper()
	a, err := c.Get(t.Context(), "a")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	b, err := c.GetByTokenHash(t.Context(), tokenHash("a"))
	if err != nil {
		t.Fatalf("GetByTokenHash: %v", err)
	}
	if a.ID != "a" || b.ID != "a" {
		t.Fatalf("read %q and %q, want a", a.ID, b.ID)
	}
	if string(a.Data) != string(b.Data) {
		t.Fatalf("by id data %s, by token %s", a.Data, b.Data)
	}
	return a
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Engine{New: func(t *testing.T) sessiond.Store {
		return cache.New(newShared(), cache.Options{})
	}})
}

// BenchmarkMissEvict: every lookup misses a full cache, reads the store
// and evicts an entry to fill: the cost of eviction, beside a bare lookup.
func BenchmarkMissEvict(b *testing.B) {
	c := cache.New(newShared(), cache.Options{MaxEntries: 1000, MaxAge: time.Hour})
	hashes := benchTokens(b, c, 10_000)
	benchHit(b, c, hashes)
}

// TestCopySession: the cache's copy is Session.Clone's, and its parts do
// not share room: appending to one leaves the others alone.
func TestCopySession(t *testing.T) {
	for _, s := range []*sessiond.Session{
		session("a", t0),
		{ID: "empty"},
		{ID: "zero-length", User: []byte{}, Data: []byte("null"), TokenHash: []byte{}},
		{ID: "full", User: []byte(`{"u":1}`), Data: []byte(`[1]`), TokenHash: tokenHash("full"), CloseReason: "closed"},
	} {
		c := cache.CopySession(s)
		if !reflect.DeepEqual(c, s.Clone()) {
			t.Errorf("%s: copy %+v, Clone %+v", s.ID, c, s.Clone())
		}
		if len(c.User) > 0 {
			want := string(c.Data)
			_ = append(c.User, "xxxxxxxx"...)
			if string(c.Data) != want {
				t.Errorf("%s: appending to User changed Data to %s", s.ID, c.Data)
			}
		}
		if len(c.Data) > 0 {
			c.Data[0] = 'X'
			if s.Data[0] == 'X' {
				t.Errorf("%s: the copy shares Data with the original", s.ID)
			}
		}
	}
}

func TestNewNeedsStreamer(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("New over an engine without a stream did not panic")
		}
	}()
	cache.New(memory.New(), cache.Options{})
}

func TestStreamIsInners(t *testing.T) {
	c, in, _ := setup(t, cache.Options{})
	if c.Stream() != sessiond.Stream(in.stream) {
		t.Errorf("Stream() is not the inner store's stream")
	}
}

func TestHitsDoNotReachInner(t *testing.T) {
	c, in, _ := setup(t, cache.Options{})
	readBoth(t, c) // Get fills; the token lookup hits the same entry
	if got := in.reads(); got != 1 {
		t.Fatalf("first reads reached inner %d times, want 1", got)
	}
	for range 10 {
		readBoth(t, c)
	}
	if got := in.reads(); got != 1 {
		t.Errorf("cached reads reached inner: %d reads in all, want 1", got)
	}
	// A token lookup fills too.
	if _, err := c.Create(t.Context(), session("b", t0), 0); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.GetByTokenHash(t.Context(), tokenHash("b")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(t.Context(), "b"); err != nil {
			t.Fatal(err)
		}
	}
	if got := in.reads(); got != 2 {
		t.Errorf("reads of b reached inner %d times, want 1", got-1)
	}
}

func TestUnknownReadThrough(t *testing.T) {
	c, in, _ := setup(t, cache.Options{})
	for range 3 {
		if _, err := c.GetByTokenHash(t.Context(), tokenHash("nobody")); sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
			t.Fatalf("unknown token: %v, want ENOTFOUND", err)
		}
		if _, err := c.Get(t.Context(), "nobody"); sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
			t.Fatalf("unknown id: %v, want ENOTFOUND", err)
		}
	}
	if got := in.reads(); got != 6 {
		t.Errorf("unknown reads reached inner %d times, want 6 (nothing negative cached)", got)
	}
	// Created elsewhere (straight into inner): found at once.
	if _, err := in.Store.Create(t.Context(), session("nobody", t0), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetByTokenHash(t.Context(), tokenHash("nobody")); err != nil {
		t.Errorf("a session created on another instance: %v", err)
	}
}

func TestCopies(t *testing.T) {
	c, _, _ := setup(t, cache.Options{})
	a := readBoth(t, c)
	a.Data[2] = 'X'
	a.TokenHash[0] ^= 0xff
	a.UserID = "changed"
	b := readBoth(t, c)
	if string(b.Data) != `{"n":1}` || b.UserID != "u-a" {
		t.Errorf("a caller's change reached the cache: %+v", b)
	}
}

// changeInner changes "a" in the inner store only, as another instance
// does, so that only an event (or age) can tell the cache.
func changeInner(t *testing.T, in *shared, data string) {
	t.Helper()
	_, err := in.Store.Update(t.Context(), "a", func(s *sessiond.Session) error {
		s.Data = []byte(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEventsInvalidate(t *testing.T) {
	for _, tt := range []struct {
		kind sessiond.EventKind
		drop bool
	}{
		{sessiond.EventChanged, true},
		{sessiond.EventClosed, true},
		{sessiond.EventDeleted, true},
		{sessiond.EventOpened, false},
		{sessiond.EventKeyRevoked, false},
	} {
		t.Run(string(tt.kind), func(t *testing.T) {
			c, in, _ := setup(t, cache.Options{})
			readBoth(t, c)
			changeInner(t, in, `{"n":2}`)
			ev := sessiond.Event{Kind: tt.kind, SessionID: "a"}
			if tt.kind == sessiond.EventKeyRevoked {
				ev = sessiond.Event{Kind: tt.kind, APIKeyID: "k"}
			}
			in.stream.Publish(t.Context(), ev)
			if n, tn := c.Len(), c.TokenLen(); tt.drop && (n != 0 || tn != 0) {
				t.Errorf("after %s: %d entries, %d in the token index, want none", tt.kind, n, tn)
			}
			before := in.reads()
			got := readBoth(t, c)
			want := `{"n":1}`
			if tt.drop {
				want = `{"n":2}`
			}
			if string(got.Data) != want {
				t.Errorf("after %s: data %s, want %s", tt.kind, got.Data, want)
			}
			if reached := in.reads() - before; tt.drop != (reached > 0) {
				t.Errorf("after %s: %d reads reached inner", tt.kind, reached)
			}
		})
	}
}

func TestLostReadsThroughUntilResumed(t *testing.T) {
	c, in, _ := setup(t, cache.Options{})
	readBoth(t, c)
	in.stream.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
	if c.Len() != 0 {
		t.Errorf("%d entries after EventLost, want 0", c.Len())
	}
	before := in.reads()
	for i := range 3 {
		changeInner(t, in, fmt.Sprintf(`{"n":%d}`, 10+i))
		got := readBoth(t, c)
		if want := fmt.Sprintf(`{"n":%d}`, 10+i); string(got.Data) != want {
			t.Errorf("while lost: data %s, want %s", got.Data, want)
		}
	}
	if got := in.reads() - before; got != 6 {
		t.Errorf("while lost %d of 6 reads reached inner", got)
	}
	if c.Len() != 0 {
		t.Errorf("%d entries cached while lost", c.Len())
	}
	in.stream.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
	readBoth(t, c)
	readBoth(t, c)
	if got := in.reads() - before; got != 7 {
		t.Errorf("after resumed: %d reads reached inner, want 7 (one fill)", got)
	}
}

// TestLostLateSubscriber: a cache made while the stream is lost learns
// it at once (LocalStream tells late subscribers) and caches nothing.
func TestLostLateSubscriber(t *testing.T) {
	in := newShared()
	in.stream.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
	c := cache.New(in, cache.Options{Clock: &fakeClock{t: t0}})
	defer c.Close()
	if _, err := c.Create(t.Context(), session("a", t0), 0); err != nil {
		t.Fatal(err)
	}
	readBoth(t, c)
	readBoth(t, c)
	if got := in.reads(); got != 4 {
		t.Errorf("%d of 4 reads reached inner while lost", got)
	}
}

// TestReadInvalidateRace: a read of the old session is in flight when the
// change's event arrives; what it read must not be cached after the
// invalidation. The hook delivers the event inside the inner read.
func TestReadInvalidateRace(t *testing.T) {
	reads := map[string]func(c *cache.Store) (*sessiond.Session, error){
		"Get": func(c *cache.Store) (*sessiond.Session, error) { return c.Get(context.Background(), "a") },
		"GetByTokenHash": func(c *cache.Store) (*sessiond.Session, error) {
			return c.GetByTokenHash(context.Background(), tokenHash("a"))
		},
	}
	events := map[string]func(in *shared){
		"changed": func(in *shared) {
			in.stream.Publish(context.Background(), sessiond.Event{Kind: sessiond.EventChanged, SessionID: "a"})
		},
		"lost": func(in *shared) {
			in.stream.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
			in.stream.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
		},
	}
	for rname, read := range reads {
		for ename, deliver := range events {
			t.Run(rname+"/"+ename, func(t *testing.T) {
				c, in, _ := setup(t, cache.Options{})
				in.setHook(func() {
					// The read has the old data; another instance changes
					// it now and tells it.
					changeInner(t, in, `{"n":2}`)
					deliver(in)
				})
				old, err := read(c)
				if err != nil {
					t.Fatal(err)
				}
				if string(old.Data) != `{"n":1}` {
					t.Fatalf("in-flight read: %s, want the old data", old.Data)
				}
				if got := readBoth(t, c); string(got.Data) != `{"n":2}` {
					t.Errorf("after the invalidation: %s, want the new data (the old read was cached)", got.Data)
				}
			})
		}
	}
}

// TestRaceOtherSession: an invalidation of another session while a read
// is in flight costs at most one more read of this one.
func TestRaceOtherSession(t *testing.T) {
	c, in, _ := setup(t, cache.Options{})
	in.setHook(func() {
		in.stream.Publish(context.Background(), sessiond.Event{Kind: sessiond.EventChanged, SessionID: "other"})
	})
	readBoth(t, c)
	before := in.reads()
	readBoth(t, c)
	// With 64 shards "other" may share a's shard; then the fill was
	// refused, conservatively, and this read filled.
	readBoth(t, c)
	if got := in.reads() - before; got > 1 {
		t.Errorf("%d reads reached inner after the fill", got)
	}
}

// Entries are served as read for MaxAge; from then until twice MaxAge the
// old entry is served while a background read replaces it; past twice
// MaxAge an entry is never served.
func TestMaxAge(t *testing.T) {
	c, in, clock := setup(t, cache.Options{MaxAge: 2 * time.Second})
	readBoth(t, c)
	changeInner(t, in, `{"n":2}`) // not told: only age can reveal it
	clock.Add(1999 * time.Millisecond)
	if got := readBoth(t, c); string(got.Data) != `{"n":1}` {
		t.Errorf("younger than MaxAge: %s, want the cached data", got.Data)
	}
	clock.Add(time.Millisecond)
	readBoth(t, c) // at MaxAge: served, and read again in the background
	// Polled by id alone: the refresh may land between the two reads of
	// readBoth, which then checks the result.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := c.Get(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) == `{"n":2}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the entry was not read again in the background after MaxAge")
		}
		time.Sleep(time.Millisecond)
	}
	if got := readBoth(t, c); string(got.Data) != `{"n":2}` {
		t.Errorf("after the refresh: %s, want the new data", got.Data)
	}
	// Never served at twice MaxAge, refreshing or not.
	changeInner(t, in, `{"n":3}`)
	clock.Add(4 * time.Second)
	if got := readBoth(t, c); string(got.Data) != `{"n":3}` {
		t.Errorf("at twice MaxAge: %s, want a read through", got.Data)
	}
	// A clock that went back does not keep an entry alive.
	changeInner(t, in, `{"n":4}`)
	clock.Add(-time.Hour)
	if got := readBoth(t, c); string(got.Data) != `{"n":4}` {
		t.Errorf("clock went back: %s, want a read through", got.Data)
	}
}

func TestDefaultMaxAge(t *testing.T) {
	c, in, clock := setup(t, cache.Options{})
	readBoth(t, c)
	changeInner(t, in, `{"n":2}`)
	clock.Add(2 * time.Second)
	if got := readBoth(t, c); string(got.Data) != `{"n":2}` {
		t.Errorf("after 2s: %s, want a read through", got.Data)
	}
}

func TestEvictionBound(t *testing.T) {
	for _, max := range []int{1, 10, 100, 1000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			c, _, _ := setup(t, cache.Options{MaxEntries: max})
			for i := range 3 * max {
				id := fmt.Sprint("s", i)
				if _, err := c.Create(t.Context(), session(id, t0), 0); err != nil {
					t.Fatal(err)
				}
				if _, err := c.GetByTokenHash(t.Context(), tokenHash(id)); err != nil {
					t.Fatal(err)
				}
				if n, tn := c.Len(), c.TokenLen(); n > max || tn > max {
					t.Fatalf("%d entries, %d in the token index, bound %d", n, tn, max)
				}
			}
			if c.Len() == 0 {
				t.Errorf("nothing cached")
			}
			// Every session still reads right, evicted or not.
			for i := range 3 * max {
				id := fmt.Sprint("s", i)
				s, err := c.GetByTokenHash(t.Context(), tokenHash(id))
				if err != nil || s.ID != id {
					t.Fatalf("token of %s: %v, %v", id, s, err)
				}
			}
		})
	}
}

// TestWritesThroughHandle: writes through the cache are seen at once by
// its reads, with no event.
func TestWritesThroughHandle(t *testing.T) {
	ctx := t.Context()
	c, _, _ := setup(t, cache.Options{})
	readBoth(t, c)
	if _, err := c.Update(ctx, "a", func(s *sessiond.Session) error { s.Data = []byte(`{"n":2}`); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := readBoth(t, c); string(got.Data) != `{"n":2}` {
		t.Errorf("after Update: %s", got.Data)
	}
	if err := c.Touch(ctx, []sessiond.Touch{{ID: "a", Time: t0.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if got := readBoth(t, c); !got.RequestTime.Equal(t0.Add(time.Minute)) {
		t.Errorf("after Touch: RequestTime %v", got.RequestTime)
	}
	if _, err := c.CloseExpired(ctx, t0.Add(time.Hour), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := readBoth(t, c); got.Active {
		t.Errorf("after CloseExpired: still active")
	}
	if _, err := c.Purge(ctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a"); sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
		t.Errorf("after Purge: %v", err)
	}
	if _, err := c.Create(ctx, session("d", t0), 0); err != nil {
		t.Fatal(err)
	}
	c.Get(ctx, "d")
	if _, err := c.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetByTokenHash(ctx, tokenHash("d")); sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
		t.Errorf("after Delete: %v", err)
	}
}

// TestTouchKeepsEntry: a flush of touches refreshes the cached entry
// rather than dropping it.
func TestTouchKeepsEntry(t *testing.T) {
	c, in, _ := setup(t, cache.Options{})
	readBoth(t, c)
	before := in.reads()
	if err := c.Touch(t.Context(), []sessiond.Touch{{ID: "a", Time: t0.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	readBoth(t, c)
	if got := in.reads() - before; got != 0 {
		t.Errorf("%d reads reached inner after a touch", got)
	}
}

// TestTouchRace: a read of the session from before a touch through this
// handle, in flight during it, does not put the old RequestTime back.
func TestTouchRace(t *testing.T) {
	c, in, _ := setup(t, cache.Options{})
	later := t0.Add(time.Minute)
	in.setHook(func() {
		if err := c.Touch(context.Background(), []sessiond.Touch{{ID: "a", Time: later}}); err != nil {
			t.Error(err)
		}
	})
	if _, err := c.Get(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if got := readBoth(t, c); !got.RequestTime.Equal(later) {
		t.Errorf("RequestTime %v after the touch, want %v", got.RequestTime, later)
	}
}

// TestTwoInstances: two services, each over its own cache of one store,
// share one stream. A session closed through A stops authenticating
// through B at once, though B had it cached.
func TestTwoInstances(t *testing.T) {
	ctx := t.Context()
	in := newShared()
	clock := &fakeClock{t: t0}
	ca := cache.New(in, cache.Options{Clock: clock})
	cb := cache.New(in, cache.Options{Clock: clock})
	defer ca.Close()
	defer cb.Close()
	a := sessiond.NewService(ca, clock, sessiond.Config{}, nil)
	b := sessiond.NewService(cb, clock, sessiond.Config{}, nil)
	defer a.Stop()
	defer b.Stop()

	sess, token, err := a.Open(ctx, sessiond.OpenRequest{UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := b.Authenticate(ctx, sessiond.Credentials{Token: token}); err != nil {
			t.Fatalf("B authenticates: %v", err)
		}
	}
	if got := in.tokenGets.Load(); got != 1 {
		t.Errorf("B's token lookups reached the store %d times, want 1", got)
	}
	if _, err := a.CloseSession(ctx, sess.ID, sessiond.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(ctx, sessiond.Credentials{Token: token}); sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
		t.Errorf("B after A closed the session: %v, want EUNAUTHORIZED", err)
	}
	if got, err := b.Get(ctx, sess.ID); err != nil || got.Active {
		t.Errorf("B's Get after the close: %+v, %v", got, err)
	}
}

// The benchmarks: a token lookup that hits, in parallel, through the cache
// and on the bare memory store.

func benchTokens(b *testing.B, s sessiond.Store, n int) [][]byte {
	hashes := make([][]byte, n)
	for i := range n {
		id := fmt.Sprint("s", i)
		sess := session(id, t0)
		sess.User = []byte(`{"id":"u","name":"A user","roles":["reader","writer"]}`)
		sess.Data = []byte(`{"cart":[1,2,3],"theme":"dark","lang":"en"}`)
		if _, err := s.Create(context.Background(), sess, 0); err != nil {
			b.Fatal(err)
		}
		hashes[i] = sess.TokenHash
	}
	return hashes
}

func benchHit(b *testing.B, s sessiond.Store, hashes [][]byte) {
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919)
		for pb.Next() {
			i++
			if _, err := s.GetByTokenHash(context.Background(), hashes[i%uint64(len(hashes))]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenHit: the cache runs on the system clock with a long MaxAge,
// so every lookup is a hit.
func BenchmarkTokenHit(b *testing.B) {
	const n = 10_000
	b.Run("cache", func(b *testing.B) {
		c := cache.New(newShared(), cache.Options{MaxAge: time.Hour})
		hashes := benchTokens(b, c, n)
		for _, h := range hashes {
			c.GetByTokenHash(context.Background(), h)
		}
		benchHit(b, c, hashes)
	})
	b.Run("memory", func(b *testing.B) {
		m := memory.New()
		benchHit(b, m, benchTokens(b, m, n))
	})
}

// BenchmarkCopy is the copy every hit returns, alone, as Session.Clone
// makes it and as the cache does: compare with BenchmarkTokenHit/cache.
func BenchmarkCopy(b *testing.B) {
	m := memory.New()
	hashes := benchTokens(b, m, 1)
	sess, err := m.GetByTokenHash(context.Background(), hashes[0])
	if err != nil {
		b.Fatal(err)
	}
	for name, copy := range map[string]func(*sessiond.Session) *sessiond.Session{
		"Clone": (*sessiond.Session).Clone,
		"cache": cache.CopySession,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var sink *sessiond.Session
				for pb.Next() {
					sink = copy(sess)
				}
				benchSink.Store(sink)
			})
		})
	}
}

var benchSink atomic.Pointer[sessiond.Session]

// TestConcurrent runs reads, writes through the cache, changes told by
// events and losses at once (for the race detector), then checks that
// every read agrees with the store: no stale entry survived.
func TestConcurrent(t *testing.T) {
	ctx := t.Context()
	in := newShared()
	c := cache.New(in, cache.Options{MaxEntries: 16, Clock: &fakeClock{t: t0}})
	defer c.Close()
	const n = 8
	for i := range n {
		if _, err := c.Create(ctx, session(fmt.Sprint(i), t0), 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				id := fmt.Sprint((i + w) % n)
				switch (i + w) % 6 {
				case 0: // another instance changes it and tells it
					in.Store.Update(ctx, id, func(s *sessiond.Session) error {
						s.Data = []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
						return nil
					})
					in.stream.Publish(ctx, sessiond.Event{Kind: sessiond.EventChanged, SessionID: id})
				case 1: // this instance changes it
					c.Update(ctx, id, func(s *sessiond.Session) error {
						s.Data = []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
						return nil
					})
				case 2:
					c.Touch(ctx, []sessiond.Touch{{ID: id, Time: t0.Add(time.Duration(i) * time.Millisecond)}})
				case 3:
					if i%50 == 3 {
						in.stream.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
						in.stream.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
					}
					c.Get(ctx, id)
				default:
					c.GetByTokenHash(ctx, tokenHash(id))
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		id := fmt.Sprint(i)
		want, err := in.Store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			byID, err1 := c.Get(ctx, id)
			byToken, err2 := c.GetByTokenHash(ctx, tokenHash(id))
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %v, %v", id, err1, err2)
			}
			if !reflect.DeepEqual(byID, want) || !reflect.DeepEqual(byToken, want) {
				t.Errorf("%s: cached %+v / %+v, stored %+v", id, byID, byToken, want)
			}
		}
	}
}

// multi is shared with a batch read, as the shared engines have.
type multi struct {
	*shared
	batches atomic.Int64
	batched atomic.Int64
}

func (m *multi) GetMany(ctx context.Context, ids []string) ([]*sessiond.Session, error) {
	m.batches.Add(1)
	m.batched.Add(int64(len(ids)))
	var out []*sessiond.Session
	for _, id := range ids {
		sess, err := m.Store.Get(ctx, id)
		if sessiond.ErrorCode(err) == sessiond.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	return out, nil
}

// The background refresh reads the entries due in batches through
// GetMany, never one by one, and drops the sessions that are gone.
func TestRefreshBatched(t *testing.T) {
	in := &multi{shared: newShared()}
	clock := &fakeClock{t: t0}
	c := cache.New(in, cache.Options{Clock: clock})
	t.Cleanup(func() { c.Close() })
	const n = 300
	ctx := t.Context()
	for i := range n {
		if _, err := in.Store.Create(ctx, session(fmt.Sprint(i), t0), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetByTokenHash(ctx, tokenHash(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := in.Store.Update(ctx, fmt.Sprint(i), func(s *sessiond.Session) error {
			s.Data = []byte(`{"n":2}`)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.Store.Delete(ctx, "0"); err != nil {
		t.Fatal(err)
	}
	gets := in.gets.Load() + in.tokenGets.Load()
	clock.Add(time.Second) // every entry at MaxAge: served, and due
	for i := range n {
		if _, err := c.GetByTokenHash(ctx, tokenHash(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Poll until every entry holds what the refresh read; a refresh under
	// way keeps the old entry served, so polling reaches no store.
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; i < n; {
		got, err := c.GetByTokenHash(ctx, tokenHash(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) == `{"n":2}` {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %d was not refreshed: %s, want the new data", i, got.Data)
		}
		time.Sleep(time.Millisecond)
	}
	if got := in.gets.Load() + in.tokenGets.Load() - gets; got != 0 {
		t.Errorf("%d single reads reached the store, want none (all from the refresh)", got)
	}
	// The deleted session is dropped by its refresh, then read through.
	for {
		_, err := c.GetByTokenHash(ctx, tokenHash("0"))
		if sessiond.ErrorCode(err) == sessiond.ENOTFOUND {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted session after the refresh: %v, want ENOTFOUND", err)
		}
		time.Sleep(time.Millisecond)
	}
	if got := in.batched.Load(); got != n {
		t.Errorf("%d ids refreshed, want %d", got, n)
	}
	// Ten milliseconds gather them all; allow a few more for a slow machine.
	if b := in.batches.Load(); b > 5 {
		t.Errorf("%d sessions refreshed in %d reads, want a few", n, b)
	}
}
