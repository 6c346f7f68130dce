package embedded

import (
	"testing"
	"time"

	"sessiond"
)

// Statistics survive a restart (the in-memory index of them is rebuilt),
// and a Delete after the restart still removes them.
func TestStatsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sess := testSession(1)
	if _, err := s.Create(ctx, sess, 0); err != nil {
		t.Fatal(err)
	}
	last := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	if err := s.AddConnStats(ctx, []sessiond.ConnDelta{{SessionID: sess.ID, Service: "/a/", Requests: 3, Reads: 1, Writes: 2, Errors: 1, LastUsed: last}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := checkedStore{s, t}
	defer c.Close()
	got, err := s.ConnStats(ctx, sess.ID)
	if err != nil || len(got) != 1 || got[0].Requests != 3 || got[0].Errors != 1 || !got[0].LastUsed.Equal(last) {
		t.Fatalf("ConnStats after the restart: %+v, %v", got, err)
	}
	if _, err := s.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ConnStats(ctx, sess.ID); len(got) != 0 {
		t.Errorf("ConnStats after Delete: %+v", got)
	}
}
