package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sessiond"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
)

// arrival bounds every wait for an event (a hang detector, not a timing
// assertion).
const arrival = 5 * time.Second

// recorder keeps every event a subscriber received, in order.
type recorder struct {
	mu   sync.Mutex
	evs  []sessiond.Event
	wake chan struct{}
	// onLost, if set, runs inside the subscriber when EventLost arrives.
	onLost func()
}

func record(t *testing.T, st sessiond.Stream) *recorder {
	r := &recorder{wake: make(chan struct{}, 1)}
	cancel := st.Subscribe(func(evs []sessiond.Event) {
		r.mu.Lock()
		r.evs = append(r.evs, evs...)
		onLost := r.onLost
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
		if onLost != nil && slices.ContainsFunc(evs, func(e sessiond.Event) bool { return e.Kind == sessiond.EventLost }) {
			onLost()
		}
	})
	t.Cleanup(cancel)
	return r
}

func (r *recorder) events() []sessiond.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// wait waits until cond holds on the events received, failing the test
// after arrival.
func (r *recorder) wait(t *testing.T, what string, cond func([]sessiond.Event) bool) []sessiond.Event {
	t.Helper()
	deadline := time.After(arrival)
	for {
		evs := r.events()
		if cond(evs) {
			return evs
		}
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("%s: not within %v; received %s", what, arrival, show(evs))
		}
	}
}

func show(evs []sessiond.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, " %s/%s", e.Kind, e.SessionID)
	}
	return "[" + b.String() + " ]"
}

// index returns the position of the first event of kind for session id
// at or after from, or -1.
func index(evs []sessiond.Event, from int, kind sessiond.EventKind, id string) int {
	for i := from; i < len(evs); i++ {
		if evs[i].Kind == kind && evs[i].SessionID == id {
			return i
		}
	}
	return -1
}

func count(evs []sessiond.Event, kind sessiond.EventKind, id string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind && e.SessionID == id {
			n++
		}
	}
	return n
}

func opened(id string) sessiond.Event {
	return sessiond.Event{Kind: sessiond.EventOpened, SessionID: id, Time: time.Now().UTC()}
}

// pair opens two handles, A and B, on one fresh schema, as two instances.
func pair(t *testing.T) (a, b *postgres.Store) {
	url := pgtest.Schema(t)
	a = open(t, url, postgres.Options{Origin: "a-" + t.Name()})
	b = open(t, url, postgres.Options{Origin: "b-" + t.Name()})
	return a, b
}

func TestStreamBetweenInstances(t *testing.T) {
	a, b := pair(t)
	ra, rb := record(t, a.Stream()), record(t, b.Stream())

	if err := a.Stream().Publish(t.Context(), opened("s1")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// A's own subscriber has it before Publish returned.
	if got := count(ra.events(), sessiond.EventOpened, "s1"); got != 1 {
		t.Fatalf("A's subscriber received s1 %d times right after Publish, want 1", got)
	}
	evs := rb.wait(t, "s1 on B", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, "s1") >= 0 })
	if e := evs[index(evs, 0, sessiond.EventOpened, "s1")]; e.Origin != a.Stream().(*postgres.Stream).Origin() {
		t.Errorf("event origin = %q, want A's", e.Origin)
	}

	// B's own event reaches B once: its listener skips it. A's later
	// event, committed after it, is the barrier.
	if err := b.Stream().Publish(t.Context(), opened("s2")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := a.Stream().Publish(t.Context(), opened("s3")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	evs = rb.wait(t, "s3 on B", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, "s3") >= 0 })
	if got := count(evs, sessiond.EventOpened, "s2"); got != 1 {
		t.Errorf("B received its own s2 %d times, want 1", got)
	}
	evs = ra.wait(t, "s2 on A", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, "s2") >= 0 })
	if got := count(evs, sessiond.EventOpened, "s1"); got != 1 {
		t.Errorf("A received its own s1 %d times, want 1", got)
	}
}

// A sweep's thousands of events go out in notifications under the
// payload limit, and all arrive.
func TestStreamBigBatch(t *testing.T) {
	a, b := pair(t)
	rb := record(t, b.Stream())
	const n = 3000
	evs := make([]sessiond.Event, n)
	for i := range evs {
		evs[i] = sessiond.Event{Kind: sessiond.EventClosed, SessionID: fmt.Sprintf("session-%06d-%s", i, strings.Repeat("x", 40)),
			Reason: sessiond.ReasonExpired, Time: time.Now().UTC()}
	}
	if err := a.Stream().Publish(t.Context(), evs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := rb.wait(t, "3000 events on B", func(evs []sessiond.Event) bool { return len(evs) >= n })
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.SessionID] = true
	}
	if len(seen) != n {
		t.Errorf("B received %d distinct sessions, want %d", len(seen), n)
	}
}

// An event too big for a notification (a huge session id) is read from
// the table, in its place among the others.
func TestStreamBigEvent(t *testing.T) {
	a, b := pair(t)
	rb := record(t, b.Stream())
	huge := strings.Repeat("h", 20000)
	if err := a.Stream().Publish(t.Context(), opened("first"), opened(huge), opened("last")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	evs := rb.wait(t, "the three events on B", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, "last") >= 0 })
	first, big, last := index(evs, 0, sessiond.EventOpened, "first"), index(evs, 0, sessiond.EventOpened, huge), index(evs, 0, sessiond.EventOpened, "last")
	if !(first >= 0 && first < big && big < last) || len(evs) != 3 {
		t.Errorf("B received %d events, big at %d (first %d, last %d); want the three in order", len(evs), big, first, last)
	}
}

// listenerPID returns the backend pid of the listener of the instance
// named origin.
func listenerPID(t *testing.T, origin string) int32 {
	t.Helper()
	pids, err := pgx.CollectRows(query(t, pgtest.BaseURL(),
		`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, postgres.ListenerName(origin)), pgx.RowTo[int32])
	if err != nil || len(pids) != 1 {
		t.Fatalf("listener of %s: pids %v, %v; want one", origin, pids, err)
	}
	return pids[0]
}

func TestStreamCatchUp(t *testing.T) {
	a, b := pair(t)
	rb := record(t, b.Stream())

	// before: seen by B just before the loss.
	if err := a.Stream().Publish(t.Context(), opened("before")); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "before on B", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, "before") >= 0 })

	// meanwhile: published by A while B's listener is down. B's subscriber
	// publishes it on A when it hears of the loss, which runs on B's
	// listener goroutine before it reconnects.
	var published = make(chan error, 1)
	rb.mu.Lock()
	rb.onLost = func() {
		rb.onLost = nil
		published <- a.Stream().Publish(context.Background(), opened("meanwhile"))
	}
	rb.mu.Unlock()

	bOrigin := b.Stream().(*postgres.Stream).Origin()
	ok, err := pgx.CollectOneRow(query(t, pgtest.BaseURL(), `SELECT pg_terminate_backend($1)`, listenerPID(t, bOrigin)), pgx.RowTo[bool])
	if err != nil || !ok {
		t.Fatalf("pg_terminate_backend = %v, %v", ok, err)
	}
	evs := rb.wait(t, "EventLost, catch-up, EventResumed on B", func(evs []sessiond.Event) bool {
		return index(evs, 0, sessiond.EventResumed, "") >= 0
	})
	if err := <-published; err != nil {
		t.Fatalf("Publish while B is lost: %v", err)
	}
	lost := index(evs, 0, sessiond.EventLost, "")
	meanwhile := index(evs, max(lost, 0), sessiond.EventOpened, "meanwhile")
	resumed := index(evs, max(lost, 0), sessiond.EventResumed, "")
	if lost < 0 || meanwhile < 0 || resumed < meanwhile {
		t.Fatalf("B received %s; want EventLost, then meanwhile (caught up), then EventResumed", show(evs))
	}
	// Events within the margin before the loss are delivered again.
	if index(evs, lost, sessiond.EventOpened, "before") < 0 {
		t.Errorf("catch-up did not deliver again the event just before the loss: %s", show(evs))
	}

	// The channel works again.
	if err := a.Stream().Publish(t.Context(), opened("after")); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "after on B", func(evs []sessiond.Event) bool { return index(evs, resumed, sessiond.EventOpened, "after") >= 0 })
	if pid := listenerPID(t, bOrigin); pid == 0 {
		t.Error("no listener after the reconnect")
	}
}

// Close ends the listener's connection.
func TestStreamCloseStopsListener(t *testing.T) {
	url := pgtest.Schema(t)
	origin := "closing-" + t.Name()
	s := open(t, url, postgres.Options{Origin: origin})
	listenerPID(t, origin)
	s.Close()
	// The backend exits shortly after the client's goodbye.
	deadline := time.Now().Add(arrival)
	for {
		pids, err := pgx.CollectRows(query(t, pgtest.BaseURL(),
			`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, postgres.ListenerName(origin)), pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener backends %v still there %v after Close", pids, arrival)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Events older than the retention are pruned (each stream prunes when it
// starts and every minute), newer ones kept.
func TestStreamPrunesOldEvents(t *testing.T) {
	url := pgtest.Schema(t)
	open(t, url, postgres.Options{}).Close()
	query(t, url, `INSERT INTO events (at, origin, payload)
		SELECT now() - interval '2 hours', 'old', '{"k":"session.opened"}' FROM generate_series(1, 2500)`).Close()
	query(t, url, `INSERT INTO events (origin, payload) VALUES ('new', '{"k":"session.opened"}')`).Close()
	open(t, url, postgres.Options{})
	deadline := time.Now().Add(arrival)
	for {
		origins, err := pgx.CollectRows(query(t, url, `SELECT DISTINCT origin FROM events`), pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(origins, []string{"new"}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of origins %v left, want only the new one", origins)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
