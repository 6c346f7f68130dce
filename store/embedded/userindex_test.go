package embedded

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestUserIndexModel drives a userIndex with random adds and removes for
// a few users, up past userListMax (so that sets move into a B-tree) and
// back down (so that they move back), and compares every user's walk from
// random pivots with a sorted model.
func TestUserIndexModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := userIndex{}
	model := map[uint64][]userEntry{} // each user's entries, any order
	entry := func() userEntry {
		// Few distinct instants, so that many entries share open and the
		// id decides their order.
		return userEntry{open: stamp{sec: rng.Int64N(400), nsec: int32(rng.IntN(3))}, id: fmt.Sprintf("%05x", rng.IntN(1<<20))}
	}
	check := func(step int) {
		t.Helper()
		for user, es := range model {
			want := slices.Clone(es)
			slices.SortFunc(want, entryCmp)
			if got := x.after(nil, user, userEntry{open: maxStamp}, len(want)+1); !slices.Equal(got, want) {
				t.Fatalf("step %d, user %d: all = %v, want %v", step, user, got, want)
			}
			for range 5 {
				pivot, n := entry(), 1+rng.IntN(20)
				if len(want) > 0 && rng.IntN(2) == 0 {
					pivot = want[rng.IntN(len(want))] // from an entry, as the walk resumes
				}
				var rest []userEntry
				for _, e := range want {
					if entryCmp(e, pivot) > 0 {
						rest = append(rest, e)
					}
				}
				rest = rest[:min(n, len(rest))]
				if got := x.after(nil, user, pivot, n); !slices.Equal(got, rest) {
					t.Fatalf("step %d, user %d: after %v (%d) = %v, want %v", step, user, pivot, n, got, rest)
				}
			}
		}
		for user, set := range x {
			if c := cap(set.list); c > 16 && len(set.list) <= c/4 {
				t.Fatalf("step %d, user %d: %d entries hold a slice of %d", step, user, len(set.list), c)
			}
		}
		if len(x) != len(model) {
			t.Fatalf("step %d: %d users indexed, want %d", step, len(x), len(model))
		}
	}
	// Users whose set was a B-tree, users whose set was a slice again after
	// that, and removes that left a user with no sessions.
	wasTree, back, emptied := map[uint64]bool{}, map[uint64]bool{}, 0
	for step := range 30000 {
		user := uint64(1 + rng.IntN(3))
		es := model[user]
		// Grow for the first half, shrink for the second.
		grow := step < 15000 && rng.IntN(10) < 8 || step >= 15000 && rng.IntN(10) < 1
		if grow || len(es) == 0 {
			e := entry()
			if rng.IntN(2) == 0 && len(es) > 0 {
				e.open = stamp{sec: 1000 + int64(step)} // newest: the append path
			}
			if rng.IntN(20) == 0 && len(es) > 0 {
				e = es[rng.IntN(len(es))] // again: nothing changes
				if rng.IntN(2) == 0 {
					e = slices.MaxFunc(es, revCmp) // the newest
				}
			}
			if !slices.Contains(es, e) {
				model[user] = append(es, e)
			}
			x.add(user, e)
		} else {
			i := rng.IntN(len(es))
			x.remove(user, es[i])
			model[user] = slices.Delete(es, i, i+1)
			if len(model[user]) == 0 {
				emptied++
				delete(model, user)
			}
		}
		if x[user].tree != nil {
			wasTree[user] = true
		} else if wasTree[user] && len(x[user].list) > 0 {
			back[user] = true
		}
		if step%500 == 0 || step > 29900 {
			check(step)
		}
	}
	check(-1)
	if emptied == 0 {
		t.Error("no user was left with no sessions")
	}
	if len(back) == 0 {
		t.Errorf("no set went into a B-tree and back to a slice (%d went into one)", len(wasTree))
	}
}
