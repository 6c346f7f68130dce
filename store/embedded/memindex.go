package embedded

import (
	"hash/maphash"
	"math"
	"slices"
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
// users holds, by the hash of the user_id, the sessions that have one,
// each user's in List order (see userIndex). It replaced the user index
// keys pebble held up to format 3, which were half of the keys every
// Create inserted into pebble's memtable (see docs/design.md, "In memory").
//
// It also holds the 64-bit hash of every session id, so that Create's id
// check reads pebble only when the hash is taken, and maps the 64-bit hash
// of every token hash to the ids of the sessions with it, so that the token
// needs no index in pebble (see tokenCandidates). Both are complete: a hash
// that several sessions share is kept once per session.
type memIndex struct {
	mu    sync.RWMutex
	tree  *btree.BTreeG[item]
	users userIndex

	seed maphash.Seed
	// ids holds the hash of every session id; idsShared counts, for a
	// hash that several ids share, the sessions beyond the first.
	ids       map[uint64]struct{}
	idsShared map[uint64]int
	// tokens maps the hash of a token hash to the id of one session with
	// it; tokensMore holds the ids of the other sessions whose token hashes
	// share that hash (almost always none).
	tokens     map[uint64]string
	tokensMore map[uint64][]string
}

// stamp is an instant, exactly, in less room than a time.Time.
type stamp struct {
	sec  int64
	nsec int32
}

func stampOf(t time.Time) stamp { return stamp{t.Unix(), int32(t.Nanosecond())} }

// maxStamp is later than any instant.
var maxStamp = stamp{math.MaxInt64, math.MaxInt32}

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
	user   uint64 // userHash of the user_id; 0 for none
	open   stamp
	last   stamp // request_time while active, close_time after
	expire stamp
	active bool
}

// userSeed seeds userHash. The index is rebuilt at every start, so the
// seed need not last longer than the process.
var userSeed = maphash.MakeSeed()

// userHash returns the hash of a user_id in the index: never 0, which
// stands for none. userHashBytes is the same for a user_id in a record.
func userHash(user string) uint64 { return max(maphash.String(userSeed, user), 1) }

func userHashBytes(user []byte) uint64 { return max(maphash.Bytes(userSeed, user), 1) }

func (it item) userEntry() userEntry { return userEntry{open: it.open, id: it.id} }

// itemLess is List order.
func itemLess(a, b item) bool {
	if c := a.open.compare(b.open); c != 0 {
		return c > 0
	}
	return a.id < b.id
}

func itemOf(s *sessiond.Session) item {
	it := item{id: s.ID, open: stampOf(s.OpenTime), expire: stampOf(s.ExpireTime), active: s.Active}
	if s.UserID != "" {
		it.user = userHash(s.UserID)
	}
	if s.Active {
		it.last = stampOf(s.RequestTime)
	} else {
		it.last = stampOf(s.CloseTime)
	}
	return it
}

// itemOfRecord reads the item of session id from its record's fixed
// header and its first field (user_id), without decoding the rest.
func itemOfRecord(id string, v []byte) (item, bool) {
	if len(v) < offVar || v[0] != recordV1 {
		return item{}, false
	}
	r := fieldReader{b: v, off: offVar}
	start, end := r.next()
	if r.err != nil {
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
	it := itemOf(&s)
	if end > start {
		it.user = userHashBytes(v[start:end])
	}
	return it, true
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

func newMemIndex(seed maphash.Seed) *memIndex {
	return &memIndex{
		tree:       btree.NewG(btreeDegree, itemLess),
		users:      userIndex{},
		seed:       seed,
		ids:        map[uint64]struct{}{},
		idsShared:  map[uint64]int{},
		tokens:     map[uint64]string{},
		tokensMore: map[uint64][]string{},
	}
}

// loadMemIndex builds the index from every session record in db, hashing
// with seed.
func loadMemIndex(db *pebble.DB, seed maphash.Seed) (*memIndex, error) {
	m := newMemIndex(seed)
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
		m.add(it, token)
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

func (m *memIndex) idHash(id string) uint64 { return maphash.String(m.seed, id) }

func (m *memIndex) tokenHash(hash []byte) uint64 { return maphash.Bytes(m.seed, hash) }

// mayHaveID reports whether a session may have the id: false means none
// has it; true means one has an id with the same 64-bit hash.
func (m *memIndex) mayHaveID(id string) bool {
	h := m.idHash(id)
	m.mu.RLock()
	_, ok := m.ids[h]
	m.mu.RUnlock()
	return ok
}

// tokenCandidates returns the ids of the sessions whose token hashes have
// the 64-bit hash of hash: none when no session has hash, and otherwise
// first and, rarely, more (a copy). The caller compares each session's
// token hash.
func (m *memIndex) tokenCandidates(hash []byte) (first string, more []string) {
	h := m.tokenHash(hash)
	m.mu.RLock()
	first = m.tokens[h]
	if rest := m.tokensMore[h]; len(rest) > 0 {
		more = slices.Clone(rest)
	}
	m.mu.RUnlock()
	return first, more
}

// addID, removeID, addToken and removeToken keep ids and tokens, given
// the 64-bit hashes; the caller holds mu.
func (m *memIndex) addID(h uint64) {
	if _, ok := m.ids[h]; ok {
		m.idsShared[h]++
		return
	}
	m.ids[h] = struct{}{}
}

func (m *memIndex) removeID(h uint64) {
	switch n := m.idsShared[h]; n {
	case 0:
		delete(m.ids, h)
	case 1:
		delete(m.idsShared, h)
	default:
		m.idsShared[h] = n - 1
	}
}

func (m *memIndex) addToken(h uint64, id string) {
	if _, ok := m.tokens[h]; ok {
		m.tokensMore[h] = append(m.tokensMore[h], id)
		return
	}
	m.tokens[h] = id
}

func (m *memIndex) removeToken(h uint64, id string) {
	more := m.tokensMore[h]
	if m.tokens[h] == id {
		if len(more) == 0 {
			delete(m.tokens, h)
			return
		}
		m.tokens[h], more = more[len(more)-1], more[:len(more)-1]
	} else if i := slices.Index(more, id); i >= 0 {
		more = slices.Delete(more, i, i+1)
	}
	if len(more) == 0 {
		delete(m.tokensMore, h)
	} else {
		m.tokensMore[h] = more
	}
}

// add adds a new session with its token hash (which may be empty); the
// caller holds mu.
func (m *memIndex) add(it item, token []byte) {
	m.tree.ReplaceOrInsert(it)
	if it.user != 0 {
		m.users.add(it.user, it.userEntry())
		if it.active {
			m.users.addActive(it.user, 1)
		}
	}
	m.addID(m.idHash(it.id))
	if len(token) > 0 {
		m.addToken(m.tokenHash(token), it.id)
	}
}

// drop removes a session with its token hash (which may be empty); the
// caller holds mu.
func (m *memIndex) drop(it item, token []byte) {
	m.tree.Delete(it)
	if it.user != 0 {
		if it.active {
			m.users.addActive(it.user, -1)
		}
		m.users.remove(it.user, it.userEntry())
	}
	m.removeID(m.idHash(it.id))
	if len(token) > 0 {
		m.removeToken(m.tokenHash(token), it.id)
	}
}

// replace replaces old by next, a version of the same session; the caller
// holds mu.
func (m *memIndex) replace(old, next item) {
	if old.open != next.open {
		m.tree.Delete(old)
	}
	m.tree.ReplaceOrInsert(next)
	moved := old.user != next.user || old.open != next.open
	if old.user != 0 && old.active && (moved || !next.active) {
		m.users.addActive(old.user, -1)
	}
	if moved {
		if old.user != 0 {
			m.users.remove(old.user, old.userEntry())
		}
		if next.user != 0 {
			m.users.add(next.user, next.userEntry())
		}
	}
	if next.user != 0 && next.active && (moved || !old.active) {
		m.users.addActive(next.user, 1)
	}
}

// update runs fn under the lock.
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

// userSessions appends to dst, and returns, up to n sessions whose
// user_id has the hash of user, in List order, starting after the session
// at (open, id), or with an empty id with the newest opened at or before
// open. Another user's sessions may share the hash: the caller compares
// the user_id. It walks a user's sessions a page of these at a
// time, each under the read lock for a moment only, rather than holding it
// (or a snapshot, whose copies writers would pay for) while it reads the
// records.
func (m *memIndex) userSessions(dst []userEntry, user string, open stamp, id string, n int) []userEntry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.users.after(dst, userHash(user), userEntry{open: open, id: id}, n)
}
