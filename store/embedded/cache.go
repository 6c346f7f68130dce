package embedded

import (
	"hash/maphash"
	"sync"
	"time"

	"sessiond"
)

// sessionCache keeps recently read or written sessions decoded in memory,
// so that the reads every request makes (get by id, token lookups) cost a
// map lookup instead of a pebble read and a decode. It is bounded: a full
// shard evicts an arbitrary entry.
//
// It never serves a stale session:
//   - writers update or drop an entry after their commit, while they still
//     hold the session's stripe lock, so entries follow commit order;
//   - a reader that missed fills the entry only if no writer touched the
//     shard (its generation) between the reader's miss and its fill, so a
//     value read from pebble before a concurrent write cannot overwrite
//     that write.
//
// Cached sessions are never modified; readers get clones.
type sessionCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

const cacheShards = 64

type cacheShard struct {
	mu  sync.RWMutex
	gen uint64
	m   map[string]*sessiond.Session
	_   [32]byte // keep shards' locks off one cache line
}

func newSessionCache(seed maphash.Seed, entries int) *sessionCache {
	if entries <= 0 {
		return nil
	}
	c := &sessionCache{seed: seed, perShard: max(entries/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*sessiond.Session)
	}
	return c
}

func (c *sessionCache) shard(id string) *cacheShard {
	return &c.shards[maphash.String(c.seed, id)%cacheShards]
}

// get returns a clone of the cached session, or nil and the shard's
// generation for a later fill.
func (c *sessionCache) get(id string) (*sessiond.Session, uint64) {
	if c == nil {
		return nil, 0
	}
	sh := c.shard(id)
	sh.mu.RLock()
	sess, gen := sh.m[id], sh.gen
	sh.mu.RUnlock()
	if sess != nil {
		return sess.Clone(), gen
	}
	return nil, gen
}

// fill caches sess (read from pebble after get returned gen) unless a
// writer changed the shard since.
func (c *sessionCache) fill(sess *sessiond.Session, gen uint64) {
	if c == nil {
		return
	}
	sh := c.shard(sess.ID)
	sh.mu.Lock()
	if sh.gen == gen {
		sh.insert(sess.Clone(), c.perShard)
	}
	sh.mu.Unlock()
}

// set caches the session a writer just committed.
func (c *sessionCache) set(sess *sessiond.Session) {
	if c == nil {
		return
	}
	sh := c.shard(sess.ID)
	sh.mu.Lock()
	sh.gen++
	sh.insert(sess.Clone(), c.perShard)
	sh.mu.Unlock()
}

// touch sets the request time of a cached session that a writer just
// patched in its record (Touch), keeping the entry rather than dropping it:
// the sessions touched are the ones in use, and dropping them every flush
// would cost each a pebble read on its next request. Entries are never
// modified, so the new entry may share the old one's slices.
func (c *sessionCache) touch(id string, requestTime time.Time) {
	if c == nil {
		return
	}
	sh := c.shard(id)
	sh.mu.Lock()
	sh.gen++
	if cur := sh.m[id]; cur != nil {
		next := *cur
		next.RequestTime = requestTime
		sh.m[id] = &next
	}
	sh.mu.Unlock()
}

// drop forgets a session a writer just changed or deleted.
func (c *sessionCache) drop(id string) {
	if c == nil {
		return
	}
	sh := c.shard(id)
	sh.mu.Lock()
	sh.gen++
	delete(sh.m, id)
	sh.mu.Unlock()
}

func (sh *cacheShard) insert(sess *sessiond.Session, limit int) {
	if _, ok := sh.m[sess.ID]; !ok && len(sh.m) >= limit {
		for victim := range sh.m { // map order: an arbitrary entry
			delete(sh.m, victim)
			break
		}
	}
	sh.m[sess.ID] = sess
}

// entries calls fn for every cached session (for consistency checks).
func (c *sessionCache) entries(fn func(*sessiond.Session)) {
	if c == nil {
		return
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for _, s := range sh.m {
			fn(s)
		}
		sh.mu.RUnlock()
	}
}
