package embedded

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/btree"

	"sessiond"
)

// memIndex holds, for every session, what List needs to walk all sessions
// in order and what the sweeps need to find dead and old sessions, in a
// B-tree ordered as List orders: newest open_time first, then by id. It is
// not persisted: Open rebuilds it with one scan of the session records,
// so that a Create writes no key for it.
//
// Writers change it after their batch has committed, under the lock of
// the session, so it always matches the records once every write has
// returned. Readers walk a copy-on-write snapshot (btree Clone costs O(1))
// and so never hold writers up.
//
// It also maps a 64-bit hash of each token hash to its session id, so that
// GetByTokenHash is one pebble lookup instead of two and Create's token
// check rarely needs one (see tokenRef).
type memIndex struct {
	mu   sync.RWMutex
	tree *btree.BTreeG[item]

	seed   maphash.Seed
	tokens map[uint64]string // "" when several sessions share the hash
	shared map[uint64]int    // how many more sessions share a hash in tokens
}

// stamp is an instant, exactly, in less room than a time.Time.
type stamp struct {
	sec  int64
	nsec int32
}

func stampOf(t time.Time) stamp { return stamp{t.Unix(), int32(t.Nanosecond())} }

func (a stamp) time() time.Time { return time.Unix(a.sec, int64(a.nsec)).UTC() }

func (a stamp) compare(b stamp) int {
	switch {
	case a.sec < b.sec:
		return -1
	case a.sec > b.sec:
		return 1
	case a.nsec < b.nsec:
		return -1
	case a.nsec > b.nsec:
		return 1
	}
	return 0
}

// item is one session in memIndex: about 100 bytes with its id.
type item struct {
	id     string
	open   stamp
	last   stamp // request_time while active, close_time after
	expire stamp
	active bool
}

// itemLess is List order.
func itemLess(a, b item) bool {
	if c := a.open.compare(b.open); c != 0 {
		return c > 0
	}
	return a.id < b.id
}

func itemOf(s *sessiond.Session) item {
	it := item{id: s.ID, open: stampOf(s.OpenTime), expire: stampOf(s.ExpireTime), active: s.Active}
	if s.Active {
		it.last = stampOf(s.RequestTime)
	} else {
		it.last = stampOf(s.CloseTime)
	}
	return it
}

// itemOfRecord reads the item of session id from its record's fixed
// header, without decoding the rest.
func itemOfRecord(id string, v []byte) (item, bool) {
	if len(v) < offVar || v[0] != recordV1 {
		return item{}, false
	}
	s := sessiond.Session{
		ID:          id,
		Active:      v[1]&flagActive != 0,
		OpenTime:    getTime(v[offOpen:]),
		RequestTime: getTime(v[offRequest:]),
		CloseTime:   getTime(v[offClose:]),
		ExpireTime:  getTime(v[offExpire:]),
	}
	return itemOf(&s), true
}

// dead reports whether the item is an active session dead at now for the
// idle timeout, by sessiond.Session.Alive.
func (it *item) dead(now time.Time, idle time.Duration) bool {
	if !it.active {
		return false
	}
	s := sessiond.Session{Active: true, RequestTime: it.last.time(), ExpireTime: it.expire.time()}
	return !s.Alive(now, idle)
}

const btreeDegree = 32

func newMemIndex() *memIndex {
	return &memIndex{
		tree:   btree.NewG(btreeDegree, itemLess),
		seed:   maphash.MakeSeed(),
		tokens: map[uint64]string{},
		shared: map[uint64]int{},
	}
}

// loadMemIndex builds the index from every session record in db.
func loadMemIndex(db *pebble.DB) (*memIndex, error) {
	m := newMemIndex()
	iter, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindSession}, UpperBound: []byte{kindSession + 1}})
	if err != nil {
		return nil, err
	}
	for iter.First(); iter.Valid(); iter.Next() {
		id := string(iter.Key()[1:])
		v, err := iter.ValueAndErr()
		if err != nil {
			iter.Close()
			return nil, err
		}
		it, ok := itemOfRecord(id, v)
		token, tok := recordTokenHash(v)
		if !ok || !tok {
			iter.Close()
			_, err := decodeSession(id, v) // names the problem
			return nil, err
		}
		m.tree.ReplaceOrInsert(it)
		if len(token) > 0 {
			m.addToken(token, it.id)
		}
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// recordTokenHash returns the token hash field of record v, which aliases v.
func recordTokenHash(v []byte) ([]byte, bool) {
	if len(v) < offVar {
		return nil, false
	}
	r := fieldReader{b: v, off: offVar}
	for range 6 { // the strings before it
		r.next()
	}
	start, end := r.next()
	return v[start:end], r.err == nil
}

// tokenRef is what the index knows of a token hash: present is false when
// no session has it; otherwise id is the one session whose token hash has
// the same 64-bit hash, or "" when several do (then pebble's token index
// answers).
func (m *memIndex) tokenRef(hash []byte) (id string, present bool) {
	h := maphash.Bytes(m.seed, hash)
	m.mu.RLock()
	id, present = m.tokens[h]
	m.mu.RUnlock()
	return id, present
}

// addToken and removeToken keep tokens; the caller holds mu.
func (m *memIndex) addToken(hash []byte, id string) {
	h := maphash.Bytes(m.seed, hash)
	if _, ok := m.tokens[h]; ok {
		m.tokens[h] = ""
		m.shared[h]++
		return
	}
	m.tokens[h] = id
}

func (m *memIndex) removeToken(hash []byte) {
	h := maphash.Bytes(m.seed, hash)
	switch n := m.shared[h]; {
	case n == 0:
		delete(m.tokens, h)
	case n == 1:
		delete(m.shared, h) // one session is left, but which is unknown: tokens keeps ""
	default:
		m.shared[h] = n - 1
	}
}

// create adds a new session with the token hash (which may be empty).
func (m *memIndex) create(it item, token []byte) {
	m.mu.Lock()
	m.tree.ReplaceOrInsert(it)
	if len(token) > 0 {
		m.addToken(token, it.id)
	}
	m.mu.Unlock()
}

// put replaces old by next, a version of the same session.
func (m *memIndex) put(old, next item) {
	m.mu.Lock()
	if old.open != next.open {
		m.tree.Delete(old)
	}
	m.tree.ReplaceOrInsert(next)
	m.mu.Unlock()
}

// remove deletes a session with its token hash (which may be empty).
func (m *memIndex) remove(it item, token []byte) {
	m.mu.Lock()
	m.tree.Delete(it)
	if len(token) > 0 {
		m.removeToken(token)
	}
	m.mu.Unlock()
}

// update runs fn under the lock, for changes of many items.
func (m *memIndex) update(fn func(m *memIndex)) {
	m.mu.Lock()
	fn(m)
	m.mu.Unlock()
}

// snapshot returns a copy of the tree that later writes do not change.
func (m *memIndex) snapshot() *btree.BTreeG[item] {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tree.Clone()
}
