package sessiond_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/embedded"
)

func TestDataLimit(t *testing.T) {
	e := newEnv(t, sessiond.Config{DataLimit: 100})
	ctx := t.Context()
	str := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`) }

	// At the limit: fine; one byte more, in data, user or both: ETOOLARGE.
	s, _ := e.open(t, sessiond.OpenRequest{UserID: "u", User: str(40), Data: str(60)})
	for _, req := range []sessiond.OpenRequest{
		{UserID: "u", Data: str(101)},
		{UserID: "u", User: str(101)},
		{UserID: "u", User: str(41), Data: str(60)},
	} {
		_, _, err := e.svc.Open(ctx, req)
		wantCode(t, "Open over the limit", err, sessiond.ETOOLARGE)
	}
	// StoreData and UpdateUser count what the session keeps of the other.
	_, err := e.svc.StoreData(ctx, s.ID, str(61))
	wantCode(t, "StoreData over the limit with the user", err, sessiond.ETOOLARGE)
	_, err = e.svc.UpdateUser(ctx, s.ID, str(41))
	wantCode(t, "UpdateUser over the limit with the data", err, sessiond.ETOOLARGE)
	_, err = e.svc.StoreData(ctx, s.ID, str(200))
	wantCode(t, "StoreData over the limit alone", err, sessiond.ETOOLARGE)
	if got := e.get(t, s.ID); string(got.Data) != string(str(60)) || string(got.User) != string(str(40)) {
		t.Errorf("refused changes changed the session: user %s, data %s", got.User, got.Data)
	}
	// Making room in one makes room for the other.
	if _, err := e.svc.UpdateUser(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StoreData(ctx, s.ID, str(100)); err != nil {
		t.Errorf("StoreData at the limit with no user: %v", err)
	}

	// The default is 64 KiB.
	d := newEnv(t, sessiond.Config{})
	if got := d.svc.Config().DataLimit; got != 64<<10 {
		t.Errorf("default DataLimit = %d, want %d", got, 64<<10)
	}
	_, _, err = d.svc.Open(ctx, sessiond.OpenRequest{Data: str(64<<10 + 1)})
	wantCode(t, "Open over the default limit", err, sessiond.ETOOLARGE)
}

func TestInvalidText(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	ctx := t.Context()
	s, _ := e.open(t, sessiond.OpenRequest{UserID: "u"})

	for _, req := range []sessiond.OpenRequest{
		{UserID: "u\xff"},
		{UserName: "\xc3"},
		{Address: "\xed\xa0\x80"}, // a surrogate encoded in UTF-8
		{Client: "a\x80b"},
		{APIKeyID: "\xff"},
		{Data: json.RawMessage("\"\xff\"")},
		{User: json.RawMessage(`{"name":"` + "\xe2\x82" + `"}`)},
	} {
		_, _, err := e.svc.Open(ctx, req)
		wantCode(t, fmt.Sprintf("Open(%+q)", req), err, sessiond.EINVALID)
	}
	bad := []string{
		`"\ud800"`, `"\udc00"`, `"a\uD83Dx"`, `"\ud83d\u0041"`, `["\ude00\ud83d"]`, `{"\udfff":1}`, `"\ud83d"`,
	}
	for _, v := range bad {
		_, err := e.svc.StoreData(ctx, s.ID, json.RawMessage(v))
		wantCode(t, "StoreData("+v+")", err, sessiond.EINVALID)
		_, err = e.svc.UpdateUser(ctx, s.ID, json.RawMessage(v))
		wantCode(t, "UpdateUser("+v+")", err, sessiond.EINVALID)
		_, _, err = e.svc.Open(ctx, sessiond.OpenRequest{Data: json.RawMessage(v)})
		wantCode(t, "Open(data "+v+")", err, sessiond.EINVALID)
	}
	good := []string{
		`"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\\ud800"`, `"\\\\ud800"`, `"é ✓ 😀"`, `"\u00e9\"\\"`, `{"a":"\n"}`, `12`, `null`,
	}
	for _, v := range good {
		if _, err := e.svc.StoreData(ctx, s.ID, json.RawMessage(v)); err != nil {
			t.Errorf("StoreData(%s): %v", v, err)
		}
	}
	_, err := e.svc.Get(ctx, "\xff")
	wantCode(t, "Get(invalid id)", err, sessiond.EINVALID)
	_, err = e.svc.CloseSession(ctx, "\xff", sessiond.ReasonClosed)
	wantCode(t, "CloseSession(invalid id)", err, sessiond.EINVALID)
}

func TestValidText(t *testing.T) {
	for in, want := range map[string]bool{
		``: true, `\`: true, `"\u12"`: true, `"\ud800\u12"`: false, "\xff": false,
		`"\ud800\udc00"`: true, `"\udbff\udfff"`: true, `"\ud800\ud800"`: false, `"\ud800\\udc00"`: false,
	} {
		if got := sessiond.ValidText([]byte(in)); got != want {
			t.Errorf("ValidText(%q) = %v, want %v", in, got, want)
		}
	}
}

// activeOf returns the ids of the alive sessions of user_id and key.
func activeOf(t *testing.T, e *env, key, user string) []string {
	t.Helper()
	page, err := e.svc.List(t.Context(), sessiond.Filter{UserID: user, APIKeyID: &key, Active: ptr(true)}, sessiond.Paging{Take: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return ids(page.Data)
}

func ptr[T any](v T) *T { return &v }

func TestUserLimitClosesLeastRecentlyUsed(t *testing.T) {
	e := newEnv(t, sessiond.Config{MaxUserSessions: 3})
	ctx := t.Context()
	var open []*sessiond.Session
	for range 3 {
		s, _ := e.open(t, sessiond.OpenRequest{UserID: "u", APIKeyID: "k"})
		open = append(open, s)
		e.clk.Add(time.Second)
	}
	// The oldest is used (a pending touch): the second is now the least
	// recently used.
	e.svc.Touch(open[0].ID)
	// Other keys, other users and sessions without a user are apart.
	for _, req := range []sessiond.OpenRequest{{UserID: "u", APIKeyID: "k2"}, {UserID: "u"}, {UserID: "v", APIKeyID: "k"}, {APIKeyID: "k"}, {APIKeyID: "k"}, {APIKeyID: "k"}, {APIKeyID: "k"}} {
		e.open(t, req)
	}
	e.clk.Add(time.Second)
	fourth, _ := e.open(t, sessiond.OpenRequest{UserID: "u", APIKeyID: "k"})

	got := e.get(t, open[1].ID)
	if got.Active || got.CloseReason != sessiond.ReasonEvicted {
		t.Errorf("least recently used session: active %v, reason %q; want closed, %q", got.Active, got.CloseReason, sessiond.ReasonEvicted)
	}
	want := []string{fourth.ID, open[2].ID, open[0].ID}
	if got := activeOf(t, e, "k", "u"); !sameSet(got, want) {
		t.Errorf("open sessions = %v, want %v", got, want)
	}
	if ended := e.endedIDs(); len(ended) != 1 || ended[0] != open[1].ID {
		t.Errorf("ended = %v, want [%s]", ended, open[1].ID)
	}
	for _, k := range []string{"k2", ""} {
		if got := activeOf(t, e, k, "u"); len(got) != 1 {
			t.Errorf("key %q: %d open sessions, want 1", k, len(got))
		}
	}

	// Dead sessions do not count: once the oldest two die, two opens close
	// nothing.
	_ = ctx
	e.svc.StoreData(ctx, fourth.ID, nil)
	e.svc.StoreData(ctx, open[0].ID, nil)
	e.clk.Add(24*time.Hour - time.Second)
	e.open(t, sessiond.OpenRequest{UserID: "u", APIKeyID: "k"})
	if got := e.get(t, open[0].ID); got.CloseReason == sessiond.ReasonEvicted {
		t.Errorf("an alive session was evicted while a dead one held its place")
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestUserLimitConcurrentOpens opens many sessions of one user at once,
// over the embedded engine (durable writes, real concurrency): the user
// ends with exactly the limit open.
func TestUserLimitConcurrentOpens(t *testing.T) {
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const limit, opens = 5, 60
	e := newEnvOver(t, st, sessiond.Config{MaxUserSessions: limit})
	var wg sync.WaitGroup
	errs := make(chan error, opens)
	for range opens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := e.svc.Open(t.Context(), sessiond.OpenRequest{UserID: "u", APIKeyID: "k"}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := activeOf(t, e, "k", "u"); len(got) != limit {
		t.Errorf("%d open sessions after %d concurrent opens, want the limit %d", len(got), opens, limit)
	}
	page, err := e.svc.List(t.Context(), sessiond.Filter{UserID: "u"}, sessiond.Paging{Take: 1000})
	if err != nil {
		t.Fatal(err)
	}
	evicted := 0
	for _, s := range page.Data {
		if s.CloseReason == sessiond.ReasonEvicted {
			evicted++
		}
	}
	if evicted != opens-limit {
		t.Errorf("%d sessions evicted, want %d", evicted, opens-limit)
	}
}
