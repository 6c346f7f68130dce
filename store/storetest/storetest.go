// Package storetest is the conformance suite of sessiond.Store. Every
// engine's tests call Run, once, with how to make its stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Engine{New: func(t *testing.T) sessiond.Store { return memory.New() }})
//	}
//
// Run covers the Store contract on one handle, and then the service over
// two handles on one store, as two instances share it (two.go).
//
// The suite uses fixed times only (no wall clock, no sleeps), millisecond
// precision (that of every wire format) and UTC. It compares times with
// time.Time.Equal and JSON values by meaning, so engines that keep JSON in
// a JSON column type (which may reformat it) pass, but nil and non-nil
// must stay apart.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sessiond"
)

// Engine tells Run how to make an engine's stores.
type Engine struct {
	// New returns a fresh, empty store for the test it is given; Run
	// closes it when that test ends.
	New func(t *testing.T) sessiond.Store
	// Reopen returns a second handle on the store s that New returned, as
	// a second instance opens it: its own connections and, for a shared
	// engine (sessiond.Streamer), its own stream. Run closes it. Nil for
	// an engine that one process holds alone (embedded, memory): the
	// second instance then shares the handle and an in-process stream.
	Reopen func(t *testing.T, s sessiond.Store) sessiond.Store
}

// Run runs the whole suite.
func Run(t *testing.T, e Engine) {
	newStore := e.New
	tests := []struct {
		name string
		fn   func(t *testing.T, s sessiond.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateCopies", testCreateCopies},
		{"Conflict", testConflict},
		{"NotFound", testNotFound},
		{"Update", testUpdate},
		{"UpdateMovesIndexes", testUpdateMovesIndexes},
		{"Delete", testDelete},
		{"ListFilter", testListFilter},
		{"ListOrder", testListOrder},
		{"ListPaging", testListPaging},
		{"FilterBoundaries", testFilterBoundaries},
		{"SearchFoldsUnicode", testSearchFoldsUnicode},
		{"Touch", testTouch},
		{"TouchMany", testTouchMany},
		{"CloseExpired", testCloseExpired},
		{"CloseExpiredMany", testCloseExpiredMany},
		{"CloseExpiredBoundaries", testCloseExpiredBoundaries},
		{"UserSessions", testUserSessions},
		{"CreateCrowded", testCreateCrowded},
		{"Purge", testPurge},
		{"PurgeMany", testPurgeMany},
		{"APIKeys", testAPIKeys},
		{"ConnStats", testConnStats},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentCreates", testConcurrentCreates},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
	runTwo(t, e)
}

// T0 is the base of every time in the suite.
var T0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// at returns T0 + d.
func at(d time.Duration) time.Time { return T0.Add(d) }

// tokenHash returns a distinct token hash per name.
func tokenHash(name string) []byte {
	h := sha256.Sum256([]byte("token:" + name))
	return h[:]
}

// active returns an active session opened and last used at open, with
// every string field and user set.
func active(id string, open time.Time) *sessiond.Session {
	return &sessiond.Session{
		ID:          id,
		UserID:      "user-" + id,
		UserName:    "User " + id,
		Active:      true,
		OpenTime:    open,
		RequestTime: open,
		Address:     "10.0.0.1",
		Client:      "web",
		User:        json.RawMessage(`{"id":"user-` + id + `","roles":["reader"]}`),
		Data:        json.RawMessage(`{"cart":[1,2]}`),
		APIKeyID:    "key-1",
		TokenHash:   tokenHash(id),
	}
}

// closed returns a session closed at closeTime for reason, as
// sessiond.ApplyClose leaves it.
func closed(id string, open, closeTime time.Time, reason string) *sessiond.Session {
	s := active(id, open)
	sessiond.ApplyClose(s, closeTime, reason)
	return s
}

func mustCreate(t *testing.T, s sessiond.Store, sessions ...*sessiond.Session) {
	t.Helper()
	for _, sess := range sessions {
		if _, err := s.Create(t.Context(), sess, 0); err != nil {
			t.Fatalf("Create(%s): %v", sess.ID, err)
		}
	}
}

func mustGet(t *testing.T, s sessiond.Store, id string) *sessiond.Session {
	t.Helper()
	sess, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return sess
}

// wantCode fails unless err carries the code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := sessiond.ErrorCode(err); got != code {
		t.Errorf("%s: error code = %q (%v), want %q", what, got, err, code)
	}
}

// checkSession fails the test with every field of got that differs from
// want.
func checkSession(t *testing.T, what string, got, want *sessiond.Session) {
	t.Helper()
	if d := diffSession(got, want); d != "" {
		t.Errorf("%s: session differs (got vs want):\n%s", what, d)
	}
}

func diffSession(got, want *sessiond.Session) string {
	if got == nil || want == nil {
		if got != want {
			return fmt.Sprintf("  got %v, want %v", got, want)
		}
		return ""
	}
	var b strings.Builder
	str := func(name, g, w string) {
		if g != w {
			fmt.Fprintf(&b, "  %s: %q vs %q\n", name, g, w)
		}
	}
	tm := func(name string, g, w time.Time) {
		if !g.Equal(w) {
			fmt.Fprintf(&b, "  %s: %v vs %v\n", name, g, w)
		}
	}
	js := func(name string, g, w json.RawMessage) {
		if !sameJSON(g, w) {
			fmt.Fprintf(&b, "  %s: %s vs %s\n", name, showJSON(g), showJSON(w))
		}
	}
	str("ID", got.ID, want.ID)
	str("UserID", got.UserID, want.UserID)
	str("UserName", got.UserName, want.UserName)
	if got.Active != want.Active {
		fmt.Fprintf(&b, "  Active: %v vs %v\n", got.Active, want.Active)
	}
	tm("OpenTime", got.OpenTime, want.OpenTime)
	tm("RequestTime", got.RequestTime, want.RequestTime)
	tm("CloseTime", got.CloseTime, want.CloseTime)
	tm("ExpireTime", got.ExpireTime, want.ExpireTime)
	str("CloseReason", got.CloseReason, want.CloseReason)
	str("Address", got.Address, want.Address)
	str("Client", got.Client, want.Client)
	js("User", got.User, want.User)
	js("Data", got.Data, want.Data)
	str("APIKeyID", got.APIKeyID, want.APIKeyID)
	if !bytes.Equal(got.TokenHash, want.TokenHash) {
		fmt.Fprintf(&b, "  TokenHash: %x vs %x\n", got.TokenHash, want.TokenHash)
	}
	return b.String()
}

// sameJSON reports whether a and b are both nil or both hold the same JSON
// value.
func sameJSON(a, b json.RawMessage) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil || bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func showJSON(v json.RawMessage) string {
	if v == nil {
		return "<nil>"
	}
	return string(v)
}

// ids returns the ids of sessions, in order.
func ids(sessions []*sessiond.Session) []string {
	out := make([]string, len(sessions))
	for i, s := range sessions {
		out[i] = s.ID
	}
	return out
}

// sameIDs compares id sets (order ignored; duplicates count).
func sameIDs(got, want []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}

func ptr[T any](v T) *T { return &v }

// MultiGetter is an engine with the optional batch read of shared engines
// (sessiond.MultiGetter, the cache's refresh).
type MultiGetter interface {
	sessiond.Store
	sessiond.MultiGetter
}

// GetMany checks an engine's GetMany on the empty store s: it returns
// exactly the sessions of the ids that exist, as Get does, whatever their
// state, and nothing for ids that do not.
func GetMany(t *testing.T, s MultiGetter) {
	ctx := t.Context()
	if got, err := s.GetMany(ctx, []string{"nobody"}); err != nil || len(got) != 0 {
		t.Fatalf("GetMany of an unknown id: %v, %v; want none", got, err)
	}
	a, b, c := active("a", at(0)), active("b", at(time.Minute)), active("c", at(2*time.Minute))
	sessiond.ApplyClose(b, at(3*time.Minute), sessiond.ReasonClosed)
	mustCreate(t, s, a, b, c)
	got, err := s.GetMany(ctx, []string{"c", "nobody", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y *sessiond.Session) int { return strings.Compare(x.ID, y.ID) })
	if len(got) != 3 {
		t.Fatalf("GetMany: %d sessions, want a, b and c", len(got))
	}
	for i, want := range []*sessiond.Session{a, b, c} {
		checkSession(t, "GetMany "+want.ID, got[i], want)
	}
}
