package postgres

import (
	"context"
	"strconv"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/postgres/pgtest"
)

// A publication commits with synchronous_commit off for its own
// transaction only: the pool connection it ran on keeps the server's
// setting, so the session writes after it stay durable.
func TestPublishLeavesSynchronousCommit(t *testing.T) {
	url := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn := pgtest.Conn(t, url)
	var want string
	if err := conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&want); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, url, Options{MaxConns: 1}) // one connection: the publication's
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	// Closes are sent before Publish returns (opens go in the background).
	for i := range 3 {
		if err := s.Stream().Publish(ctx, sessiond.Event{Kind: sessiond.EventClosed, SessionID: "s" + strconv.Itoa(i), Reason: sessiond.ReasonClosed}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		var got string
		if err := s.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("synchronous_commit on the pool's connection after a publication = %q, want the server's %q", got, want)
		}
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("events recorded: %d (%v), want 3", n, err)
	}
}
