package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"sessiond"
)

// boundarySessions returns sessions whose deadlines, expire times and open
// times lie on and around now (to the microsecond, the
// shared engines' precision), in every state.
func boundarySessions(now time.Time, idle time.Duration) []*sessiond.Session {
	offsets := []time.Duration{-time.Millisecond, -time.Microsecond, 0, time.Microsecond, time.Millisecond}
	var out []*sessiond.Session
	n := 0
	add := func(s *sessiond.Session) {
		n++
		s.ID = fmt.Sprintf("b%03d", n)
		s.TokenHash = []byte(s.ID)
		s.UserID = "u"
		s.APIKeyID = "k"
		out = append(out, s)
	}
	for _, d := range offsets {
		for _, e := range append([]time.Duration{-1}, offsets...) {
			s := &sessiond.Session{Active: true, OpenTime: now.Add(-time.Hour + d), RequestTime: now.Add(-idle + d)}
			if e != -1 {
				s.ExpireTime = now.Add(e)
				s.RequestTime = now // only the expire time decides
			}
			add(s)
		}
		for _, reason := range []string{sessiond.ReasonClosed, sessiond.ReasonExpired, sessiond.ReasonForced} {
			s := &sessiond.Session{Active: true, OpenTime: now.Add(d), RequestTime: now}
			sessiond.ApplyClose(s, now.Add(d), reason)
			add(s)
		}
	}
	return out
}

// testFilterBoundaries: an engine's filtering (SQL, index counts)
// agrees with Filter.Match on every boundary, with a now that is not on a
// whole microsecond too.
func testFilterBoundaries(t *testing.T, s sessiond.Store) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	idle := 30 * time.Minute
	all := boundarySessions(base, idle)
	for _, sess := range all {
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			t.Fatal(err)
		}
	}
	yes, no := true, false
	for _, now := range []time.Time{base, base.Add(300 * time.Nanosecond), base.Add(-300 * time.Nanosecond)} {
		filters := map[string]sessiond.Filter{
			"active":        {Active: &yes},
			"not active":    {Active: &no},
			"state active":  {State: sessiond.StateActive},
			"state expired": {State: sessiond.StateExpired},
			"state closed":  {State: sessiond.StateClosed},
			"state unknown": {State: "gone"},
			"from":          {FromTime: now},
			"to":            {ToTime: now},
			"from to":       {FromTime: now.Add(-time.Hour), ToTime: now.Add(-time.Hour)},
			"search":        {Search: "B00"},
		}
		for name, f := range filters {
			f.Now, f.IdleTimeout = now, idle
			var want []string
			for _, sess := range all {
				if f.Match(sess) {
					want = append(want, sess.ID)
				}
			}
			page, err := s.List(t.Context(), f, sessiond.Paging{Take: 1000, Total: true})
			if err != nil {
				t.Fatalf("List %s: %v", name, err)
			}
			var got []string
			for _, sess := range page.Data {
				got = append(got, sess.ID)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) || *page.Total != int64(len(want)) {
				t.Errorf("now %v, %s: List = %v (total %d), Match = %v", now.Format(time.RFC3339Nano), name, got, *page.Total, want)
			}
		}
	}
}

// testCloseExpiredBoundaries: CloseExpired closes exactly the sessions Alive says are dead, as
// ApplyClose at their deadline leaves them.
func testCloseExpiredBoundaries(t *testing.T, s sessiond.Store) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 300, time.UTC)
	idle := 30 * time.Minute
	all := boundarySessions(now.Truncate(time.Microsecond), idle)
	want := map[string]*sessiond.Session{}
	for _, sess := range all {
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			t.Fatal(err)
		}
		w := sess.Clone()
		if w.Active && !w.Alive(now, idle) {
			sessiond.ApplyClose(w, w.Deadline(idle), sessiond.ReasonExpired)
			want[w.ID] = w
		}
	}
	ids, err := s.CloseExpired(t.Context(), now, idle)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(want) {
		t.Errorf("CloseExpired closed %d sessions, want %d", len(ids), len(want))
	}
	for _, sess := range all {
		got, err := s.Get(t.Context(), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		w := want[sess.ID]
		if w == nil {
			w = sess
		}
		if got.Active != w.Active || !got.CloseTime.Equal(w.CloseTime) || !got.RequestTime.Equal(w.RequestTime) ||
			got.CloseReason != w.CloseReason || (got.User == nil) != (w.User == nil) || (got.Data == nil) != (w.Data == nil) {
			t.Errorf("%s after CloseExpired: %+v, want %+v", sess.ID, got, w)
		}
	}
}

// testSearchFoldsUnicode: Search folds case beyond ASCII, in ids too, as
// Filter.Match does (on PostgreSQL, under a UTF-8 collation).
func testSearchFoldsUnicode(t *testing.T, s sessiond.Store) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	all := []*sessiond.Session{
		{ID: "ÉCOLE-1", UserName: "x", Active: true, OpenTime: now, RequestTime: now},
		{ID: "s2", UserName: "Σοφία", Active: true, OpenTime: now, RequestTime: now},
		{ID: "s3", UserName: "plain", Active: true, OpenTime: now, RequestTime: now},
	}
	for _, sess := range all {
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, search := range []string{"école", "ÉCOLE", "ΣΟΦ", "σοφία", "PLAIN", "zzz"} {
		f := sessiond.Filter{Search: search}
		var want []string
		for _, sess := range all {
			if f.Match(sess) {
				want = append(want, sess.ID)
			}
		}
		page, err := s.List(t.Context(), f, sessiond.Paging{Take: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sess := range page.Data {
			got = append(got, sess.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Search %q = %v, Match = %v", search, got, want)
		}
	}
}
