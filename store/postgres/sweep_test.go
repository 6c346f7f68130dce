package postgres_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
)

// Several instances sweeping at once close every dead session exactly
// once between them, and purge every closed one exactly once, in batches.
func TestConcurrentSweeps(t *testing.T) {
	url := pgtest.Schema(t)
	stores := []*postgres.Store{open(t, url, postgres.Options{}), open(t, url, postgres.Options{}), open(t, url, postgres.Options{})}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	idle := 30 * time.Minute
	const n = 2500 // more than two batches
	var deltas []sessiond.ConnDelta
	for i := range n {
		id := fmt.Sprintf("s%05d", i)
		sess := &sessiond.Session{ID: id, Active: true, OpenTime: now.Add(-2 * time.Hour), RequestTime: now.Add(-time.Hour),
			TokenHash: []byte(id), Data: []byte(`{}`)}
		if i%2 == 0 {
			sess.RequestTime = now // alive: kept
		}
		if _, err := stores[0].Create(t.Context(), sess, 0); err != nil {
			t.Fatal(err)
		}
		deltas = append(deltas, sessiond.ConnDelta{SessionID: id, Service: "svc", Requests: 1, LastUsed: now})
	}
	if err := stores[0].AddConnStats(t.Context(), deltas); err != nil {
		t.Fatal(err)
	}

	sweep := func(fn func(s *postgres.Store) ([]string, error)) []string {
		var (
			mu  sync.Mutex
			all []string
			wg  sync.WaitGroup
		)
		for _, s := range stores {
			wg.Go(func() {
				ids, err := fn(s)
				if err != nil {
					t.Errorf("sweep: %v", err)
				}
				mu.Lock()
				all = append(all, ids...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(all)
		return all
	}
	closed := sweep(func(s *postgres.Store) ([]string, error) { return s.CloseExpired(t.Context(), now, idle) })
	if len(closed) != n/2 || len(slices.Compact(slices.Clone(closed))) != n/2 {
		t.Fatalf("concurrent CloseExpired closed %d ids (%d distinct), want %d once each", len(closed), len(slices.Compact(slices.Clone(closed))), n/2)
	}
	purged := sweep(func(s *postgres.Store) ([]string, error) { return s.Purge(t.Context(), now.Add(time.Hour)) })
	if !slices.Equal(purged, closed) {
		t.Fatalf("concurrent Purge removed %d ids, want the %d closed once each", len(purged), len(closed))
	}
	page, err := stores[1].List(t.Context(), sessiond.Filter{}, sessiond.Paging{Total: true})
	if err != nil {
		t.Fatal(err)
	}
	if *page.Total != n/2 {
		t.Errorf("%d sessions left, want %d", *page.Total, n/2)
	}
	// The statistics went with their sessions.
	if st, err := stores[2].ConnStats(t.Context(), closed[0]); err != nil || len(st) != 0 {
		t.Errorf("statistics of a purged session: %v, %v", st, err)
	}
	if st, err := stores[2].ConnStats(t.Context(), "s00000"); err != nil || len(st) != 1 || st[0].Requests != 1 {
		t.Errorf("statistics of a kept session: %v, %v", st, err)
	}
}

// Batched writes from several instances at once, over the same sessions
// in different orders and while some are deleted, neither fail nor lose
// counts.
func TestConcurrentBatches(t *testing.T) {
	url := pgtest.Schema(t)
	a, b := open(t, url, postgres.Options{}), open(t, url, postgres.Options{})
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const n, rounds = 200, 10
	var ids []string
	for i := range n {
		id := fmt.Sprintf("s%04d", i)
		ids = append(ids, id)
		if _, err := a.Create(t.Context(), &sessiond.Session{ID: id, Active: true, OpenTime: now, RequestTime: now, TokenHash: []byte(id)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w, s := range []*postgres.Store{a, b, a, b} {
		wg.Go(func() {
			order := slices.Clone(ids)
			if w%2 == 1 {
				slices.Reverse(order)
			}
			for r := range rounds {
				var deltas []sessiond.ConnDelta
				var touches []sessiond.Touch
				for _, id := range order {
					deltas = append(deltas, sessiond.ConnDelta{SessionID: id, Service: "svc", Requests: 1, LastUsed: now.Add(time.Duration(r) * time.Second)})
					touches = append(touches, sessiond.Touch{ID: id, Time: now.Add(time.Duration(w*rounds+r) * time.Millisecond)})
				}
				if err := s.AddConnStats(t.Context(), deltas); err != nil {
					t.Errorf("AddConnStats: %v", err)
				}
				if err := s.Touch(t.Context(), touches); err != nil {
					t.Errorf("Touch: %v", err)
				}
			}
		})
	}
	wg.Go(func() {
		for _, id := range ids[n/2:] {
			if _, err := b.Delete(t.Context(), id); err != nil {
				t.Errorf("Delete: %v", err)
			}
		}
	})
	wg.Wait()
	for _, id := range ids[:n/2] {
		st, err := b.ConnStats(t.Context(), id)
		if err != nil || len(st) != 1 || st[0].Requests != 4*rounds || !st[0].LastUsed.Equal(now.Add((rounds-1)*time.Second)) {
			t.Fatalf("statistics of %s: %+v, %v; want %d requests", id, st, err, 4*rounds)
		}
		sess, err := a.Get(t.Context(), id)
		if err != nil || !sess.RequestTime.Equal(now.Add((4*rounds-1)*time.Millisecond)) {
			t.Fatalf("%s after the touches: %v, %v", id, sess, err)
		}
	}
}
