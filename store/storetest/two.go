package storetest

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/clock"
)

// The two-handle part: two Services, as two instances, on two handles of
// one store (Engine.Reopen), or on one handle and one in-process stream
// for engines that one process holds alone. What one acknowledges, the
// other sees; what one ends, the other refuses within RefusalBound.

// RefusalBound is how long after one instance acknowledges a close,
// force-close, expiry, delete or API-key revocation every other instance
// may still accept the session or key (SPEC section 8).
const RefusalBound = 100 * time.Millisecond

// twoTests run on a pair of instances.
var twoTests = []struct {
	name string
	fn   func(t *testing.T, p *pair)
}{
	{"WriteReadAcross", testWriteReadAcross},
	{"CloseRefusedAcross", testCloseRefusedAcross},
	{"KeyRevocationRefusedAcross", testKeyRevocationAcross},
	{"EventsAcross", testEventsAcross},
	{"StatsAcross", testStatsAcross},
	{"SweepBothAtOnce", testSweepBothAtOnce},
}

// pair is two instances on one store, with one clock.
type pair struct {
	a, b   *sessiond.Service
	sa, sb sessiond.Store
	clk    *clock.Fake
}

// runTwo runs the two-handle tests.
func runTwo(t *testing.T, e Engine) {
	for _, tt := range twoTests {
		t.Run("Two/"+tt.name, func(t *testing.T) {
			tt.fn(t, newPair(t, e))
		})
	}
}

// sharedHandle gives a store held by one process the in-process stream
// that two instances in this process share.
type sharedHandle struct {
	sessiond.Store
	stream sessiond.Stream
}

func (h sharedHandle) Stream() sessiond.Stream { return h.stream }

func newPair(t *testing.T, e Engine) *pair {
	sa := e.New(t)
	t.Cleanup(func() {
		if err := sa.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	var sb sessiond.Store
	if e.Reopen != nil {
		sb = e.Reopen(t, sa)
		t.Cleanup(func() {
			if err := sb.Close(); err != nil {
				t.Errorf("Close of the second handle: %v", err)
			}
		})
	} else {
		stream := sessiond.NewLocalStream("two")
		sa = sharedHandle{sa, stream}
		sb = sharedHandle{sa.(sharedHandle).Store, stream}
	}
	p := &pair{sa: sa, sb: sb, clk: clock.NewFake(time.Now())}
	cfg := sessiond.Config{IdleTimeout: time.Hour}
	p.a = sessiond.NewService(sa, p.clk, cfg, nil)
	p.b = sessiond.NewService(sb, p.clk, cfg, nil)
	t.Cleanup(func() {
		p.a.Stop()
		p.b.Stop()
	})
	return p
}

// refusedWithin polls check until it reports refusal, failing the test if
// that takes longer than RefusalBound after the acknowledgement at acked.
func refusedWithin(t *testing.T, what string, acked time.Time, check func() bool) {
	t.Helper()
	for !check() {
		if time.Since(acked) > RefusalBound {
			t.Fatalf("%s: still accepted %v after it was acknowledged", what, RefusalBound)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%s: refused after %v", what, time.Since(acked).Round(100*time.Microsecond))
}

// eventually polls check for up to 5 s: for what has no bound of its own.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *pair) key(t *testing.T) (*sessiond.APIKey, string) {
	t.Helper()
	k, secret, err := p.a.CreateAPIKey(t.Context(), "two")
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

func (p *pair) open(t *testing.T, on *sessiond.Service, keyID string) (*sessiond.Session, string) {
	t.Helper()
	sess, token, err := on.Open(t.Context(), sessiond.OpenRequest{UserID: "u", APIKeyID: keyID, Data: json.RawMessage(`{"n":1}`), ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return sess, token
}

// tokenWorks reports whether token authenticates on svc.
func tokenWorks(t *testing.T, svc *sessiond.Service, token string) bool {
	t.Helper()
	_, err := svc.Authenticate(t.Context(), sessiond.Credentials{Token: token})
	switch sessiond.ErrorCode(err) {
	case "":
		return true
	case sessiond.EUNAUTHORIZED:
		return false
	}
	t.Fatalf("Authenticate: %v", err)
	return false
}

func testWriteReadAcross(t *testing.T, p *pair) {
	ctx := t.Context()
	k, secret := p.key(t)
	// A key created on a is known on b.
	if _, err := p.b.Authenticate(ctx, sessiond.Credentials{APIKey: k.ID, Secret: secret}); err != nil {
		t.Fatalf("the key created on a, on b: %v", err)
	}
	sess, token := p.open(t, p.a, k.ID)
	got, err := p.b.Get(ctx, sess.ID)
	if err != nil || string(got.Data) != `{"n":1}` {
		t.Fatalf("Get on b of a session opened on a: %+v, %v", got, err)
	}
	if !tokenWorks(t, p.b, token) {
		t.Fatal("the token of a session opened on a is refused on b")
	}
	// b has it cached now; a changes it; b sees the change.
	if _, err := p.a.StoreData(ctx, sess.ID, json.RawMessage(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	refusedWithin(t, "data changed on a, old data on b", acked, func() bool {
		got, err := p.b.Get(ctx, sess.ID)
		return err == nil && string(got.Data) == `{"n":2}`
	})
	caller := &sessiond.Caller{APIKeyID: k.ID}
	view, err := p.b.SessionByToken(ctx, caller, token)
	if err != nil || string(view.Data) != `{"n":2}` {
		t.Errorf("SessionByToken on b after the change on a: %+v, %v", view, err)
	}
	// Listed on b.
	page, err := p.b.List(ctx, sessiond.Filter{UserID: "u"}, sessiond.Paging{Total: true})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != sess.ID || *page.Total != 1 {
		t.Errorf("List on b: %+v, %v", page, err)
	}
}

// testCloseRefusedAcross: every way a session ends on a is refused on b,
// whose caches were warmed first.
func testCloseRefusedAcross(t *testing.T, p *pair) {
	ends := []struct {
		name string
		end  func(t *testing.T, sess *sessiond.Session)
	}{
		{"close", func(t *testing.T, sess *sessiond.Session) {
			if _, err := p.a.CloseSession(t.Context(), sess.ID, sessiond.ReasonClosed); err != nil {
				t.Fatal(err)
			}
		}},
		{"force-close", func(t *testing.T, sess *sessiond.Session) {
			if _, err := p.a.CloseSession(t.Context(), sess.ID, sessiond.ReasonForced); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete", func(t *testing.T, sess *sessiond.Session) {
			if _, err := p.a.Delete(t.Context(), sess.ID); err != nil {
				t.Fatal(err)
			}
		}},
	}
	k, secret := p.key(t)
	caller, err := p.b.Authenticate(t.Context(), sessiond.Credentials{APIKey: k.ID, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, end := range ends {
		t.Run(end.name, func(t *testing.T) {
			ctx := t.Context()
			sess, token := p.open(t, p.a, k.ID)
			for range 2 { // warm b
				if !tokenWorks(t, p.b, token) {
					t.Fatal("refused on b before it ended")
				}
				if ok, err := p.b.VerifyToken(ctx, caller, token); !ok || err != nil {
					t.Fatalf("VerifyToken on b before it ended: %v %v", ok, err)
				}
			}
			end.end(t, sess)
			acked := time.Now()
			refusedWithin(t, end.name+" on a, token on b", acked, func() bool { return !tokenWorks(t, p.b, token) })
			if ok, err := p.b.VerifyToken(ctx, caller, token); ok || err != nil {
				t.Errorf("VerifyToken on b after %s on a: %v %v", end.name, ok, err)
			}
			if _, err := p.b.StoreData(ctx, sess.ID, json.RawMessage(`1`)); err == nil {
				t.Errorf("StoreData on b after %s on a succeeded", end.name)
			}
		})
	}
	t.Run("expiry", func(t *testing.T) {
		ctx := t.Context()
		_, token := p.open(t, p.a, k.ID)
		if !tokenWorks(t, p.b, token) {
			t.Fatal("refused on b before it expired")
		}
		p.clk.Add(2 * time.Hour)
		p.a.Sweep(ctx)
		acked := time.Now()
		refusedWithin(t, "expiry swept on a, token on b", acked, func() bool { return !tokenWorks(t, p.b, token) })
	})
}

func testKeyRevocationAcross(t *testing.T, p *pair) {
	ctx := t.Context()
	k, secret := p.key(t)
	_, token := p.open(t, p.a, k.ID)
	cred := sessiond.Credentials{APIKey: k.ID, Secret: secret}
	for range 2 { // warm b's key cache and session cache
		if _, err := p.b.Authenticate(ctx, cred); err != nil {
			t.Fatal(err)
		}
		if !tokenWorks(t, p.b, token) {
			t.Fatal("token refused on b before the revocation")
		}
	}
	if err := p.a.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	refusedWithin(t, "key revoked on a, its secret on b", acked, func() bool {
		_, err := p.b.Authenticate(ctx, cred)
		return sessiond.ErrorCode(err) == sessiond.EUNAUTHORIZED
	})
	refusedWithin(t, "key revoked on a, its session's token on b", acked, func() bool { return !tokenWorks(t, p.b, token) })
}

// testEventsAcross: a subscriber on b learns of what a did, each at least
// once: what session-end hooks and later metrics rely on.
func testEventsAcross(t *testing.T, p *pair) {
	ctx := t.Context()
	var (
		mu   sync.Mutex
		seen = map[sessiond.EventKind][]string{}
	)
	cancel := p.b.Events().Subscribe(func(evs []sessiond.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			id := e.SessionID
			if id == "" {
				id = e.APIKeyID
			}
			seen[e.Kind] = append(seen[e.Kind], id)
		}
	})
	defer cancel()
	k, _ := p.key(t)
	s1, _ := p.open(t, p.a, k.ID)
	s2, _ := p.open(t, p.a, k.ID)
	if _, err := p.a.StoreData(ctx, s1.ID, json.RawMessage(`2`)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.CloseSession(ctx, s1.ID, sessiond.ReasonForced); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.Delete(ctx, s2.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.a.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	want := map[sessiond.EventKind][]string{
		sessiond.EventKeyCreated: {k.ID},
		sessiond.EventOpened:     {s1.ID, s2.ID},
		sessiond.EventChanged:    {s1.ID},
		sessiond.EventClosed:     {s1.ID},
		sessiond.EventDeleted:    {s2.ID},
		sessiond.EventKeyRevoked: {k.ID},
	}
	eventually(t, "every event of a on b", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for kind, ids := range want {
			for _, id := range ids {
				if !slices.Contains(seen[kind], id) {
					return false
				}
			}
		}
		return true
	})
}

func testStatsAcross(t *testing.T, p *pair) {
	ctx := t.Context()
	sess, _ := p.open(t, p.a, "")
	p.a.RecordConnection(sess.ID, "/svc/", 3, 4, false)
	p.b.RecordConnection(sess.ID, "/svc/", 1, 1, true)
	if err := p.a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []*sessiond.Service{p.a, p.b} {
		got, err := svc.Connections(ctx, sess.ID)
		if err != nil || len(got) != 1 || got[0].Requests != 2 || got[0].Reads != 4 || got[0].Writes != 5 || got[0].Errors != 1 {
			t.Errorf("Connections = %+v, %v; want both instances' requests", got, err)
		}
	}
}

// testSweepBothAtOnce: both instances sweep the same dead sessions at once;
// each is closed once, by one of them.
func testSweepBothAtOnce(t *testing.T, p *pair) {
	ctx := t.Context()
	const n = 300
	for range n {
		p.open(t, p.a, "")
	}
	now := p.clk.Now().Add(2 * time.Hour)
	var (
		wg     sync.WaitGroup
		ga, gb []string
		ea, eb error
	)
	wg.Add(2)
	go func() { defer wg.Done(); ga, ea = p.sa.CloseExpired(ctx, now, time.Hour) }()
	go func() { defer wg.Done(); gb, eb = p.sb.CloseExpired(ctx, now, time.Hour) }()
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatalf("CloseExpired: %v, %v", ea, eb)
	}
	all := append(slices.Clone(ga), gb...)
	slices.Sort(all)
	if len(slices.Compact(all)) != len(ga)+len(gb) {
		t.Errorf("a session was closed by both instances (%d and %d closed)", len(ga), len(gb))
	}
	if len(ga)+len(gb) != n {
		t.Errorf("closed %d + %d, want %d in all", len(ga), len(gb), n)
	}
}
