package embedded

import (
	"slices"
	"strings"

	"github.com/google/btree"
)

// userIndex holds the sessions that have a user_id, by the 64-bit hash of
// the user_id (see userHash), each user's in List order: newest open_time
// first, then by id. Sessions of two users whose hashes collide share a
// set; List compares each session's user_id (see matcher).
//
// It is a map of small sets rather than one B-tree ordered by user: a
// Create then costs a map lookup and, for the user's newest session, an
// append, where the shared tree cost a descent through nodes that other
// users' inserts had pushed out of the CPU's caches (measured: 4% of a
// durable open's CPU under the load program, for 1,000 users).
type userIndex map[uint64]userSet

// userEntry is one session in a userSet: 32 bytes, the id shared with the
// session's item.
type userEntry struct {
	open stamp
	id   string
}

// userSet holds the sessions of one user hash. Up to userListMax of them
// are a slice in reverse List order, so that a new session, the user's
// newest, is appended; past that a B-tree takes over, so that removing
// one session of a user with very many does not move all the others.
type userSet struct {
	list []userEntry              // in reverse List order; nil once tree is set
	tree *btree.BTreeG[userEntry] // in List order
	// active counts the active sessions of the set, so that the per-user
	// limit (Store.UserSessions) needs no walk for a user below it.
	active int
}

// userListMax is the most sessions a userSet holds in its slice, where
// removing the oldest moves 32 KiB (0.76 µs measured, with the append
// that follows; about what a B-tree's removal costs); the set goes back
// to a slice when its tree falls to a quarter of that.
const userListMax = 1024

// entryCmp is List order: negative when a comes first.
func entryCmp(a, b userEntry) int {
	if c := a.open.compare(b.open); c != 0 {
		return -c
	}
	return strings.Compare(a.id, b.id)
}

func entryLess(a, b userEntry) bool { return entryCmp(a, b) < 0 }

// revCmp is the order of userSet.list, the reverse of List order.
func revCmp(a, b userEntry) int { return entryCmp(b, a) }

func (x userIndex) add(user uint64, e userEntry) {
	s := x[user]
	switch {
	case s.tree != nil:
		s.tree.ReplaceOrInsert(e)
	case len(s.list) == 0 || revCmp(s.list[len(s.list)-1], e) < 0:
		s.list = append(s.list, e) // the user's newest: the common case
	default:
		i, found := slices.BinarySearchFunc(s.list, e, revCmp)
		if found {
			return
		}
		s.list = slices.Insert(s.list, i, e)
	}
	if len(s.list) > userListMax {
		s.tree = btree.NewG(btreeDegree, entryLess)
		for _, e := range s.list {
			s.tree.ReplaceOrInsert(e)
		}
		s.list = nil
	}
	x[user] = s
}

func (x userIndex) remove(user uint64, e userEntry) {
	s, ok := x[user]
	if !ok {
		return
	}
	if s.tree != nil {
		s.tree.Delete(e)
		if s.tree.Len() <= userListMax/4 {
			s.list = make([]userEntry, 0, s.tree.Len())
			s.tree.Descend(func(e userEntry) bool {
				s.list = append(s.list, e)
				return true
			})
			s.tree = nil
		}
	} else if i, found := slices.BinarySearchFunc(s.list, e, revCmp); found {
		s.list = slices.Delete(s.list, i, i+1)
		if c := cap(s.list); c > 16 && len(s.list) <= c/4 {
			s.list = slices.Clone(s.list) // give back what a user no longer needs
		}
	}
	if len(s.list) == 0 && s.tree == nil {
		delete(x, user)
		return
	}
	x[user] = s
}

// after appends to dst, and returns, up to n of the user's sessions that
// come after pivot in List order, in that order.
func (x userIndex) after(dst []userEntry, user uint64, pivot userEntry, n int) []userEntry {
	s := x[user]
	if s.tree != nil {
		s.tree.AscendGreaterOrEqual(pivot, func(e userEntry) bool {
			if e != pivot {
				dst = append(dst, e)
			}
			return len(dst) < n
		})
		return dst
	}
	// The entries after pivot in List order are the list's first k.
	k, _ := slices.BinarySearchFunc(s.list, pivot, revCmp)
	for i := k - 1; i >= 0 && len(dst) < n; i-- {
		dst = append(dst, s.list[i])
	}
	return dst
}

// activeCount returns how many active sessions the user hash has, those
// of other users sharing the hash (and of every API key) included.
func (x userIndex) activeCount(user uint64) int { return x[user].active }

// addActive adds delta to the active count of a user hash that has a set.
func (x userIndex) addActive(user uint64, delta int) {
	if s, ok := x[user]; ok {
		s.active += delta
		x[user] = s
	}
}

// each1 calls fn with every entry of one user hash.
func (x userIndex) each1(user uint64, fn func(e userEntry)) {
	s := x[user]
	if s.tree != nil {
		s.tree.Ascend(func(e userEntry) bool {
			fn(e)
			return true
		})
	}
	for _, e := range s.list {
		fn(e)
	}
}

// each calls fn with every entry, user by user (for checks).
func (x userIndex) each(fn func(user uint64, e userEntry)) {
	for user, s := range x {
		if s.tree != nil {
			s.tree.Ascend(func(e userEntry) bool {
				fn(user, e)
				return true
			})
		}
		for _, e := range s.list {
			fn(user, e)
		}
	}
}
