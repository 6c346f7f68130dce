package sessiond

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The stream of session events is the one place where changes are told.
// The Service publishes an event after the store has committed the write it
// describes; every per-process state (the API-key cache, an engine's read
// cache, session directories, gateway statistics, and later metrics and
// the console) learns of changes from it alone.
//
// The contract, which every Stream keeps (docs/design.md, "Events"):
//   - Delivery is at least once: an event may arrive twice, so handlers
//     are idempotent (drop an entry, remove a directory).
//   - Events of this instance reach its subscribers synchronously, before
//     Publish returns, so that the instance that made a change never
//     serves the state before it. Events of other instances arrive on the
//     stream's own goroutine, one batch at a time, in the order the shared
//     store committed their publication. No order holds between the two.
//   - An event that invalidates (changed, closed, deleted, key revoked) is
//     sent to the other instances before Publish returns. A telling one
//     (opened, key created: Event.Telling) may be sent after, batched
//     with others (Batcher), so it may reach another instance after a
//     later event of the same session.
//   - When events may have been lost (the channel between instances broke,
//     a subscriber fell behind), subscribers receive EventLost, and from
//     then until EventResumed they must not serve anything from memory
//     that an event could have made stale: they read through to the store.
//     Before EventResumed the stream has caught up: it has delivered again
//     every event published since shortly before the loss.
//   - A subscriber that joins while the stream is lost receives EventLost
//     at once.

// EventKind names what happened.
type EventKind string

const (
	// EventOpened: a session was opened.
	EventOpened EventKind = "session.opened"
	// EventChanged: a session's data or user was replaced.
	EventChanged EventKind = "session.changed"
	// EventClosed: a session stopped being active; Reason says why
	// (ReasonClosed, ReasonExpired, ReasonForced, ReasonRevoked,
	// ReasonEvicted).
	EventClosed EventKind = "session.closed"
	// EventDeleted: a session was deleted, or purged after retention.
	EventDeleted EventKind = "session.deleted"
	// EventKeyCreated and EventKeyRevoked: an API key was created or
	// revoked (SessionID is empty, APIKeyID names it).
	EventKeyCreated EventKind = "apikey.created"
	EventKeyRevoked EventKind = "apikey.revoked"

	// EventLost and EventResumed are told by the stream itself, never
	// published: events may have been lost, and the stream has caught up.
	EventLost    EventKind = "stream.lost"
	EventResumed EventKind = "stream.resumed"
)

// Event is one change. Every field but Kind may be empty.
type Event struct {
	Kind      EventKind `json:"k"`
	SessionID string    `json:"s,omitempty"`
	APIKeyID  string    `json:"a,omitempty"`
	UserID    string    `json:"u,omitempty"`
	Reason    string    `json:"r,omitempty"`
	// Time is when the change happened, by the publishing instance's clock.
	Time time.Time `json:"t"`
	// Origin names the publishing instance; streams set it.
	Origin string `json:"o,omitempty"`
}

// Ends reports whether e ends a session: closed or deleted.
func (e Event) Ends() bool { return e.Kind == EventClosed || e.Kind == EventDeleted }

// Stream carries session events to the subscribers of every instance.
type Stream interface {
	// Publish tells evs to every subscriber: to this instance's before it
	// returns, to other instances' through the shared store. An error
	// means other instances may not have been told (their subscribers
	// will receive EventLost); this instance's subscribers always are.
	Publish(ctx context.Context, evs ...Event) error
	// Subscribe calls fn with every batch of events from now on, until
	// cancel is called. fn must not block for long and must be safe for
	// concurrent use.
	Subscribe(fn func([]Event)) (cancel func())
	// Close stops delivering events.
	Close() error
}

// Streamer is implemented by engines shared between instances: their
// stream carries events between the instances. The Service uses an
// in-process stream (LocalStream) for engines that do not implement it.
type Streamer interface {
	Stream() Stream
}

// LocalStream is the in-process Stream, and the fan-out to this process's
// subscribers that shared streams build on (Deliver). Delivering reads an
// immutable list of subscribers (copied on Subscribe and cancel), so the
// write path takes no lock for it.
type LocalStream struct {
	mu     sync.Mutex // Subscribe, cancel and the lost flag
	subs   atomic.Pointer[[]subscriber]
	next   int
	lost   atomic.Bool
	origin string
}

type subscriber struct {
	id int
	fn func([]Event)
}

// NewLocalStream returns an in-process stream whose events carry origin.
func NewLocalStream(origin string) *LocalStream {
	l := &LocalStream{origin: origin}
	l.subs.Store(&[]subscriber{})
	return l
}

// Origin returns the name this stream stamps on its events.
func (l *LocalStream) Origin() string { return l.origin }

// Publish delivers evs to this process's subscribers.
func (l *LocalStream) Publish(_ context.Context, evs ...Event) error {
	l.Stamp(evs)
	l.Deliver(evs)
	return nil
}

// Stamp sets the origin of evs.
func (l *LocalStream) Stamp(evs []Event) {
	for i := range evs {
		evs[i].Origin = l.origin
	}
}

// Deliver calls every subscriber with evs. It tracks EventLost and
// EventResumed so that late subscribers learn of a loss in progress.
func (l *LocalStream) Deliver(evs []Event) {
	if len(evs) == 0 {
		return
	}
	for _, e := range evs {
		switch e.Kind {
		case EventLost:
			l.lost.Store(true)
		case EventResumed:
			l.lost.Store(false)
		}
	}
	for _, s := range *l.subs.Load() {
		s.fn(evs)
	}
}

// Subscribe registers fn.
func (l *LocalStream) Subscribe(fn func([]Event)) func() {
	l.mu.Lock()
	id := l.next
	l.next++
	subs := append(slices.Clone(*l.subs.Load()), subscriber{id, fn})
	l.subs.Store(&subs)
	l.mu.Unlock()
	if l.lost.Load() {
		fn([]Event{{Kind: EventLost}})
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		subs := slices.DeleteFunc(slices.Clone(*l.subs.Load()), func(s subscriber) bool { return s.id == id })
		l.subs.Store(&subs)
	}
}

// Close drops every subscriber.
func (l *LocalStream) Close() error {
	l.mu.Lock()
	l.subs.Store(&[]subscriber{})
	l.mu.Unlock()
	return nil
}
