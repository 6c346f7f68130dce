package embedded

import (
	"encoding/binary"
	"hash/maphash"
	"sync"

	"sessiond"
)

// sessionCache keeps the records of recently read or written sessions in
// memory, so that the reads every request makes (get by id, token lookups)
// cost a map lookup and a decode instead of a pebble read. It is bounded: a
// full shard evicts an arbitrary entry.
//
// An entry is one byte slice holding the session's id and its record (see
// codec.go), keyed by the 64-bit hash of the id. With a million sessions
// cached, that is a million pointer-free objects for the garbage collector
// to mark, where decoded sessions were some ten objects each, full of
// pointers; the collector's work over the cache was most of what a large
// store cost per request. Two ids with one hash share a slot: the entry's
// own id tells them apart, and the loser is simply not cached.
//
// It never serves a stale session:
//   - writers update or drop an entry after their commit, while they still
//     hold the session's stripe lock, so entries follow commit order;
//   - a reader that missed fills the entry only if no writer touched the
//     shard (its generation) between the reader's miss and its fill, so a
//     value read from pebble before a concurrent write cannot overwrite
//     that write.
//
// Entries are never modified once in the map (a touch replaces its entry
// with a patched copy), so readers use them outside the lock.
type sessionCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

const cacheShards = 64

type cacheShard struct {
	mu  sync.RWMutex
	gen uint64
	m   map[uint64][]byte // hash of the id -> entry (see makeEntry)
	_   [32]byte          // keep shards' locks off one cache line
}

func newSessionCache(seed maphash.Seed, entries int) *sessionCache {
	if entries <= 0 {
		return nil
	}
	c := &sessionCache{seed: seed, perShard: max(entries/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64][]byte)
	}
	return c
}

// makeEntry returns a new entry for the session id with record rec:
// uvarint len(id), id, rec.
func makeEntry(id string, rec []byte) []byte {
	return append(entryPrefix(id, len(rec)), rec...)
}

// entryPrefix returns the start of an entry for the session id, with room
// for a record of n bytes after it.
func entryPrefix(id string, n int) []byte {
	e := make([]byte, 0, binary.MaxVarintLen64+len(id)+n)
	e = binary.AppendUvarint(e, uint64(len(id)))
	return append(e, id...)
}

// splitEntry returns the id and the record of an entry.
func splitEntry(e []byte) (id, rec []byte) {
	n, w := binary.Uvarint(e)
	return e[w : w+int(n)], e[w+int(n):]
}

// recordOf returns the record in entry e if e is the entry of id.
func recordOf(e []byte, id string) ([]byte, bool) {
	if e == nil {
		return nil, false
	}
	eid, rec := splitEntry(e)
	return rec, string(eid) == id
}

func (c *sessionCache) locate(id string) (*cacheShard, uint64) {
	h := maphash.String(c.seed, id)
	return &c.shards[h%cacheShards], h
}

// lookup returns the cached record of session id, or nil, and the shard's
// generation. The record must not be modified.
func (c *sessionCache) lookup(id string) ([]byte, uint64) {
	sh, h := c.locate(id)
	sh.mu.RLock()
	e, gen := sh.m[h], sh.gen
	sh.mu.RUnlock()
	if rec, ok := recordOf(e, id); ok {
		return rec, gen
	}
	return nil, gen
}

// get returns the cached session, decoded afresh (the caller owns it), or
// nil and the shard's generation for a later fill.
func (c *sessionCache) get(id string) (*sessiond.Session, uint64) {
	if c == nil {
		return nil, 0
	}
	rec, gen := c.lookup(id)
	if rec != nil {
		if sess, err := decodeSession(id, rec); err == nil {
			return sess, gen
		}
	}
	return nil, gen
}

// record returns the cached record of session id, or nil. The record must
// not be modified.
func (c *sessionCache) record(id string) []byte {
	if c == nil {
		return nil
	}
	rec, _ := c.lookup(id)
	return rec
}

// fill caches the record rec of session id (read from pebble after get
// returned gen; rec is copied) unless a writer changed the shard since.
func (c *sessionCache) fill(id string, rec []byte, gen uint64) {
	if c == nil {
		return
	}
	e := makeEntry(id, rec)
	sh, h := c.locate(id)
	sh.mu.Lock()
	if sh.gen == gen {
		sh.insert(h, e, c.perShard)
	}
	sh.mu.Unlock()
}

// set caches the entry e (which it keeps) of session id, whose record a
// writer just committed.
func (c *sessionCache) set(id string, e []byte) {
	if c == nil {
		return
	}
	sh, h := c.writing(id)
	sh.insert(h, e, c.perShard)
	sh.mu.Unlock()
}

// replace swaps in the entry e (which it keeps) of session id, whose
// record a writer just patched (Touch), if the cache holds the session:
// the sessions touched are the ones in use, and dropping them every flush
// would cost each a pebble read on its next request.
func (c *sessionCache) replace(id string, e []byte) {
	if c == nil {
		return
	}
	sh, h := c.writing(id)
	if _, ok := recordOf(sh.m[h], id); ok {
		sh.m[h] = e
	}
	sh.mu.Unlock()
}

// drop forgets a session a writer just changed or deleted.
func (c *sessionCache) drop(id string) {
	if c == nil {
		return
	}
	sh, h := c.writing(id)
	if _, ok := recordOf(sh.m[h], id); ok {
		delete(sh.m, h)
	}
	sh.mu.Unlock()
}

// writing locks the shard of session id for a writer's change and
// advances its generation, so that a fill of a record read from pebble
// before the change is refused; the caller unlocks the shard.
func (c *sessionCache) writing(id string) (*cacheShard, uint64) {
	sh, h := c.locate(id)
	sh.mu.Lock()
	sh.gen++
	return sh, h
}

func (sh *cacheShard) insert(h uint64, e []byte, limit int) {
	if _, ok := sh.m[h]; !ok && len(sh.m) >= limit {
		for victim := range sh.m { // map order: an arbitrary entry
			delete(sh.m, victim)
			break
		}
	}
	sh.m[h] = e
}

// entries calls fn with the id and record of every cached session (for
// consistency checks), and with whether the entry sits under its id's hash.
func (c *sessionCache) entries(fn func(id string, rec []byte, placed bool)) {
	if c == nil {
		return
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for h, e := range sh.m {
			id, rec := splitEntry(e)
			fn(string(id), rec, maphash.Bytes(c.seed, id) == h)
		}
		sh.mu.RUnlock()
	}
}
