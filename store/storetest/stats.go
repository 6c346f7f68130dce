package storetest

import (
	"reflect"
	"testing"
	"time"

	"sessiond"
)

// testConnStats: deltas add up per session and service, ordered by
// service; deltas of unknown sessions are dropped; Delete and Purge take
// the statistics with the session; closing keeps them.
func testConnStats(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	mustCreate(t, s, active("a", at(0)), active("b", at(time.Second)), active("c", at(2*time.Second)))
	add := func(deltas ...sessiond.ConnDelta) {
		t.Helper()
		if err := s.AddConnStats(ctx, deltas); err != nil {
			t.Fatalf("AddConnStats: %v", err)
		}
	}
	stats := func(id string) []sessiond.ConnStat {
		t.Helper()
		got, err := s.ConnStats(ctx, id)
		if err != nil {
			t.Fatalf("ConnStats(%s): %v", id, err)
		}
		return got
	}
	if got := stats("a"); len(got) != 0 {
		t.Errorf("ConnStats before any: %+v, want none", got)
	}
	add(sessiond.ConnDelta{SessionID: "a", Service: "/zeta/", Requests: 2, Reads: 10, Writes: 100, Errors: 1, LastUsed: at(time.Minute)},
		sessiond.ConnDelta{SessionID: "a", Service: "/alpha/", Requests: 1, Reads: 1, Writes: 2, LastUsed: at(2 * time.Minute)},
		sessiond.ConnDelta{SessionID: "b", Service: "/alpha/", Requests: 5, LastUsed: at(time.Minute)},
		sessiond.ConnDelta{SessionID: "nope", Service: "/alpha/", Requests: 5, LastUsed: at(time.Minute)})
	// A later batch adds; an older LastUsed does not move it back.
	add(sessiond.ConnDelta{SessionID: "a", Service: "/zeta/", Requests: 3, Reads: 5, Writes: 50, Errors: 2, LastUsed: at(30 * time.Second)})
	want := []sessiond.ConnStat{
		{Service: "/alpha/", Requests: 1, Reads: 1, Writes: 2, LastUsed: at(2 * time.Minute)},
		{Service: "/zeta/", Requests: 5, Reads: 15, Writes: 150, Errors: 3, LastUsed: at(time.Minute)},
	}
	if got := stats("a"); !sameStats(got, want) {
		t.Errorf("ConnStats(a) =\n%+v\nwant\n%+v", got, want)
	}
	if got := stats("nope"); len(got) != 0 {
		t.Errorf("ConnStats of a session that does not exist: %+v, want none (dropped)", got)
	}
	if err := s.AddConnStats(ctx, nil); err != nil {
		t.Errorf("AddConnStats(nil): %v", err)
	}

	// Closing keeps them; Delete and Purge remove them.
	if _, err := s.Update(ctx, "b", func(sess *sessiond.Session) error {
		sessiond.ApplyClose(sess, at(time.Hour), sessiond.ReasonClosed)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := stats("b"); len(got) != 1 || got[0].Requests != 5 {
		t.Errorf("ConnStats of a closed session: %+v, want its one", got)
	}
	if _, err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := stats("a"); len(got) != 0 {
		t.Errorf("ConnStats after Delete: %+v, want none", got)
	}
	if _, err := s.Purge(ctx, at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := stats("b"); len(got) != 0 {
		t.Errorf("ConnStats after Purge: %+v, want none", got)
	}
	// A session created again with a purged id starts from nothing.
	mustCreate(t, s, active("a", at(3*time.Hour)))
	if got := stats("a"); len(got) != 0 {
		t.Errorf("ConnStats of a new session with an old id: %+v, want none", got)
	}
}

func sameStats(got, want []sessiond.ConnStat) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.LastUsed.Equal(w.LastUsed) {
			return false
		}
		g.LastUsed, w.LastUsed = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			return false
		}
	}
	return true
}
