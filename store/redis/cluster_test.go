package redis_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/clock"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// The suite on a private three-master cluster: no operation of the
// contract crosses slots (a CROSSSLOT error would fail it).
func TestClusterConformance(t *testing.T) {
	c := redistest.StartCluster(t)
	conformance(t, c.URL())
}

// Sessions of many users, and of none, spread over every master: no
// master holds most of them, and the stream's logs spread too.
func TestClusterSpread(t *testing.T) {
	c := redistest.StartCluster(t)
	prefix := redistest.Prefix(t, c.URL())
	s := open(t, c.URL(), redis.Options{Prefix: prefix})
	svc := sessiond.NewService(s, clock.NewFake(time.Now()), sessiond.Config{}, nil)
	t.Cleanup(func() { svc.Stop() })
	ctx := t.Context()
	const n = 600
	for i := range n {
		user := ""
		if i%3 != 0 {
			user = fmt.Sprintf("user-%d", i%200)
		}
		if _, _, err := svc.Open(ctx, sessiond.OpenRequest{UserID: user}); err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	counts, err := redistest.CountKeys(ctx, c.URL(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	t.Logf("keys per master: %v", counts)
	if len(counts) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(counts))
	}
	for addr, k := range counts {
		if k < total/6 || k > total/2 {
			t.Errorf("master %s holds %d of %d keys: not spread", addr, k, total)
		}
	}
	// Every user's sessions are in one group: a user's listing reads one
	// set.
	page, err := s.List(ctx, sessiond.Filter{UserID: "user-1"}, sessiond.Paging{Take: 100, Total: true})
	if err != nil || *page.Total != 2 {
		t.Fatalf("List(user-1) = %+v, %v; want 2", page, err)
	}
	groups := map[string]bool{}
	for _, sess := range page.Data {
		groups[sess.ID[:2]] = true
	}
	if len(groups) != 1 {
		t.Errorf("user-1's sessions in groups %v, want one", groups)
	}
	keys, err := redistest.Keys(ctx, c.URL(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.Contains(k, "{") {
			t.Errorf("key %s has no hash tag", k)
		}
	}

}

// A resharding moves the slot of a stream shard and of a session group to
// another master: the sessions are served from there (the client follows
// MOVED), and the instance subscribed to that shard, unsubscribed by the
// server, tells EventLost, subscribes again on the new master, catches up
// and tells EventResumed.
func TestClusterResharding(t *testing.T) {
	c := redistest.StartCluster(t)
	url := c.URL()
	prefix := redistest.Prefix(t, url)
	opts := redis.Options{Prefix: prefix, OpTimeout: 2 * time.Second}
	opts.Origin = "a"
	a := open(t, url, opts)
	opts.Origin = "b"
	b := open(t, url, opts)
	rb := record(t, b.Stream())
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := "00" + strings.Repeat("cd", 15) // group 00, stream shard 0
	sess := &sessiond.Session{ID: id, UserID: "u", Active: true, OpenTime: now, RequestTime: now, TokenHash: []byte("tok-" + id)}
	if _, err := a.Create(ctx, sess, 0); err != nil {
		t.Fatal(err)
	}
	from := c.MasterOf(t, prefix+"{ev0}:log")
	to := c.Ports[0]
	if to == from {
		to = c.Ports[1]
	}
	c.MoveSlot(t, prefix+"{ev0}:log", to)
	c.MoveSlot(t, prefix+"{00}:order", to)
	rb.wait(t, "EventLost", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventLost, "") >= 0 })
	rb.wait(t, "EventResumed", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventResumed, "") >= 0 })
	if got, err := b.GetByTokenHash(ctx, sess.TokenHash); err != nil || got.ID != id {
		t.Fatalf("GetByTokenHash after the move: %v, %v", got, err)
	}
	if _, err := a.Update(ctx, id, func(s *sessiond.Session) error { s.Data = []byte(`1`); return nil }); err != nil {
		t.Fatalf("Update after the move: %v", err)
	}
	if err := a.Stream().Publish(ctx, opened(id)); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "an event of the moved shard", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, id) >= 0 })
	page, err := b.List(ctx, sessiond.Filter{UserID: "u"}, sessiond.Paging{Take: 10})
	if err != nil || len(page.Data) != 1 {
		t.Errorf("List after the move: %v, %v", page, err)
	}
}
