package redis_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// A master of a cluster with replicas stops: calls on its slots answer
// EUNAVAILABLE within the bound until its replica takes over, then the
// same Stores work again; the other instance's stream tells EventLost,
// subscribes again on the new master, catches up and tells EventResumed;
// sessions written before (and replicated) are there.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartClusterWithReplicas(t)
	url := c.URL()
	prefix := redistest.Prefix(t, url)
	const opTimeout = 2 * time.Second
	opts := redis.Options{Prefix: prefix, OpTimeout: opTimeout, ListenPing: 300 * time.Millisecond}
	opts.Origin = "a"
	a := open(t, url, opts)
	opts.Origin = "b"
	b := open(t, url, opts)
	rb := record(t, b.Stream())
	ctx := t.Context()

	var acked []string
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 300 {
		user := fmt.Sprint("user-", i%50)
		id := a.NewSessionID("", user)
		if _, err := a.Create(ctx, &sessiond.Session{ID: id, UserID: user, Active: true, OpenTime: now, RequestTime: now,
			TokenHash: []byte("tok-" + id)}, 0); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, id)
	}
	// Shard 0 of the stream lives on the master to stop.
	victim := c.MasterOf(t, prefix+"{ev0}:log")
	time.Sleep(500 * time.Millisecond) // replication is asynchronous
	c.StopNode(victim)
	stopped := time.Now()
	rb.wait(t, "EventLost", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventLost, "") >= 0 })

	// Until the replica takes over, every call answers, in bounded time.
	bound := opTimeout + time.Second
	for {
		start := time.Now()
		_, err := a.List(ctx, sessiond.Filter{}, sessiond.Paging{Take: 10, Total: true})
		if took := time.Since(start); took > bound {
			t.Errorf("List during the failover took %v (> %v)", took, bound)
		}
		if err == nil {
			break
		}
		if code := sessiond.ErrorCode(err); code != sessiond.EUNAVAILABLE {
			t.Fatalf("List during the failover = %v, want code %s", err, sessiond.EUNAVAILABLE)
		}
		if time.Since(stopped) > 60*time.Second {
			t.Fatalf("the cluster did not recover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("served again %v after the master stopped", time.Since(stopped).Round(time.Millisecond))
	rb.wait(t, "EventResumed", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventResumed, "") >= 0 })

	for _, id := range acked {
		if _, err := a.Get(ctx, id); err != nil {
			t.Errorf("session %s after the failover: %v", id, err)
		}
	}
	// Shard 0's channel works again, on the new master.
	id := "00" + strings.Repeat("ab", 15)
	if err := a.Stream().Publish(ctx, opened(id)); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "an event of shard 0 after the failover", func(evs []sessiond.Event) bool {
		return index(evs, 0, sessiond.EventOpened, id) >= 0
	})
	page, err := b.List(ctx, sessiond.Filter{}, sessiond.Paging{Take: 1, Total: true})
	if err != nil || *page.Total != int64(len(acked)) {
		t.Errorf("List on b after the failover: total %v, %v; want %d", page.Total, err, len(acked))
	}
}
