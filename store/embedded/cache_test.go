package embedded

import (
	"hash/maphash"
	"reflect"
	"testing"
	"time"
)

// TestCacheSharedSlot puts the entry of one session in the slot of
// another id's hash, as a 64-bit hash collision would, and checks that the
// cache never answers for the other id with it, nor patches or drops it on
// the other id's behalf.
func TestCacheSharedSlot(t *testing.T) {
	c := newSessionCache(maphash.MakeSeed(), 100)
	a, b := testSession(1), testSession(2)
	sh, h := c.locate(b.ID)
	sh.m[h] = makeEntry(a.ID, encodeSession(nil, a)) // a, in b's slot

	if got, _ := c.get(b.ID); got != nil {
		t.Fatalf("get(%s) = session %s, want a miss", b.ID, got.ID)
	}
	touched := b.Clone()
	touched.RequestTime = touched.RequestTime.Add(time.Hour)
	c.replace(b.ID, makeEntry(b.ID, encodeSession(nil, touched)))
	c.drop(b.ID)
	rec, ok := recordOf(sh.m[h], a.ID)
	if !ok {
		t.Fatalf("the entry of %s was dropped or replaced on behalf of %s", a.ID, b.ID)
	}
	if got, err := decodeSession(a.ID, rec); err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("the entry of %s changed on behalf of %s: %+v, %v", a.ID, b.ID, got, err)
	}

	// A fill or set for b takes the slot over.
	_, gen := c.get(b.ID)
	c.fill(b.ID, encodeSession(nil, b), gen)
	if got, _ := c.get(b.ID); !reflect.DeepEqual(got, b) {
		t.Fatalf("after fill, get(%s) = %+v, want %+v", b.ID, got, b)
	}
}

// TestCacheTouchAndBound checks that a touch's new entry replaces a cached
// session's, leaving readers' copies alone, and that a full shard evicts
// rather than grows.
func TestCacheTouchAndBound(t *testing.T) {
	c := newSessionCache(maphash.MakeSeed(), cacheShards) // one entry per shard
	a := testSession(1)
	c.set(a.ID, makeEntry(a.ID, encodeSession(nil, a)))
	before, _ := c.get(a.ID)
	later := a.RequestTime.Add(time.Minute)
	touched := a.Clone()
	touched.RequestTime = later
	c.replace(a.ID, makeEntry(a.ID, encodeSession(nil, touched)))
	after, _ := c.get(a.ID)
	if !after.RequestTime.Equal(later) {
		t.Errorf("after touch, request_time = %v, want %v", after.RequestTime, later)
	}
	if !before.RequestTime.Equal(a.RequestTime) {
		t.Errorf("a copy read before the touch changed: %v", before.RequestTime)
	}
	for i := 2; i < 2000; i++ {
		s := testSession(i)
		c.set(s.ID, makeEntry(s.ID, encodeSession(nil, s)))
	}
	for i := range c.shards {
		if n := len(c.shards[i].m); n > 1 {
			t.Fatalf("shard %d holds %d entries, bound is 1", i, n)
		}
	}
}
