package redis_test

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

var sweepSessions = flag.Int("sweep-sessions", 1_000_000, "sessions of TestSweepLeavesNothing (fewer for a quick run)")

// N sessions opened (with users, API keys, statistics and touches) and
// dead, closed by CloseExpired and deleted by Purge, leave no key of the
// store behind but the stream's logs: no index leaks.
//
// -sweep-sessions sets N: 1,000,000 by default, the size the engine is
// meant for (3–4 minutes, most of it in the server).
func TestSweepLeavesNothing(t *testing.T) {
	n := *sweepSessions
	url := redistest.BaseURL()
	prefix := redistest.Prefix(t, url)
	s := open(t, url, redis.Options{Prefix: prefix, IdleTimeout: time.Hour, Retention: time.Hour})
	ctx := t.Context()
	open := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Millisecond)
	start := time.Now()
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			var touches []sessiond.Touch
			var deltas []sessiond.ConnDelta
			for i := w; i < n; i += workers {
				user, key := "", fmt.Sprint("key-", i%3)
				if i%4 != 0 {
					user = fmt.Sprint("user-", i%1000)
				}
				id := s.NewSessionID(key, user)
				sess := &sessiond.Session{ID: id, UserID: user, APIKeyID: key, Active: true, OpenTime: open,
					RequestTime: open, Data: []byte(`{"i":1}`), TokenHash: []byte("tok-" + id)}
				if i%5 == 0 {
					sess.ExpireTime = open.Add(30 * time.Minute)
				}
				if _, err := s.Create(ctx, sess, 0); err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				touches = append(touches, sessiond.Touch{ID: id, Time: open.Add(time.Minute)})
				if i%7 == 0 {
					deltas = append(deltas, sessiond.ConnDelta{SessionID: id, Service: "/s/", Requests: 1, LastUsed: open})
				}
			}
			if err := s.Touch(ctx, touches); err != nil {
				t.Errorf("Touch: %v", err)
			}
			if err := s.AddConnStats(ctx, deltas); err != nil {
				t.Errorf("AddConnStats: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	page, err := s.List(ctx, sessiond.Filter{}, sessiond.Paging{Take: 1, Total: true})
	if err != nil || *page.Total != int64(n) {
		t.Fatalf("List total = %v, %v; want %d", page.Total, err, n)
	}
	t.Logf("%d sessions opened, touched and counted in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	closed, err := s.CloseExpired(ctx, time.Now(), time.Hour)
	if err != nil || len(closed) != n {
		t.Fatalf("CloseExpired closed %d, %v; want %d", len(closed), err, n)
	}
	t.Logf("CloseExpired: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	purged, err := s.Purge(ctx, time.Now())
	if err != nil || len(purged) != n {
		t.Fatalf("Purge deleted %d, %v; want %d", len(purged), err, n)
	}
	t.Logf("Purge: %v", time.Since(start).Round(time.Millisecond))
	keys, err := redistest.Keys(ctx, url, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, k := range keys {
		if !strings.Contains(k, "{ev") {
			left = append(left, k)
		}
	}
	if len(left) > 0 {
		t.Errorf("%d keys left after the sweep, for example %q", len(left), left[:min(len(left), 10)])
	}
}
