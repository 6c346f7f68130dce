package redis_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// arrival bounds how long a test waits for an event from another
// instance.
const arrival = 10 * time.Second

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

// Events of one instance reach the other, in order per session, and the
// publisher's own subscribers once (not again from the channel).
func TestStreamBetweenInstances(t *testing.T) {
	url := redistest.BaseURL()
	prefix := redistest.Prefix(t, url)
	a := open(t, url, redis.Options{Prefix: prefix, Origin: "a"})
	b := open(t, url, redis.Options{Prefix: prefix, Origin: "b"})
	ra, rb := record(t, a.Stream()), record(t, b.Stream())
	var evs []sessiond.Event
	for i := range 50 {
		id := a.NewSessionID("", fmt.Sprint("u", i%5))
		evs = append(evs, opened(id), sessiond.Event{Kind: sessiond.EventClosed, SessionID: id, Reason: sessiond.ReasonClosed})
	}
	evs = append(evs, sessiond.Event{Kind: sessiond.EventKeyCreated, APIKeyID: "k1"})
	if err := a.Stream().Publish(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	got := rb.wait(t, "every event on b", func(got []sessiond.Event) bool { return len(got) >= len(evs) })
	for _, e := range evs[:len(evs)-1] {
		if e.Kind == sessiond.EventOpened {
			o, c := index(got, 0, sessiond.EventOpened, e.SessionID), index(got, 0, sessiond.EventClosed, e.SessionID)
			if o < 0 || c < o {
				t.Errorf("session %s: opened at %d, closed at %d on b", e.SessionID, o, c)
			}
		}
		if got := got[index(got, 0, e.Kind, e.SessionID)]; got.Origin != "a" {
			t.Errorf("origin %q, want a", got.Origin)
		}
	}
	// b publishes; a receives it, and a's own events stay once.
	if err := b.Stream().Publish(t.Context(), opened("from-b")); err != nil {
		t.Fatal(err)
	}
	ra.wait(t, "b's event on a", func(got []sessiond.Event) bool { return index(got, 0, sessiond.EventOpened, "from-b") >= 0 })
	if n := count(ra.events(), sessiond.EventOpened, evs[0].SessionID); n != 1 {
		t.Errorf("a's own event delivered %d times on a, want 1", n)
	}
}

// A broken subscription tells EventLost at once, and before EventResumed
// the stream delivers what was published meanwhile.
func TestStreamCatchUp(t *testing.T) {
	srv := redistest.StartServer(t)
	url := srv.URL()
	a := open(t, url, redis.Options{Origin: "a"})
	b := open(t, url, redis.Options{Origin: "b", OpTimeout: time.Second})
	rb := record(t, b.Stream())
	var once sync.Once
	rb.mu.Lock()
	rb.onLost = func() {
		once.Do(func() {
			if err := a.Stream().Publish(t.Context(), opened("during")); err != nil {
				t.Errorf("Publish during the loss: %v", err)
			}
		})
	}
	rb.mu.Unlock()
	if err := a.Stream().Publish(t.Context(), opened("before")); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "before", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, "before") >= 0 })

	c := goredis.NewClient(&goredis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")})
	defer c.Close()
	if err := c.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	evs := rb.wait(t, "EventResumed", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventResumed, "") >= 0 })
	lost, during, resumed := index(evs, 0, sessiond.EventLost, ""), index(evs, 0, sessiond.EventOpened, "during"),
		index(evs, 0, sessiond.EventResumed, "")
	if !(lost >= 0 && lost < during && during < resumed) {
		t.Errorf("b received %s; want EventLost, the event published meanwhile, EventResumed", show(evs))
	}
	// And the channel works again.
	if err := a.Stream().Publish(t.Context(), opened("after")); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "after", func(evs []sessiond.Event) bool { return index(evs, 0, sessiond.EventOpened, "after") >= 0 })
}

// Closing the stream stops its subscriptions: nothing is delivered after.
func TestStreamClose(t *testing.T) {
	url := redistest.BaseURL()
	prefix := redistest.Prefix(t, url)
	a := open(t, url, redis.Options{Prefix: prefix})
	b, err := redis.Open(t.Context(), url, redis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
	if err := a.Stream().Publish(t.Context(), opened("x")); err != nil {
		t.Fatal(err)
	}
}
