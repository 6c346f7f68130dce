package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"sessiond"
)

// The Batcher sends every event it was given, in order, in sends of at
// most 500, and what is pending at Close before Close returns.
func TestBatcher(t *testing.T) {
	var (
		mu    sync.Mutex
		sent  []string
		sizes []int
		gate  = make(chan struct{})
	)
	b := sessiond.NewBatcher(func(_ context.Context, evs []sessiond.Event) error {
		<-gate // hold the first send, so that the next ones pile up
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(evs))
		for _, e := range evs {
			sent = append(sent, e.SessionID)
		}
		return nil
	}, nil)
	const n = 1200
	for i := range n {
		b.Add(t.Context(), []sessiond.Event{{Kind: sessiond.EventOpened, SessionID: fmt.Sprint(i)}})
	}
	close(gate)
	b.Close()
	if len(sent) != n {
		t.Fatalf("sent %d events, want %d", len(sent), n)
	}
	for i, id := range sent {
		if id != fmt.Sprint(i) {
			t.Fatalf("event %d sent as %s: out of order", i, id)
		}
	}
	for _, s := range sizes {
		if s > 500 {
			t.Errorf("a send of %d events", s)
		}
	}
	if len(sizes) >= n/2 {
		t.Errorf("%d sends for %d events queued behind a slow one: not batched", len(sizes), n)
	}
}

// A failing send is logged and the Batcher goes on.
func TestBatcherSendFails(t *testing.T) {
	calls := 0
	b := sessiond.NewBatcher(func(context.Context, []sessiond.Event) error {
		calls++
		return errors.New("down")
	}, nil)
	b.Add(t.Context(), []sessiond.Event{{Kind: sessiond.EventOpened}})
	b.Close()
	if calls != 1 {
		t.Errorf("%d sends, want 1", calls)
	}
	if !(sessiond.Event{Kind: sessiond.EventOpened}).Telling() || (sessiond.Event{Kind: sessiond.EventClosed}).Telling() {
		t.Error("Telling: opened and key created only")
	}
}
