package embedded

import (
	"slices"
	"testing"

	"sessiond"
)

// TestListUserCollidingHash checks that List of one user's sessions
// returns that user's only when another user's sessions share the hash of
// its user_id in the in-memory index (as two users' 64-bit hashes may):
// the walk goes by the hash, and the user_id is compared on the record.
func TestListUserCollidingHash(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	var alice []string
	for i := range 6 {
		sess := testSession(i)
		sess.UserID = "alice"
		if i%2 == 1 {
			sess.UserID = "mallory"
		} else {
			alice = append([]string{sess.ID}, alice...) // newest first
		}
		if _, err := s.Create(ctx, sess, 0); err != nil {
			t.Fatal(err)
		}
		if sess.UserID == "mallory" {
			// Make mallory's session collide with alice: index it under
			// alice's hash as well.
			it := itemOf(sess)
			s.mem.update(func(m *memIndex) { m.users.add(userHash("alice"), it.userEntry()) })
		}
	}
	for _, p := range []sessiond.Paging{{Take: 100, Total: true}, {Take: 2}, {Skip: 1, Take: 1, Total: true}} {
		page, err := s.List(ctx, sessiond.Filter{UserID: "alice"}, p)
		if err != nil {
			t.Fatal(err)
		}
		want := alice[min(p.Skip, len(alice)):min(p.Skip+p.Take, len(alice))]
		if got := sessionIDs(page.Data); !slices.Equal(got, want) {
			t.Errorf("paging %+v: %v, want alice's %v", p, got, want)
		}
		if p.Total && (page.Total == nil || *page.Total != int64(len(alice))) {
			t.Errorf("paging %+v: total %v, want %d", p, deref(page.Total), len(alice))
		}
	}
}
