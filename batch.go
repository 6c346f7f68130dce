package sessiond

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Telling reports whether e only tells of something new (a session
// opened, an API key created): no other instance holds anything it makes
// stale, so a shared stream may send it to other instances after Publish
// returns, batched with others. Every other event invalidates and is sent
// before Publish returns.
func (e Event) Telling() bool { return e.Kind == EventOpened || e.Kind == EventKeyCreated }

// Batcher sends telling events to other instances in the background, many
// per send: under load, one statement carries the events of many opens
// instead of one each (measured on PostgreSQL, docs/benchmarks.md run 16:
// the publication was a third of an open's cost). Shared streams use it.
type Batcher struct {
	send func(context.Context, []Event) error
	log  *slog.Logger

	mu      sync.Mutex
	pending []Event
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// Batcher bounds: what one send carries, and what may wait (beyond it, Add
// sends itself, so that a stalled store slows publishers rather than grow
// memory).
const (
	maxBatch   = 500
	maxPending = 10_000
)

// batchWindow is how long the Batcher gathers events after the first
// before it sends: under load one send then carries many opens. On Redis,
// whose one thread bounds opens, each send is a script and a message per
// stream shard, received by every instance: opens measured 0.75–0.78 of
// the bare client with no window, 0.77–0.88 with 5 ms, 0.84–0.94 with
// 20 ms (docs/benchmarks.md, run 19). No other instance waits for a
// telling event.
const batchWindow = 20 * time.Millisecond

// NewBatcher returns a running Batcher that sends with send.
func NewBatcher(send func(context.Context, []Event) error, log *slog.Logger) *Batcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Batcher{send: send, log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// Add queues evs for sending.
func (b *Batcher) Add(ctx context.Context, evs []Event) {
	b.mu.Lock()
	if len(b.pending)+len(evs) > maxPending {
		b.mu.Unlock()
		if err := b.send(ctx, evs); err != nil {
			b.log.Warn("telling other instances of new sessions", "err", err, "events", len(evs))
		}
		return
	}
	b.pending = append(b.pending, evs...)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	window := time.NewTimer(batchWindow)
	window.Stop()
	for {
		select {
		case <-b.wake:
		case <-b.stop:
			b.flush()
			return
		}
		window.Reset(batchWindow)
		select {
		case <-window.C:
		case <-b.stop:
			window.Stop()
			b.flush()
			return
		}
		b.flush()
	}
}

// flush sends everything pending, maxBatch events at a time.
func (b *Batcher) flush() {
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxBatch)
		batch := append([]Event(nil), b.pending[:n]...)
		b.pending = b.pending[n:]
		if len(b.pending) == 0 {
			b.pending = nil
		}
		b.mu.Unlock()
		if n == 0 {
			return
		}
		if err := b.send(context.Background(), batch); err != nil {
			// Nothing depends on these events on other instances: log.
			b.log.Warn("telling other instances of new sessions", "err", err, "events", len(batch))
		}
	}
}

// Close sends what is pending and stops.
func (b *Batcher) Close() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
}
