package sessiond_test

import (
	"slices"
	"sync"
	"testing"

	"sessiond"
)

func TestLocalStream(t *testing.T) {
	l := sessiond.NewLocalStream("here")
	var (
		mu  sync.Mutex
		got [2][]sessiond.EventKind
	)
	record := func(i int) func([]sessiond.Event) {
		return func(evs []sessiond.Event) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range evs {
				got[i] = append(got[i], e.Kind)
				if e.Kind == sessiond.EventOpened && e.Origin != "here" {
					t.Errorf("origin %q, want the stream's", e.Origin)
				}
			}
		}
	}
	cancel0 := l.Subscribe(record(0))
	l.Publish(t.Context(), sessiond.Event{Kind: sessiond.EventOpened, SessionID: "a"})
	l.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
	// A subscriber that joins during a loss is told at once.
	cancel1 := l.Subscribe(record(1))
	l.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
	cancel0()
	l.Publish(t.Context(), sessiond.Event{Kind: sessiond.EventClosed, SessionID: "a"})
	cancel1()
	l.Publish(t.Context(), sessiond.Event{Kind: sessiond.EventDeleted, SessionID: "a"})
	// Joining after the resume: nothing to tell.
	late := l.Subscribe(record(0))
	late()

	want0 := []sessiond.EventKind{sessiond.EventOpened, sessiond.EventLost, sessiond.EventResumed}
	want1 := []sessiond.EventKind{sessiond.EventLost, sessiond.EventResumed, sessiond.EventClosed}
	if !slices.Equal(got[0], want0) || !slices.Equal(got[1], want1) {
		t.Errorf("delivered %v and %v, want %v and %v", got[0], got[1], want0, want1)
	}
	if (sessiond.Event{Kind: sessiond.EventClosed}).Ends() != true || (sessiond.Event{Kind: sessiond.EventChanged}).Ends() {
		t.Error("Ends: closed and deleted end a session, nothing else does")
	}
}

// Every change the Service makes is told on its stream, once, after it is
// stored, with the session, key, user and reason.
func TestServiceTellsEveryChange(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	ctx := t.Context()
	var (
		mu  sync.Mutex
		got []sessiond.Event
	)
	e.svc.Events().Subscribe(func(evs []sessiond.Event) {
		mu.Lock()
		got = append(got, evs...)
		mu.Unlock()
	})
	k, _ := e.createKey(t, "k")
	s1, _ := e.open(t, sessiond.OpenRequest{UserID: "u", APIKeyID: k.ID})
	s2, _ := e.open(t, sessiond.OpenRequest{UserID: "v"})
	mustOK := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustOK(e.svc.StoreData(ctx, s1.ID, []byte(`1`)))
	mustOK(e.svc.UpdateUser(ctx, s1.ID, []byte(`{"a":1}`)))
	mustOK(e.svc.CloseSession(ctx, s2.ID, sessiond.ReasonForced))
	mustOK(e.svc.CloseSession(ctx, s2.ID, sessiond.ReasonClosed)) // closed already: nothing to tell
	mustOK(e.svc.Delete(ctx, s2.ID))
	if err := e.svc.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		kind                 sessiond.EventKind
		session, key, reason string
	}
	var have []ev
	mu.Lock()
	for _, x := range got {
		have = append(have, ev{x.Kind, x.SessionID, x.APIKeyID, x.Reason})
		if x.Time.IsZero() {
			t.Errorf("%s without a time", x.Kind)
		}
	}
	mu.Unlock()
	want := []ev{
		{sessiond.EventKeyCreated, "", k.ID, ""},
		{sessiond.EventOpened, s1.ID, k.ID, ""},
		{sessiond.EventOpened, s2.ID, "", ""},
		{sessiond.EventChanged, s1.ID, k.ID, ""},
		{sessiond.EventChanged, s1.ID, k.ID, ""},
		{sessiond.EventClosed, s2.ID, "", sessiond.ReasonForced},
		{sessiond.EventDeleted, s2.ID, "", ""},
		{sessiond.EventKeyRevoked, "", k.ID, ""},
		{sessiond.EventClosed, s1.ID, k.ID, sessiond.ReasonRevoked},
	}
	if !slices.Equal(have, want) {
		t.Errorf("events:\n%v\nwant\n%v", have, want)
	}
}
