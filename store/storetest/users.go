package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessiond"
)

// testUserSessions checks UserSessions: only active sessions of exactly
// that user_id and API key count, dead-but-unswept ones included; fewer
// than min gives none; closing, deleting and purging take a session out.
func testUserSessions(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	mk := func(id, user, key string, open time.Time) *sessiond.Session {
		sess := active(id, open)
		sess.UserID, sess.APIKeyID = user, key
		return sess
	}
	// u1/key-1: three active (one long dead by its expire time), one closed.
	a := mk("a", "u1", "key-1", at(0))
	b := mk("b", "u1", "key-1", at(time.Minute))
	b.RequestTime = at(5 * time.Minute)
	c := mk("c", "u1", "key-1", at(2*time.Minute))
	c.ExpireTime = at(3 * time.Minute)
	d := mk("d", "u1", "key-1", at(3*time.Minute))
	sessiond.ApplyClose(d, at(4*time.Minute), sessiond.ReasonClosed)
	mustCreate(t, s, a, b, c, d,
		mk("e", "u1", "key-2", at(0)), // another key
		mk("f", "u1", "", at(0)),      // no key
		mk("g", "u10", "key-1", at(0)),
		mk("h", "U1", "key-1", at(0)),
		mk("i", "", "key-1", at(0)),
	)

	get := func(key, user string, min int) []sessiond.UserSession {
		t.Helper()
		got, err := s.UserSessions(ctx, key, user, min)
		if err != nil {
			t.Fatalf("UserSessions(%q, %q, %d): %v", key, user, min, err)
		}
		slices.SortFunc(got, func(x, y sessiond.UserSession) int { return compareStrings(x.ID, y.ID) })
		return got
	}
	for _, min := range []int{0, 1, 3} {
		got := get("key-1", "u1", min)
		want := []sessiond.UserSession{
			{ID: "a", OpenTime: at(0), RequestTime: at(0)},
			{ID: "b", OpenTime: at(time.Minute), RequestTime: at(5 * time.Minute)},
			{ID: "c", OpenTime: at(2 * time.Minute), RequestTime: at(2 * time.Minute), ExpireTime: at(3 * time.Minute)},
		}
		if !sameUserSessions(got, want) {
			t.Errorf("min %d: got %v, want %v", min, got, want)
		}
	}
	if got := get("key-1", "u1", 4); len(got) != 0 {
		t.Errorf("min 4 with 3 active: got %v, want none", got)
	}
	if got := get("key-2", "u1", 1); len(got) != 1 || got[0].ID != "e" {
		t.Errorf("key-2: got %v, want e", got)
	}
	if got := get("", "u1", 1); len(got) != 1 || got[0].ID != "f" {
		t.Errorf("no key: got %v, want f", got)
	}
	if got := get("key-3", "u1", 1); len(got) != 0 {
		t.Errorf("unknown key: got %v, want none", got)
	}
	if got := get("key-1", "nobody", 1); len(got) != 0 {
		t.Errorf("unknown user: got %v, want none", got)
	}

	// Closing, deleting and purging take sessions out.
	if _, err := s.Update(ctx, "a", func(sess *sessiond.Session) error {
		sessiond.ApplyClose(sess, at(6*time.Minute), sessiond.ReasonEvicted)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := get("key-1", "u1", 1); len(got) != 1 || got[0].ID != "c" {
		t.Errorf("after closing a and deleting b: got %v, want c", got)
	}
	if _, err := s.CloseExpired(ctx, at(time.Hour), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Purge(ctx, at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := get("key-1", "u1", 0); len(got) != 0 {
		t.Errorf("after the sweep: got %v, want none", got)
	}

	// Many sessions of one user (past any in-memory list size).
	const n = 1100
	for i := range n {
		mustCreate(t, s, mk(fmt.Sprintf("m%04d", i), "many", "key-1", at(time.Duration(i)*time.Millisecond)))
	}
	if got := get("key-1", "many", n); len(got) != n {
		t.Errorf("many: got %d sessions, want %d", len(got), n)
	}
	if got := get("key-1", "many", n+1); len(got) != 0 {
		t.Errorf("many, min n+1: got %d sessions, want none", len(got))
	}
}

func sameUserSessions(got, want []sessiond.UserSession) bool {
	return slices.EqualFunc(got, want, func(a, b sessiond.UserSession) bool {
		return a.ID == b.ID && a.OpenTime.Equal(b.OpenTime) && a.RequestTime.Equal(b.RequestTime) && a.ExpireTime.Equal(b.ExpireTime)
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// testCreateCrowded checks Create's answer for the per-user limit. Once
// the user holds userMin active sessions under the key, the new one
// included, it is never false; a Create without a user or without userMin
// is never crowded; the first session of a new user is not crowded (the
// common case costs no second read); and of concurrent Creates of one
// user that reach userMin together, at least one counts them all. Ids
// come from the engine when it chooses them, as the Service's do.
func testCreateCrowded(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	newSession := func(n int, user string) *sessiond.Session {
		id := fmt.Sprintf("crowd-%02d", n)
		if c, ok := s.(sessiond.IDChooser); ok {
			id = c.NewSessionID("key-1", user)
		}
		sess := active(id, at(time.Duration(n)*time.Second))
		sess.UserID, sess.APIKeyID = user, "key-1"
		return sess
	}
	create := func(sess *sessiond.Session, userMin int) bool {
		t.Helper()
		crowded, err := s.Create(ctx, sess, userMin)
		if err != nil {
			t.Fatalf("Create(%s): %v", sess.ID, err)
		}
		return crowded
	}
	var first *sessiond.Session
	for i := range 4 {
		sess := newSession(i, "crowd")
		if i == 0 {
			first = sess
		}
		crowded := create(sess, 3)
		if i == 0 && crowded {
			t.Errorf("the first session of a user, userMin 3: crowded")
		}
		if i >= 2 && !crowded {
			t.Errorf("session %d of a user, userMin 3: not crowded", i+1)
		}
	}
	// A conflict is refused as by a Create without userMin.
	dup := newSession(0, "crowd")
	dup.ID = first.ID
	if _, err := s.Create(ctx, dup, 3); sessiond.ErrorCode(err) != sessiond.ECONFLICT {
		t.Errorf("Create of an existing id with userMin 3: %v, want ECONFLICT", err)
	}
	noUser := newSession(10, "")
	if create(noUser, 1) {
		t.Errorf("a session without a user, userMin 1: crowded")
	}
	if create(newSession(11, "crowd"), 0) {
		t.Errorf("userMin 0: crowded")
	}

	const n = 8
	var (
		wg      sync.WaitGroup
		crowded atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			sess := newSession(20+i, "party")
			c, err := s.Create(ctx, sess, n)
			if err != nil {
				t.Errorf("Create(%s): %v", sess.ID, err)
			}
			if c {
				crowded.Add(1)
			}
		})
	}
	wg.Wait()
	if crowded.Load() == 0 {
		t.Errorf("%d concurrent Creates of a user, userMin %d: none counted them all", n, n)
	}
}
