package embedded

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"testing"
)

// BenchmarkMemIndexAdd measures adding a new session (the newest) to an
// in-memory index holding 100,000 sessions of 1,000 users, as a Create
// does under its lock. Making the item costs one allocation (its id).
func BenchmarkMemIndexAdd(b *testing.B) {
	m := newMemIndex(maphash.MakeSeed())
	var users [1000]uint64
	for i := range users {
		users[i] = userHash(fmt.Sprintf("user-%d", i))
	}
	token := make([]byte, 32)
	n := 0
	add := func() {
		id := strconv.FormatUint(uint64(n)*0x9E3779B97F4A7C15, 16)
		copy(token, id)
		open := stamp{sec: 1_800_000_000 + int64(n/1000), nsec: int32(n%1000) * 1e6}
		m.add(item{id: id, user: users[n%len(users)], open: open, last: open, expire: open, active: true}, token)
		n++
	}
	for range 100_000 {
		add()
	}
	b.ReportAllocs()
	for b.Loop() {
		add()
	}
}
