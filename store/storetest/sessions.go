package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"sessiond"
)

func testCreateGet(t *testing.T, s sessiond.Store) {
	full := &sessiond.Session{
		ID:          "full",
		UserID:      "u-1",
		UserName:    "Zoë Ünïcode ✓",
		Active:      false,
		OpenTime:    at(-time.Hour + 123*time.Millisecond),
		RequestTime: at(2*time.Hour + 1*time.Millisecond),
		CloseTime:   at(2*time.Hour + 1*time.Millisecond),
		ExpireTime:  time.Date(2200, 1, 1, 0, 0, 0, 999_000_000, time.UTC),
		CloseReason: sessiond.ReasonForced,
		Address:     "2001:db8::1",
		Client:      "curl/8.0",
		User:        json.RawMessage(`{"id":"u-1","roles":["a","b"],"n":1.5,"ok":true,"none":null}`),
		Data:        json.RawMessage(`[1,"two",{"three":3}]`),
		APIKeyID:    "key-1",
		TokenHash:   tokenHash("full"),
	}
	minimal := &sessiond.Session{
		ID:          "minimal",
		Active:      true,
		OpenTime:    T0,
		RequestTime: T0,
		TokenHash:   tokenHash("minimal"),
	}
	old := active("old", time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC))
	tests := []struct {
		name string
		sess *sessiond.Session
	}{
		{"every field set", full},
		{"only required fields, nil user and data, zero times", minimal},
		{"before 1970", old},
	}
	for i, v := range []string{`"str"`, `[1,2]`, `3`, `-2.5`, `true`, `false`, `{}`, `[]`, `""`,
		`{"a":{"b":[1,"x",null,{"c":"\"quoted\" \\ ✓"}]}}`} {
		sess := active(fmt.Sprintf("json-%d", i), T0)
		sess.User = json.RawMessage(v)
		sess.Data = json.RawMessage(v)
		tests = append(tests, struct {
			name string
			sess *sessiond.Session
		}{"json " + v, sess})
	}
	userOnly := active("user-only", T0)
	userOnly.Data = nil
	dataOnly := active("data-only", T0)
	dataOnly.User = nil
	tests = append(tests, []struct {
		name string
		sess *sessiond.Session
	}{{"user set, data nil", userOnly}, {"user nil, data set", dataOnly}}...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustCreate(t, s, tt.sess)
			checkSession(t, "Get", mustGet(t, s, tt.sess.ID), tt.sess)
			got, err := s.GetByTokenHash(t.Context(), tt.sess.TokenHash)
			if err != nil {
				t.Fatalf("GetByTokenHash: %v", err)
			}
			checkSession(t, "GetByTokenHash", got, tt.sess)
		})
	}
}

// testCreateCopies checks that the store keeps its own copy: changing what
// was passed to Create or returned by Get changes nothing stored.
func testCreateCopies(t *testing.T, s sessiond.Store) {
	in := active("a", T0)
	want := in.Clone()
	mustCreate(t, s, in)
	in.UserName = "changed"
	in.Data[0] = '['
	in.TokenHash[0] ^= 0xff
	checkSession(t, "after changing Create's argument", mustGet(t, s, "a"), want)

	got := mustGet(t, s, "a")
	got.UserName = "changed"
	got.User[0] = '['
	got.TokenHash[0] ^= 0xff
	checkSession(t, "after changing Get's result", mustGet(t, s, "a"), want)
}

func testConflict(t *testing.T, s sessiond.Store) {
	orig := active("a", T0)
	mustCreate(t, s, orig)

	sameID := active("a", at(time.Hour))
	sameID.TokenHash = tokenHash("other")
	sameID.UserName = "impostor"
	_, err := s.Create(t.Context(), sameID, 0)
	wantCode(t, "Create with an existing id", err, sessiond.ECONFLICT)

	sameToken := active("b", at(time.Hour))
	sameToken.TokenHash = tokenHash("a")
	_, err = s.Create(t.Context(), sameToken, 0)
	wantCode(t, "Create with an existing token hash", err, sessiond.ECONFLICT)

	checkSession(t, "original after conflicts", mustGet(t, s, "a"), orig)
	_, err = s.Get(t.Context(), "b")
	wantCode(t, "Get of the refused session", err, sessiond.ENOTFOUND)
	_, err = s.GetByTokenHash(t.Context(), tokenHash("other"))
	wantCode(t, "GetByTokenHash of the refused token", err, sessiond.ENOTFOUND)
	page, err := s.List(t.Context(), sessiond.Filter{}, sessiond.Paging{Take: 10, Total: true})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := *page.Total, int64(1); got != want {
		t.Errorf("sessions stored = %d, want %d", got, want)
	}
}

func testNotFound(t *testing.T, s sessiond.Store) {
	mustCreate(t, s, active("exists", T0))
	called := false
	tests := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := s.Get(t.Context(), "missing"); return err }},
		{"Get empty id", func() error { _, err := s.Get(t.Context(), ""); return err }},
		{"GetByTokenHash", func() error { _, err := s.GetByTokenHash(t.Context(), tokenHash("missing")); return err }},
		{"GetByTokenHash nil", func() error { _, err := s.GetByTokenHash(t.Context(), nil); return err }},
		{"Update", func() error {
			_, err := s.Update(t.Context(), "missing", func(*sessiond.Session) error { called = true; return nil })
			return err
		}},
		{"Delete", func() error { _, err := s.Delete(t.Context(), "missing"); return err }},
		{"GetAPIKey", func() error { _, err := s.GetAPIKey(t.Context(), "missing"); return err }},
		{"DeleteAPIKey", func() error { return s.DeleteAPIKey(t.Context(), "missing") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.name, tt.call(), sessiond.ENOTFOUND)
		})
	}
	if called {
		t.Errorf("Update called fn for a missing session")
	}
}

func testUpdate(t *testing.T, s sessiond.Store) {
	t.Run("applies fn", func(t *testing.T) {
		orig := active("apply", T0)
		mustCreate(t, s, orig)
		var seen *sessiond.Session
		got, err := s.Update(t.Context(), "apply", func(sess *sessiond.Session) error {
			seen = sess.Clone()
			sess.Data = json.RawMessage(`"new"`)
			sess.User = nil
			sess.RequestTime = at(time.Minute)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		checkSession(t, "fn's argument", seen, orig)
		want := orig.Clone()
		want.Data, want.User, want.RequestTime = json.RawMessage(`"new"`), nil, at(time.Minute)
		checkSession(t, "Update's result", got, want)
		checkSession(t, "Get after Update", mustGet(t, s, "apply"), want)
	})

	t.Run("fn error is returned unchanged and nothing is stored", func(t *testing.T) {
		orig := active("fail", T0)
		mustCreate(t, s, orig)
		for _, want := range []error{
			errors.New("plain"),
			&sessiond.Error{Code: sessiond.ECLOSED, Message: "closed"},
		} {
			got, err := s.Update(t.Context(), "fail", func(sess *sessiond.Session) error {
				sess.Data = json.RawMessage(`"should not be stored"`)
				sess.Active = false
				return want
			})
			if err != want {
				t.Errorf("Update error = %v, want the fn's error %v itself", err, want)
			}
			if got != nil {
				t.Errorf("Update result = %v, want nil on error", got)
			}
			checkSession(t, "Get after failed Update", mustGet(t, s, "fail"), orig)
		}
	})

	t.Run("ErrUnchanged returns the current session", func(t *testing.T) {
		orig := active("unchanged", T0)
		mustCreate(t, s, orig)
		got, err := s.Update(t.Context(), "unchanged", func(sess *sessiond.Session) error {
			sess.Data = json.RawMessage(`"should not be stored"`)
			return sessiond.ErrUnchanged
		})
		if err != nil {
			t.Fatalf("Update: %v, want nil error", err)
		}
		checkSession(t, "Update's result", got, orig)
		checkSession(t, "Get after unchanged Update", mustGet(t, s, "unchanged"), orig)
	})

	t.Run("id and token hash cannot change", func(t *testing.T) {
		orig := active("fixed", T0)
		mustCreate(t, s, orig)
		got, err := s.Update(t.Context(), "fixed", func(sess *sessiond.Session) error {
			sess.ID = "moved"
			sess.TokenHash = tokenHash("moved")
			sess.UserName = "renamed"
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		want := orig.Clone()
		want.UserName = "renamed"
		checkSession(t, "Update's result", got, want)
		checkSession(t, "Get", mustGet(t, s, "fixed"), want)
		byToken, err := s.GetByTokenHash(t.Context(), tokenHash("fixed"))
		if err != nil {
			t.Fatalf("GetByTokenHash(original): %v", err)
		}
		checkSession(t, "GetByTokenHash(original)", byToken, want)
		_, err = s.Get(t.Context(), "moved")
		wantCode(t, "Get(new id)", err, sessiond.ENOTFOUND)
		_, err = s.GetByTokenHash(t.Context(), tokenHash("moved"))
		wantCode(t, "GetByTokenHash(new hash)", err, sessiond.ENOTFOUND)
	})

	t.Run("result is the caller's copy", func(t *testing.T) {
		mustCreate(t, s, active("copy", T0))
		got, err := s.Update(t.Context(), "copy", func(sess *sessiond.Session) error {
			sess.Data = json.RawMessage(`[1]`)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		want := got.Clone()
		got.Data[0] = '{'
		got.UserName = "changed"
		checkSession(t, "Get after changing Update's result", mustGet(t, s, "copy"), want)
	})
}

// testUpdateMovesIndexes checks that whatever an engine indexes follows an
// Update of user_id, open_time, request_time, expire_time and active.
func testUpdateMovesIndexes(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	now, idle := at(10*time.Hour), time.Hour
	mustCreate(t, s,
		active("a", at(time.Hour)),
		active("b", at(2*time.Hour)),
		active("c", at(3*time.Hour)),
	)
	update := func(id string, fn func(*sessiond.Session)) {
		t.Helper()
		if _, err := s.Update(ctx, id, func(sess *sessiond.Session) error { fn(sess); return nil }); err != nil {
			t.Fatalf("Update(%s): %v", id, err)
		}
	}
	list := func(f sessiond.Filter) []string {
		t.Helper()
		page, err := s.List(ctx, f, sessiond.Paging{Take: 100})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		return ids(page.Data)
	}

	// user_id and open_time.
	update("a", func(sess *sessiond.Session) { sess.UserID = "user-b"; sess.OpenTime = at(4 * time.Hour) })
	if got, want := list(sessiond.Filter{UserID: "user-a"}), []string{}; !slices.Equal(got, want) {
		t.Errorf("List(old user) = %v, want %v", got, want)
	}
	if got, want := list(sessiond.Filter{UserID: "user-b"}), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("List(new user) = %v, want %v", got, want)
	}
	if got, want := list(sessiond.Filter{}), []string{"a", "c", "b"}; !slices.Equal(got, want) {
		t.Errorf("List() after moving open_time = %v, want %v", got, want)
	}
	if got, want := list(sessiond.Filter{FromTime: at(4 * time.Hour)}), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("List(from new open_time) = %v, want %v", got, want)
	}

	// All three are idle-dead at now. Raising request_time saves "b";
	// an expire_time in the past kills "b" after all; closing "c" by
	// Update takes it out of the sweep.
	update("b", func(sess *sessiond.Session) { sess.RequestTime = now.Add(-time.Minute) })
	update("c", func(sess *sessiond.Session) { sessiond.ApplyClose(sess, at(5*time.Hour), sessiond.ReasonClosed) })
	got, err := s.CloseExpired(ctx, now, idle)
	if err != nil {
		t.Fatalf("CloseExpired: %v", err)
	}
	if want := []string{"a"}; !sameIDs(got, want) {
		t.Errorf("CloseExpired after raising request_time = %v, want %v", got, want)
	}
	update("b", func(sess *sessiond.Session) { sess.ExpireTime = now.Add(-time.Second) })
	got, err = s.CloseExpired(ctx, now, idle)
	if err != nil {
		t.Fatalf("CloseExpired: %v", err)
	}
	if want := []string{"b"}; !sameIDs(got, want) {
		t.Errorf("CloseExpired after setting expire_time = %v, want %v", got, want)
	}
	// Expired sessions close at their deadline: "a" at +2h (last used at
	// +1h), "b" at now-1s (its expire_time); "c" closed at +5h.
	purged, err := s.Purge(ctx, at(6*time.Hour))
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if want := []string{"a", "c"}; !sameIDs(purged, want) {
		t.Errorf("Purge = %v, want %v", purged, want)
	}
}

func testDelete(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	now, idle := at(10*time.Hour), time.Hour
	alive := active("alive", now)
	dead := active("dead", T0) // idle-dead at now
	gone := closed("gone", T0, at(time.Hour), sessiond.ReasonClosed)
	mustCreate(t, s, alive, dead, gone)

	for _, want := range []*sessiond.Session{alive, dead, gone} {
		got, err := s.Delete(ctx, want.ID)
		if err != nil {
			t.Fatalf("Delete(%s): %v", want.ID, err)
		}
		checkSession(t, "Delete's result", got, want)
		_, err = s.Get(ctx, want.ID)
		wantCode(t, "Get after Delete", err, sessiond.ENOTFOUND)
		_, err = s.GetByTokenHash(ctx, want.TokenHash)
		wantCode(t, "GetByTokenHash after Delete", err, sessiond.ENOTFOUND)
		_, err = s.Delete(ctx, want.ID)
		wantCode(t, "second Delete", err, sessiond.ENOTFOUND)
	}
	page, err := s.List(ctx, sessiond.Filter{}, sessiond.Paging{Take: 10, Total: true})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(page.Data) != 0 || *page.Total != 0 {
		t.Errorf("List after deleting all = %v (total %d), want none", ids(page.Data), *page.Total)
	}
	page, err = s.List(ctx, sessiond.Filter{UserID: "user-alive"}, sessiond.Paging{Take: 10})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(page.Data) != 0 {
		t.Errorf("List(user) after Delete = %v, want none", ids(page.Data))
	}
	if got, err := s.CloseExpired(ctx, now, idle); err != nil || len(got) != 0 {
		t.Errorf("CloseExpired after Delete = %v, %v; want none", got, err)
	}
	if got, err := s.Purge(ctx, now); err != nil || len(got) != 0 {
		t.Errorf("Purge after Delete = %v, %v; want none", got, err)
	}

	// Nothing of a deleted session is left behind: its id and token hash
	// can be stored again.
	again := active("alive", at(time.Hour))
	again.UserName = "again"
	mustCreate(t, s, again)
	got, err := s.GetByTokenHash(ctx, again.TokenHash)
	if err != nil {
		t.Fatalf("GetByTokenHash after re-Create: %v", err)
	}
	checkSession(t, "re-created session", got, again)
}

// listData is the data set of the List tests: at listNow with listIdle,
//
//	id  user    client  key  open  state
//	01  alice   web     k1   +1h   active
//	02  alice   mobile  -    +2h   expired (idle-dead, still active)
//	03  bob     web     k1   +3h   expired (expire_time passed, still active)
//	04  bob     web     k2   +4h   closed
//	05  carol   mobile  k2   +5h   expired (closed by the sweep)
//	06  -       Web     k2   +6h   active (expire_time ahead)
//	07  alice   web     -    +6h   active (request_time + idle == now)
//	08  al      curl    k1   +8h   active (expire_time == now)
//	09  alicia  web     -    +9h   closed (forced)
var (
	listNow  = at(10 * time.Hour)
	listIdle = time.Hour
)

func listData() []*sessiond.Session {
	type row struct {
		id, user, name, addr, client, key string
		open, req, expire                 time.Duration
		closeAt                           time.Duration // 0: active
		reason                            string
	}
	const now = 10 * time.Hour
	rows := []row{
		{"sess-01", "alice", "Alice Liddell", "10.0.0.1", "web", "k1", 1 * time.Hour, now - 10*time.Minute, 0, 0, ""},
		{"sess-02", "alice", "Alice Liddell", "10.0.0.2", "mobile", "", 2 * time.Hour, now - 2*time.Hour, 0, 0, ""},
		{"sess-03", "bob", "Bob Builder", "10.0.0.1", "web", "k1", 3 * time.Hour, now - 5*time.Minute, now - time.Minute, 0, ""},
		{"sess-04", "bob", "Bob Builder", "10.0.0.3", "web", "k2", 4 * time.Hour, 0, 0, 4*time.Hour + 30*time.Minute, sessiond.ReasonClosed},
		{"sess-05", "carol", "Carol", "10.0.0.3", "mobile", "k2", 5 * time.Hour, 0, 0, 5*time.Hour + 30*time.Minute, sessiond.ReasonExpired},
		{"sess-06", "", "", "10.0.0.4", "Web", "k2", 6 * time.Hour, now, now + time.Hour, 0, ""},
		{"sess-07", "alice", "Alice Liddell", "10.0.0.4", "web", "", 6 * time.Hour, now - time.Hour, 0, 0, ""},
		{"sess-08", "al", "Al", "192.168.1.10", "curl", "k1", 8 * time.Hour, now - 20*time.Minute, now, 0, ""},
		{"sess-09", "alicia", "Alicia", "10.0.0.1", "web", "", 9 * time.Hour, 0, 0, 9*time.Hour + 30*time.Minute, sessiond.ReasonForced},
	}
	var out []*sessiond.Session
	for _, r := range rows {
		s := active(r.id, at(r.open))
		s.UserID, s.UserName, s.Address, s.Client, s.APIKeyID = r.user, r.name, r.addr, r.client, r.key
		s.RequestTime = at(r.req)
		if r.expire != 0 {
			s.ExpireTime = at(r.expire)
		}
		if r.closeAt != 0 {
			sessiond.ApplyClose(s, at(r.closeAt), r.reason)
		}
		out = append(out, s)
	}
	return out
}

func testListFilter(t *testing.T, s sessiond.Store) {
	data := listData()
	mustCreate(t, s, data...)
	byID := map[string]*sessiond.Session{}
	for _, d := range data {
		byID[d.ID] = d
	}
	all := []string{"sess-09", "sess-08", "sess-06", "sess-07", "sess-05", "sess-04", "sess-03", "sess-02", "sess-01"}
	tests := []struct {
		name string
		f    sessiond.Filter
		want []string
	}{
		{"none", sessiond.Filter{}, all},
		{"user_id", sessiond.Filter{UserID: "alice"}, []string{"sess-07", "sess-02", "sess-01"}},
		{"user_id that prefixes others", sessiond.Filter{UserID: "al"}, []string{"sess-08"}},
		{"user_id unknown", sessiond.Filter{UserID: "nobody"}, []string{}},
		{"address", sessiond.Filter{Address: "10.0.0.1"}, []string{"sess-09", "sess-03", "sess-01"}},
		{"client is case-sensitive", sessiond.Filter{Client: "web"}, []string{"sess-09", "sess-07", "sess-04", "sess-03", "sess-01"}},
		{"api key", sessiond.Filter{APIKeyID: ptr("k1")}, []string{"sess-08", "sess-03", "sess-01"}},
		{"no api key", sessiond.Filter{APIKeyID: ptr("")}, []string{"sess-09", "sess-07", "sess-02"}},
		{"search user_name", sessiond.Filter{Search: "LIDDELL"}, []string{"sess-07", "sess-02", "sess-01"}},
		{"search user_id", sessiond.Filter{Search: "Bo"}, []string{"sess-04", "sess-03"}},
		{"search id", sessiond.Filter{Search: "SESS-05"}, []string{"sess-05"}},
		{"search address", sessiond.Filter{Search: "192.168"}, []string{"sess-08"}},
		{"search client", sessiond.Filter{Search: "CUR"}, []string{"sess-08"}},
		{"search no match", sessiond.Filter{Search: "zzz"}, []string{}},
		{"active", sessiond.Filter{Active: ptr(true)}, []string{"sess-08", "sess-06", "sess-07", "sess-01"}},
		{"not active", sessiond.Filter{Active: ptr(false)}, []string{"sess-09", "sess-05", "sess-04", "sess-03", "sess-02"}},
		{"state active", sessiond.Filter{State: sessiond.StateActive}, []string{"sess-08", "sess-06", "sess-07", "sess-01"}},
		{"state closed", sessiond.Filter{State: sessiond.StateClosed}, []string{"sess-09", "sess-04"}},
		{"state expired", sessiond.Filter{State: sessiond.StateExpired}, []string{"sess-05", "sess-03", "sess-02"}},
		{"from time, inclusive", sessiond.Filter{FromTime: at(6 * time.Hour)}, []string{"sess-09", "sess-08", "sess-06", "sess-07"}},
		{"to time, inclusive", sessiond.Filter{ToTime: at(3 * time.Hour)}, []string{"sess-03", "sess-02", "sess-01"}},
		{"from and to", sessiond.Filter{FromTime: at(3 * time.Hour), ToTime: at(6 * time.Hour)}, []string{"sess-06", "sess-07", "sess-05", "sess-04", "sess-03"}},
		{"from after to", sessiond.Filter{FromTime: at(6 * time.Hour), ToTime: at(3 * time.Hour)}, []string{}},
		{"user_id within times", sessiond.Filter{UserID: "alice", FromTime: at(2 * time.Hour), ToTime: at(6 * time.Hour)}, []string{"sess-07", "sess-02"}},
		{"user_id and active", sessiond.Filter{UserID: "alice", Active: ptr(true)}, []string{"sess-07", "sess-01"}},
		{"client and not active", sessiond.Filter{Client: "web", Active: ptr(false)}, []string{"sess-09", "sess-04", "sess-03"}},
		{"api key and search", sessiond.Filter{APIKeyID: ptr("k2"), Search: "10.0.0.3"}, []string{"sess-05", "sess-04"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			f.Now, f.IdleTimeout = listNow, listIdle
			// The whole result, without and with the total.
			for _, total := range []bool{false, true} {
				page, err := s.List(t.Context(), f, sessiond.Paging{Take: 100, Total: total})
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if got := ids(page.Data); !slices.Equal(got, tt.want) {
					t.Errorf("List(total=%v) = %v, want %v", total, got, tt.want)
				}
				checkTotal(t, page, total, len(tt.want))
				for _, got := range page.Data {
					checkSession(t, "listed session", got, byID[got.ID])
				}
			}
			// Page by page.
			var got []string
			for skip := 0; skip <= len(tt.want); skip += 2 {
				page, err := s.List(t.Context(), f, sessiond.Paging{Skip: skip, Take: 2})
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				got = append(got, ids(page.Data)...)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List by pages of 2 = %v, want %v", got, tt.want)
			}
		})
	}
}

func checkTotal(t *testing.T, page *sessiond.Page, asked bool, want int) {
	t.Helper()
	if page.Data == nil {
		t.Errorf("Page.Data is nil, want an empty slice")
	}
	switch {
	case !asked && page.Total != nil:
		t.Errorf("Total = %d, want nil when not asked", *page.Total)
	case asked && page.Total == nil:
		t.Errorf("Total = nil, want %d", want)
	case asked && *page.Total != int64(want):
		t.Errorf("Total = %d, want %d", *page.Total, want)
	}
}

func testListOrder(t *testing.T, s sessiond.Store) {
	// Newest open_time first; equal times by id ascending, including ids
	// that prefix one another; times before 1970 sort as older.
	mid := at(time.Hour)
	for _, sess := range []*sessiond.Session{
		active("b", mid), active("ab", mid), active("a", mid), active("a0", mid),
		active("z", at(2*time.Hour)),
		active("y", at(2*time.Hour+time.Millisecond)),
		active("old", time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)),
		active("older", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)),
		active("epoch", time.Unix(0, 0).UTC()),
		active("c", at(-time.Millisecond)),
	} {
		sess.UserID = "same-user"
		mustCreate(t, s, sess)
	}
	want := []string{"y", "z", "a", "a0", "ab", "b", "c", "epoch", "old", "older"}
	for _, f := range []sessiond.Filter{{}, {UserID: "same-user"}} {
		page, err := s.List(t.Context(), f, sessiond.Paging{Take: 100})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := ids(page.Data); !slices.Equal(got, want) {
			t.Errorf("List(%+v) = %v, want %v", f.UserID, got, want)
		}
	}
}

func testListPaging(t *testing.T, s sessiond.Store) {
	var all []string
	for i := range 7 {
		id := fmt.Sprintf("p%d", i)
		mustCreate(t, s, active(id, at(time.Duration(i)*time.Minute)))
		all = append([]string{id}, all...) // newest first
	}
	tests := []struct {
		name string
		p    sessiond.Paging
		want []string
	}{
		{"first page", sessiond.Paging{Take: 3}, all[:3]},
		{"middle page", sessiond.Paging{Skip: 3, Take: 3}, all[3:6]},
		{"last partial page", sessiond.Paging{Skip: 6, Take: 3}, all[6:]},
		{"skip to the end", sessiond.Paging{Skip: 7, Take: 3}, []string{}},
		{"skip past the end", sessiond.Paging{Skip: 100, Take: 3}, []string{}},
		{"take more than there is", sessiond.Paging{Take: 100}, all},
		{"take one", sessiond.Paging{Skip: 2, Take: 1}, all[2:3]},
		{"take zero counts only", sessiond.Paging{Take: 0}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, total := range []bool{false, true} {
				p := tt.p
				p.Total = total
				page, err := s.List(t.Context(), sessiond.Filter{}, p)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if got := ids(page.Data); !slices.Equal(got, tt.want) {
					t.Errorf("List(%+v) = %v, want %v", p, got, tt.want)
				}
				checkTotal(t, page, total, len(all))
			}
		})
	}
	// The total counts matches, not the page.
	page, err := s.List(t.Context(), sessiond.Filter{FromTime: at(2 * time.Minute)}, sessiond.Paging{Skip: 1, Take: 2, Total: true})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := ids(page.Data), all[1:3]; !slices.Equal(got, want) {
		t.Errorf("filtered page = %v, want %v", got, want)
	}
	checkTotal(t, page, true, 5)
}

func testTouch(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	a := active("a", T0)
	b := active("b", T0)
	gone := closed("gone", T0, at(time.Hour), sessiond.ReasonClosed)
	mustCreate(t, s, a, b, gone)

	err := s.Touch(ctx, []sessiond.Touch{
		{ID: "a", Time: at(2 * time.Hour)},
		{ID: "a", Time: at(time.Hour)}, // earlier: ignored
		{ID: "b", Time: at(30 * time.Minute)},
		{ID: "gone", Time: at(5 * time.Hour)},    // inactive: skipped
		{ID: "missing", Time: at(5 * time.Hour)}, // unknown: skipped
	})
	if err != nil {
		t.Fatalf("Touch: %v", err)
	}
	wantA, wantB := a.Clone(), b.Clone()
	wantA.RequestTime, wantB.RequestTime = at(2*time.Hour), at(30*time.Minute)
	checkSession(t, "touched a", mustGet(t, s, "a"), wantA)
	checkSession(t, "touched b", mustGet(t, s, "b"), wantB)
	checkSession(t, "touched closed session", mustGet(t, s, "gone"), gone)
	if _, err := s.Get(ctx, "missing"); sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
		t.Errorf("Touch created the unknown session: Get = %v", err)
	}

	// Touch never lowers request_time.
	if err := s.Touch(ctx, []sessiond.Touch{{ID: "a", Time: at(time.Minute)}}); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	checkSession(t, "a after an earlier touch", mustGet(t, s, "a"), wantA)
	if err := s.Touch(ctx, nil); err != nil {
		t.Errorf("Touch(nil) = %v, want nil", err)
	}

	// The sweep judges by the touched request_time: at +2h30m with a 1h
	// idle timeout, b (last used +30m) is dead and a (+2h) is not.
	got, err := s.CloseExpired(ctx, at(2*time.Hour+30*time.Minute), time.Hour)
	if err != nil {
		t.Fatalf("CloseExpired: %v", err)
	}
	if want := []string{"b"}; !sameIDs(got, want) {
		t.Errorf("CloseExpired after Touch = %v, want %v", got, want)
	}
}

func testCloseExpired(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	// now is not on a round minute or second, so that sessions just alive
	// and just dead share them.
	now, idle := at(10*time.Hour+30*time.Second+500*time.Millisecond), time.Hour
	mk := func(id string, req time.Time, expire time.Time) *sessiond.Session {
		sess := active(id, T0)
		sess.RequestTime, sess.ExpireTime = req, expire
		return sess
	}
	sessions := []*sessiond.Session{
		mk("alive", now.Add(-10*time.Minute), time.Time{}),
		mk("idle-dead", now.Add(-time.Hour-time.Millisecond), time.Time{}),
		mk("idle-boundary", now.Add(-time.Hour), time.Time{}), // not yet dead
		mk("expire-dead", now, now.Add(-time.Millisecond)),
		mk("expire-boundary", now, now), // not yet dead
		mk("both-dead", T0, T0.Add(time.Hour)),
		mk("alive-expiring", now, now.Add(time.Hour)),
		closed("closed", T0, at(time.Hour), sessiond.ReasonClosed),
	}
	mustCreate(t, s, sessions...)

	got, err := s.CloseExpired(ctx, now, idle)
	if err != nil {
		t.Fatalf("CloseExpired: %v", err)
	}
	dead := []string{"idle-dead", "expire-dead", "both-dead"}
	if !sameIDs(got, dead) {
		t.Errorf("CloseExpired = %v, want %v", got, dead)
	}
	for _, orig := range sessions {
		want := orig.Clone()
		if slices.Contains(dead, orig.ID) {
			// Closed at the instant it died, not at the sweep.
			sessiond.ApplyClose(want, orig.Deadline(idle), sessiond.ReasonExpired)
		}
		checkSession(t, orig.ID+" after CloseExpired", mustGet(t, s, orig.ID), want)
	}

	// Closed ones are not closed again.
	if got, err := s.CloseExpired(ctx, now, idle); err != nil || len(got) != 0 {
		t.Errorf("second CloseExpired = %v, %v; want none", got, err)
	}
	// Two hours on, the rest die, each for its own reason.
	later := now.Add(2 * time.Hour)
	got, err = s.CloseExpired(ctx, later, idle)
	if err != nil {
		t.Fatalf("CloseExpired: %v", err)
	}
	if want := []string{"alive", "idle-boundary", "expire-boundary", "alive-expiring"}; !sameIDs(got, want) {
		t.Errorf("CloseExpired two hours later = %v, want %v", got, want)
	}
	// Each at its own deadline: the idle timeout or expire_time, whichever
	// came first.
	for id, died := range map[string]time.Time{
		"alive":           now.Add(-10*time.Minute + idle),
		"idle-boundary":   now,
		"expire-boundary": now,
		"alive-expiring":  now.Add(time.Hour),
	} {
		got := mustGet(t, s, id)
		if got.Active || !got.CloseTime.Equal(died) || !got.RequestTime.Equal(died) || got.CloseReason != sessiond.ReasonExpired {
			t.Errorf("%s: active %v, closed at %v (request_time %v) for %q; want closed at %v for %q",
				id, got.Active, got.CloseTime, got.RequestTime, got.CloseReason, died, sessiond.ReasonExpired)
		}
	}
}

// testCloseExpiredMany closes more sessions than fit one engine batch of
// a small configuration, mixed with live ones.
func testCloseExpiredMany(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	now, idle := at(10*time.Hour+30*time.Second), time.Hour
	var want []string
	for i := range 40 {
		sess := active(fmt.Sprintf("s%02d", i), T0)
		switch i % 4 {
		case 0: // alive, just: idle-dead a few ms later
			sess.RequestTime = now.Add(-idle + time.Duration(i)*time.Millisecond)
		case 1: // idle-dead
			sess.RequestTime = at(time.Duration(i) * time.Minute)
			want = append(want, sess.ID)
		case 2: // expire-dead
			sess.RequestTime = now
			sess.ExpireTime = at(time.Duration(i) * time.Minute)
			want = append(want, sess.ID)
		case 3: // alive with an expire_time ahead
			sess.RequestTime = now
			sess.ExpireTime = now.Add(time.Duration(i) * time.Minute)
		}
		mustCreate(t, s, sess)
	}
	got, err := s.CloseExpired(ctx, now, idle)
	if err != nil {
		t.Fatalf("CloseExpired: %v", err)
	}
	if !sameIDs(got, want) {
		t.Errorf("CloseExpired = %v, want %v", got, want)
	}
	page, err := s.List(ctx, sessiond.Filter{Active: ptr(true), Now: now, IdleTimeout: idle}, sessiond.Paging{Total: true})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkTotal(t, page, true, 20)
}

func testPurge(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	cutoff := at(5 * time.Hour)
	sessions := []*sessiond.Session{
		closed("closed-old", T0, at(time.Hour), sessiond.ReasonClosed),
		closed("expired-old", T0, at(2*time.Hour), sessiond.ReasonExpired),
		closed("at-cutoff", T0, cutoff, sessiond.ReasonForced), // not before: kept
		closed("closed-new", T0, at(6*time.Hour), sessiond.ReasonClosed),
		active("active-old", T0), // dead long ago but not closed: kept
	}
	mustCreate(t, s, sessions...)
	got, err := s.Purge(ctx, cutoff)
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	purged := []string{"closed-old", "expired-old"}
	if !sameIDs(got, purged) {
		t.Errorf("Purge = %v, want %v", got, purged)
	}
	for _, sess := range sessions {
		if slices.Contains(purged, sess.ID) {
			_, err := s.Get(ctx, sess.ID)
			wantCode(t, "Get after Purge", err, sessiond.ENOTFOUND)
			_, err = s.GetByTokenHash(ctx, sess.TokenHash)
			wantCode(t, "GetByTokenHash after Purge", err, sessiond.ENOTFOUND)
			continue
		}
		checkSession(t, sess.ID+" after Purge", mustGet(t, s, sess.ID), sess)
	}
	page, err := s.List(ctx, sessiond.Filter{}, sessiond.Paging{Take: 10})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := ids(page.Data), []string{"active-old", "at-cutoff", "closed-new"}; !sameIDs(got, want) {
		t.Errorf("List after Purge = %v, want %v", got, want)
	}
	if got, err := s.Purge(ctx, cutoff); err != nil || len(got) != 0 {
		t.Errorf("second Purge = %v, %v; want none", got, err)
	}
	// A purged session's id and token hash may be stored again.
	mustCreate(t, s, active("closed-old", at(time.Hour)))
}

func testPurgeMany(t *testing.T, s sessiond.Store) {
	var want []string
	for i := range 30 {
		id := fmt.Sprintf("c%02d", i)
		closeAt := at(time.Duration(i) * time.Minute)
		mustCreate(t, s, closed(id, T0, closeAt, sessiond.ReasonClosed))
		if closeAt.Before(at(20 * time.Minute)) {
			want = append(want, id)
		}
	}
	got, err := s.Purge(t.Context(), at(20*time.Minute))
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if !sameIDs(got, want) {
		t.Errorf("Purge = %v, want %v", got, want)
	}
}

func testAPIKeys(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	keys := []*sessiond.APIKey{
		{ID: "k-late", Name: "Late ✓", SecretHash: tokenHash("k-late"), Created: at(2 * time.Hour)},
		{ID: "k-first", Name: "", SecretHash: tokenHash("k-first"), Created: T0},
		{ID: "k-a-tie", Name: "tie", SecretHash: tokenHash("k-a-tie"), Created: at(2 * time.Hour)},
	}
	list, err := s.ListAPIKeys(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("ListAPIKeys of an empty store = %v, %v; want none", list, err)
	}
	for _, k := range keys {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
		}
	}
	checkKey := func(what string, got, want *sessiond.APIKey) {
		t.Helper()
		if got.ID != want.ID || got.Name != want.Name || string(got.SecretHash) != string(want.SecretHash) || !got.Created.Equal(want.Created) {
			t.Errorf("%s = %+v, want %+v", what, got, want)
		}
	}
	for _, want := range keys {
		got, err := s.GetAPIKey(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetAPIKey(%s): %v", want.ID, err)
		}
		checkKey("GetAPIKey", got, want)
	}

	dup := &sessiond.APIKey{ID: "k-late", Name: "impostor", SecretHash: tokenHash("x"), Created: T0}
	wantCode(t, "CreateAPIKey with an existing id", s.CreateAPIKey(ctx, dup), sessiond.ECONFLICT)
	got, err := s.GetAPIKey(ctx, "k-late")
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	checkKey("key after a conflicting create", got, keys[0])

	list, err = s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	var gotIDs []string
	for _, k := range list {
		gotIDs = append(gotIDs, k.ID)
	}
	if want := []string{"k-first", "k-a-tie", "k-late"}; !slices.Equal(gotIDs, want) {
		t.Errorf("ListAPIKeys = %v, want %v (oldest first, ties by id)", gotIDs, want)
	}

	if err := s.DeleteAPIKey(ctx, "k-first"); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	_, err = s.GetAPIKey(ctx, "k-first")
	wantCode(t, "GetAPIKey after delete", err, sessiond.ENOTFOUND)
	wantCode(t, "second DeleteAPIKey", s.DeleteAPIKey(ctx, "k-first"), sessiond.ENOTFOUND)
	list, err = s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	if len(list) != 2 {
		t.Errorf("ListAPIKeys after delete has %d keys, want 2", len(list))
	}
}

func testPing(t *testing.T, s sessiond.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

// testTouchMany: one Touch of more sessions than an engine may write in
// one statement (engines chunk it): every session is touched, and one
// given twice in the batch gets the later time.
func testTouchMany(t *testing.T, s sessiond.Store) {
	ctx := t.Context()
	const n = 6000
	touches := make([]sessiond.Touch, 0, n+1)
	for i := range n {
		id := fmt.Sprintf("m%05d", i)
		sess := active(id, T0)
		sess.UserID, sess.User, sess.Data = "", nil, nil
		mustCreate(t, s, sess)
		touches = append(touches, sessiond.Touch{ID: id, Time: at(time.Duration(i) * time.Millisecond)})
	}
	touches = append(touches, sessiond.Touch{ID: "m00000", Time: at(time.Hour)})
	if err := s.Touch(ctx, touches); err != nil {
		t.Fatalf("Touch of %d: %v", len(touches), err)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		id := fmt.Sprintf("m%05d", i)
		want := at(time.Duration(i) * time.Millisecond)
		if i == 0 {
			want = at(time.Hour)
		}
		if got := mustGet(t, s, id).RequestTime; !got.Equal(want) {
			t.Errorf("%s: request_time %v, want %v", id, got, want)
		}
	}
}
