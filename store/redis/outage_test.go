package redis_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// TestOutage stops a private server (appendonly yes, appendfsync always)
// under concurrent writers: every call answers EUNAVAILABLE within a
// bound while it is down, Ping fails, and once the server is back the same
// Store works again, its stream has told EventLost and then EventResumed,
// and every acknowledged write is there.
func TestOutage(t *testing.T) {
	srv := redistest.StartServer(t)
	const opTimeout = 2 * time.Second
	s := open(t, srv.URL(), redis.Options{OpTimeout: opTimeout, Origin: "outage", ListenPing: 500 * time.Millisecond})
	rec := record(t, s.Stream())

	var (
		down, stop atomic.Bool
		mu         sync.Mutex
		acked      []string
		wg         sync.WaitGroup
		downCalls  atomic.Int64
	)
	bound := opTimeout + time.Second
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id := s.NewSessionID("", fmt.Sprint("w", w))
				sess := &sessiond.Session{ID: id, UserID: fmt.Sprint("w", w), Active: true, OpenTime: time.Now().UTC(),
					RequestTime: time.Now().UTC(), TokenHash: []byte(id)}
				wasDown := down.Load()
				start := time.Now()
				_, err := s.Create(t.Context(), sess, 0)
				took := time.Since(start)
				if err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					continue
				}
				if took > bound {
					t.Errorf("Create failed after %v (> %v): %v", took, bound, err)
				}
				if code := sessiond.ErrorCode(err); code != sessiond.EUNAVAILABLE {
					t.Errorf("Create while the server stops: %v, want code %s", err, sessiond.EUNAVAILABLE)
				}
				if wasDown {
					downCalls.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	waitAcked := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := len(acked)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d writes acknowledged, want %d", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcked(20)

	srv.Stop()
	down.Store(true)
	rec.wait(t, "EventLost", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventLost, "") >= 0 })
	if err := s.Ping(t.Context()); sessiond.ErrorCode(err) != sessiond.EUNAVAILABLE {
		t.Errorf("Ping while down = %v, want code %s", err, sessiond.EUNAVAILABLE)
	}
	// Every kind of call answers, with the code, in bounded time.
	calls := map[string]func() error{
		"Get":            func() error { _, err := s.Get(t.Context(), "x"); return err },
		"GetByTokenHash": func() error { _, err := s.GetByTokenHash(t.Context(), []byte("x")); return err },
		"List":           func() error { _, err := s.List(t.Context(), sessiond.Filter{}, sessiond.Paging{Take: 10}); return err },
		"Update": func() error {
			_, err := s.Update(t.Context(), "x", func(*sessiond.Session) error { return nil })
			return err
		},
		"Touch":        func() error { return s.Touch(t.Context(), []sessiond.Touch{{ID: "x", Time: time.Now()}}) },
		"CloseExpired": func() error { _, err := s.CloseExpired(t.Context(), time.Now(), time.Minute); return err },
		"Purge":        func() error { _, err := s.Purge(t.Context(), time.Now()); return err },
		"UserSessions": func() error { _, err := s.UserSessions(t.Context(), "", "w0", 1); return err },
		"ListAPIKeys":  func() error { _, err := s.ListAPIKeys(t.Context()); return err },
		// A close is sent before Publish returns (opens go in the background).
		"Publish": func() error {
			return s.Stream().Publish(t.Context(), sessiond.Event{Kind: sessiond.EventClosed, SessionID: "during", Reason: sessiond.ReasonClosed})
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if took := time.Since(start); took > bound {
			t.Errorf("%s while down took %v (> %v)", name, took, bound)
		}
		if code := sessiond.ErrorCode(err); code != sessiond.EUNAVAILABLE {
			t.Errorf("%s while down = %v, want code %s", name, err, sessiond.EUNAVAILABLE)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); downCalls.Load() < 8; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("writers refused only %d calls while down", downCalls.Load())
		}
	}

	srv.Start()
	down.Store(false)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	waitAcked(before + 20)
	stop.Store(true)
	wg.Wait()

	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping after the restart = %v", err)
	}
	evs := rec.wait(t, "EventResumed", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventResumed, "") >= 0 })
	if lost, resumed := index(evs, 0, sessiond.EventLost, ""), index(evs, 0, sessiond.EventResumed, ""); lost > resumed {
		t.Errorf("stream told %s, want EventLost before EventResumed", show(evs))
	}
	for _, id := range acked {
		if _, err := s.Get(t.Context(), id); err != nil {
			t.Errorf("acknowledged session %s after the restart: %v", id, err)
		}
		if _, err := s.GetByTokenHash(t.Context(), []byte(id)); err != nil {
			t.Errorf("acknowledged session %s by its token after the restart: %v", id, err)
		}
	}
	t.Logf("%d writes acknowledged, %d refused while down", len(acked), downCalls.Load())
}

// A server that answers nothing (frozen, as across a partition) costs a
// call no more than the OpTimeout; the subscriptions find it by their
// ping, and the same Store works once it answers again.
func TestFrozenServer(t *testing.T) {
	srv := redistest.StartServer(t)
	const opTimeout = time.Second
	s := open(t, srv.URL(), redis.Options{OpTimeout: opTimeout, ListenPing: 200 * time.Millisecond})
	rec := record(t, s.Stream())
	kept := &sessiond.Session{ID: s.NewSessionID("", ""), Active: true, OpenTime: time.Now().UTC(), RequestTime: time.Now().UTC()}
	if _, err := s.Create(t.Context(), kept, 0); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			srv.Thaw()
		}
	}()
	for _, call := range []func() error{
		func() error { return s.Ping(t.Context()) },
		func() error { _, err := s.Get(t.Context(), kept.ID); return err },
		func() error { return s.Touch(t.Context(), []sessiond.Touch{{ID: kept.ID, Time: time.Now()}}) },
	} {
		start := time.Now()
		err := call()
		if took := time.Since(start); took > opTimeout+time.Second {
			t.Errorf("call on a frozen server took %v (> %v)", took, opTimeout+time.Second)
		}
		if code := sessiond.ErrorCode(err); code != sessiond.EUNAVAILABLE {
			t.Errorf("call on a frozen server = %v, want code %s", err, sessiond.EUNAVAILABLE)
		}
	}
	rec.wait(t, "EventLost", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventLost, "") >= 0 })
	srv.Thaw()
	thawed = true
	rec.wait(t, "EventResumed", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventResumed, "") >= 0 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Get(t.Context(), kept.ID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get after the thaw: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
