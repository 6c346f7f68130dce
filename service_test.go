package sessiond_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/clock"
	"sessiond/store/memory"
)

// t0 is the fake clock's start in every test of this package.
var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// env is a Service over a real engine and a fake clock, recording every
// call of the OnEnd hook.
type env struct {
	svc   *sessiond.Service
	store sessiond.Store
	clk   *clock.Fake

	mu    sync.Mutex
	ended [][]string
}

// newEnv returns an env over a fresh memory store.
func newEnv(t *testing.T, cfg sessiond.Config) *env {
	t.Helper()
	return newEnvOver(t, memory.New(), cfg)
}

func newEnvOver(t *testing.T, store sessiond.Store, cfg sessiond.Config) *env {
	t.Helper()
	e := &env{store: store, clk: clock.NewFake(t0)}
	e.svc = sessiond.NewService(store, e.clk, cfg, nil)
	e.svc.OnEnd(func(ids []string) {
		e.mu.Lock()
		e.ended = append(e.ended, slices.Clone(ids))
		e.mu.Unlock()
	})
	return e
}

// endedCalls returns the OnEnd calls so far, each call's ids sorted.
func (e *env) endedCalls() [][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([][]string, len(e.ended))
	for i, ids := range e.ended {
		out[i] = slices.Sorted(slices.Values(ids))
	}
	return out
}

// endedIDs returns every id the OnEnd hook was called with, sorted.
func (e *env) endedIDs() []string {
	var all []string
	for _, ids := range e.endedCalls() {
		all = append(all, ids...)
	}
	slices.Sort(all)
	return all
}

func (e *env) open(t *testing.T, req sessiond.OpenRequest) (*sessiond.Session, string) {
	t.Helper()
	sess, token, err := e.svc.Open(t.Context(), req)
	if err != nil {
		t.Fatalf("Open(%+v): %v", req, err)
	}
	return sess, token
}

// get returns the session as the Service shows it.
func (e *env) get(t *testing.T, id string) *sessiond.Session {
	t.Helper()
	sess, err := e.svc.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return sess
}

// stored returns the session as the engine holds it.
func (e *env) stored(t *testing.T, id string) *sessiond.Session {
	t.Helper()
	sess, err := e.store.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("store.Get(%s): %v", id, err)
	}
	return sess
}

func (e *env) createKey(t *testing.T, name string) (*sessiond.APIKey, string) {
	t.Helper()
	k, secret, err := e.svc.CreateAPIKey(t.Context(), name)
	if err != nil {
		t.Fatalf("CreateAPIKey(%q): %v", name, err)
	}
	return k, secret
}

func (e *env) authenticate(t *testing.T, c sessiond.Credentials) *sessiond.Caller {
	t.Helper()
	caller, err := e.svc.Authenticate(t.Context(), c)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return caller
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := sessiond.ErrorCode(err); got != code {
		t.Errorf("%s: error code = %q (%v), want %q", what, got, err, code)
	}
}

func ids(sessions []*sessiond.Session) []string {
	out := make([]string, len(sessions))
	for i, s := range sessions {
		out[i] = s.ID
	}
	return out
}

// ---- Open ----

func TestOpen(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	req := sessiond.OpenRequest{
		UserID:   "u1",
		UserName: "Alice",
		Address:  "10.0.0.1",
		Client:   "browser",
		User:     json.RawMessage(`{"roles":["admin"]}`),
		Data:     json.RawMessage(`[1,2,3]`),
		APIKeyID: "key-1",
	}
	sess, _ := e.open(t, req)

	want := &sessiond.Session{
		ID:          sess.ID,
		UserID:      "u1",
		UserName:    "Alice",
		Active:      true,
		OpenTime:    t0,
		RequestTime: t0,
		Address:     "10.0.0.1",
		Client:      "browser",
		User:        json.RawMessage(`{"roles":["admin"]}`),
		Data:        json.RawMessage(`[1,2,3]`),
		APIKeyID:    "key-1",
		TokenHash:   sess.TokenHash,
	}
	if !reflect.DeepEqual(sess, want) {
		t.Errorf("Open returned\n%+v\nwant\n%+v", sess, want)
	}
	if !hexID.MatchString(sess.ID) {
		t.Errorf("id = %q, want 32 lowercase hex characters", sess.ID)
	}
	if got := e.get(t, sess.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("Get after Open =\n%+v\nwant\n%+v", got, want)
	}
}

func TestOpenToken(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	sess, token := e.open(t, sessiond.OpenRequest{})

	// At least 128 bits: rand.Text gives base32 (5 bits a character).
	if len(token) < 26 {
		t.Errorf("token %d characters long, want at least 26 (128 bits of base32)", len(token))
	}
	if token == sess.ID {
		t.Errorf("token equals the session id")
	}
	stored := e.stored(t, sess.ID)
	if want := sha256.Sum256([]byte(token)); !bytes.Equal(stored.TokenHash, want[:]) {
		t.Errorf("stored token hash = %x, want SHA-256 of the token %x", stored.TokenHash, want)
	}
	if !sessiond.SecretMatches(token, stored.TokenHash) {
		t.Errorf("SecretMatches(token, stored hash) = false, want true")
	}
	if sessiond.SecretMatches(token+"x", stored.TokenHash) {
		t.Errorf("SecretMatches(other token, stored hash) = true, want false")
	}
	if bytes.Contains(stored.TokenHash, []byte(token)) {
		t.Errorf("the token itself is stored")
	}
}

func TestOpenIDsAndTokensDistinct(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	seenIDs, seenTokens := map[string]bool{}, map[string]bool{}
	for range 50 {
		sess, token := e.open(t, sessiond.OpenRequest{})
		if seenIDs[sess.ID] {
			t.Fatalf("id %s given twice", sess.ID)
		}
		if seenTokens[token] {
			t.Fatalf("token given twice")
		}
		seenIDs[sess.ID], seenTokens[token] = true, true
	}
}

func TestOpenExpiresIn(t *testing.T) {
	tests := []struct {
		name       string
		expiresIn  time.Duration
		wantExpire time.Time // zero: none
		wantCode   string
	}{
		{name: "zero means idle timeout only", expiresIn: 0},
		{name: "one hour", expiresIn: time.Hour, wantExpire: t0.Add(time.Hour)},
		{name: "exactly the maximum", expiresIn: 48 * time.Hour, wantExpire: t0.Add(48 * time.Hour)},
		{name: "above the maximum is clamped", expiresIn: 1000 * time.Hour, wantExpire: t0.Add(48 * time.Hour)},
		{name: "negative is invalid", expiresIn: -time.Second, wantCode: sessiond.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sessiond.Config{MaxExpiresIn: 48 * time.Hour})
			sess, token, err := e.svc.Open(t.Context(), sessiond.OpenRequest{ExpiresIn: tt.expiresIn})
			if tt.wantCode != "" {
				wantCode(t, "Open", err, tt.wantCode)
				if sess != nil || token != "" {
					t.Errorf("Open failed but returned session %v and a token", sess)
				}
				page, err := e.svc.List(t.Context(), sessiond.Filter{}, sessiond.Paging{Total: true})
				if err != nil {
					t.Fatal(err)
				}
				if *page.Total != 0 {
					t.Errorf("a failed Open stored %d sessions, want 0", *page.Total)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !sess.ExpireTime.Equal(tt.wantExpire) {
				t.Errorf("ExpireTime = %v, want %v", sess.ExpireTime, tt.wantExpire)
			}
			if got := e.stored(t, sess.ID).ExpireTime; !got.Equal(tt.wantExpire) {
				t.Errorf("stored ExpireTime = %v, want %v", got, tt.wantExpire)
			}
		})
	}
}

func TestOpenNullUserAndData(t *testing.T) {
	tests := []struct {
		name  string
		value json.RawMessage
		want  json.RawMessage
	}{
		{name: "absent", value: nil, want: nil},
		{name: "empty", value: json.RawMessage(""), want: nil},
		{name: "JSON null", value: json.RawMessage("null"), want: nil},
		{name: "string", value: json.RawMessage(`"x"`), want: json.RawMessage(`"x"`)},
		{name: "zero", value: json.RawMessage(`0`), want: json.RawMessage(`0`)},
		{name: "false", value: json.RawMessage(`false`), want: json.RawMessage(`false`)},
		{name: "empty array", value: json.RawMessage(`[]`), want: json.RawMessage(`[]`)},
		{name: "empty object", value: json.RawMessage(`{}`), want: json.RawMessage(`{}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sessiond.Config{})
			sess, _ := e.open(t, sessiond.OpenRequest{User: tt.value, Data: tt.value})
			got := e.get(t, sess.ID)
			if !reflect.DeepEqual(got.User, tt.want) {
				t.Errorf("User = %#v, want %#v", got.User, tt.want)
			}
			if !reflect.DeepEqual(got.Data, tt.want) {
				t.Errorf("Data = %#v, want %#v", got.Data, tt.want)
			}
		})
	}
}

// ---- expiry ----

func TestIdleExpiryBoundary(t *testing.T) {
	tests := []struct {
		name      string
		after     time.Duration
		wantAlive bool
	}{
		{name: "just opened", after: 0, wantAlive: true},
		{name: "1ms before idle timeout", after: time.Hour - time.Millisecond, wantAlive: true},
		{name: "exactly at idle timeout", after: time.Hour, wantAlive: true},
		{name: "1ms after idle timeout", after: time.Hour + time.Millisecond, wantAlive: false},
		{name: "long after", after: 100 * time.Hour, wantAlive: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
			sess, token := e.open(t, sessiond.OpenRequest{UserID: "u", User: json.RawMessage(`{"a":1}`), Data: json.RawMessage(`{"b":2}`)})
			e.clk.Add(tt.after)
			checkAliveOrExpired(t, e, sess.ID, token, tt.wantAlive, t0.Add(time.Hour))
		})
	}
}

func TestExpireTimeBoundary(t *testing.T) {
	tests := []struct {
		name      string
		after     time.Duration
		wantAlive bool
	}{
		{name: "1ms before expire_time", after: 10*time.Minute - time.Millisecond, wantAlive: true},
		{name: "exactly at expire_time", after: 10 * time.Minute, wantAlive: true},
		{name: "1ms after expire_time", after: 10*time.Minute + time.Millisecond, wantAlive: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
			sess, token := e.open(t, sessiond.OpenRequest{ExpiresIn: 10 * time.Minute, User: json.RawMessage(`1`), Data: json.RawMessage(`2`)})
			e.clk.Add(tt.after)
			checkAliveOrExpired(t, e, sess.ID, token, tt.wantAlive, t0.Add(10*time.Minute))
		})
	}
}

func TestExpireTimeNotExtendedByUse(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, token := e.open(t, sessiond.OpenRequest{ExpiresIn: 10 * time.Minute})
	e.clk.Add(9 * time.Minute)
	if _, err := e.svc.StoreData(t.Context(), sess.ID, json.RawMessage(`1`)); err != nil {
		t.Fatalf("StoreData: %v", err)
	}
	e.authenticate(t, sessiond.Credentials{Token: token}) // touches
	e.clk.Add(time.Minute + time.Millisecond)
	checkAliveOrExpired(t, e, sess.ID, token, false, t0.Add(10*time.Minute))
}

// checkAliveOrExpired checks every way the Service shows a session that is
// alive, or dead but not yet swept (which must look closed at deadline).
func checkAliveOrExpired(t *testing.T, e *env, id, token string, wantAlive bool, deadline time.Time) {
	t.Helper()
	got := e.get(t, id)
	if got.Active != wantAlive {
		t.Fatalf("Get: Active = %v, want %v", got.Active, wantAlive)
	}
	_, authErr := e.svc.Authenticate(t.Context(), sessiond.Credentials{Token: token})
	if wantAlive {
		if !got.CloseTime.IsZero() || got.CloseReason != "" {
			t.Errorf("alive session: CloseTime = %v, CloseReason = %q, want zero", got.CloseTime, got.CloseReason)
		}
		if authErr != nil {
			t.Errorf("Authenticate with the token of an alive session: %v", authErr)
		}
		return
	}
	if !got.CloseTime.Equal(deadline) {
		t.Errorf("dead session: CloseTime = %v, want its deadline %v", got.CloseTime, deadline)
	}
	if got.CloseReason != sessiond.ReasonExpired {
		t.Errorf("dead session: CloseReason = %q, want %q", got.CloseReason, sessiond.ReasonExpired)
	}
	if got.User != nil || got.Data != nil {
		t.Errorf("dead session: User = %s, Data = %s, want both nil", got.User, got.Data)
	}
	if st := got.State(e.svc.Now(), e.svc.Config().IdleTimeout); st != sessiond.StateExpired {
		t.Errorf("dead session: State = %q, want %q", st, sessiond.StateExpired)
	}
	wantCode(t, "Authenticate with the token of a dead session", authErr, sessiond.EUNAUTHORIZED)
	// Not yet swept: the engine still holds it active.
	if !e.stored(t, id).Active {
		t.Errorf("the engine closed the session before any sweep")
	}
}

func TestListExcludesDeadSessions(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	old, _ := e.open(t, sessiond.OpenRequest{UserID: "old"})
	e.clk.Add(30 * time.Minute)
	young, _ := e.open(t, sessiond.OpenRequest{UserID: "young"})
	e.clk.Add(45 * time.Minute) // old is dead (75m idle), young alive (45m)

	yes, no := true, false
	tests := []struct {
		name       string
		filter     sessiond.Filter
		want       []string
		wantActive bool
	}{
		{name: "active", filter: sessiond.Filter{Active: &yes}, want: []string{young.ID}, wantActive: true},
		{name: "not active", filter: sessiond.Filter{Active: &no}, want: []string{old.ID}, wantActive: false},
		{name: "state active", filter: sessiond.Filter{State: sessiond.StateActive}, want: []string{young.ID}, wantActive: true},
		{name: "state expired", filter: sessiond.Filter{State: sessiond.StateExpired}, want: []string{old.ID}, wantActive: false},
		{name: "state closed", filter: sessiond.Filter{State: sessiond.StateClosed}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := e.svc.List(t.Context(), tt.filter, sessiond.Paging{})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := ids(page.Data); !slices.Equal(got, tt.want) {
				t.Fatalf("List ids = %v, want %v", got, tt.want)
			}
			for _, s := range page.Data {
				if s.Active != tt.wantActive {
					t.Errorf("session %s shown Active = %v, want %v", s.ID, s.Active, tt.wantActive)
				}
			}
		})
	}
}

// ---- changing ----

func TestStoreDataAndUpdateUser(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{Data: json.RawMessage(`1`), User: json.RawMessage(`2`)})
	e.clk.Add(10 * time.Minute)

	got, err := e.svc.StoreData(t.Context(), sess.ID, json.RawMessage(`{"k":"v"}`))
	if err != nil {
		t.Fatalf("StoreData: %v", err)
	}
	if string(got.Data) != `{"k":"v"}` || string(got.User) != `2` {
		t.Errorf("after StoreData: Data = %s, User = %s, want {\"k\":\"v\"} and 2", got.Data, got.User)
	}
	if !got.RequestTime.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("StoreData: RequestTime = %v, want %v", got.RequestTime, t0.Add(10*time.Minute))
	}

	e.clk.Add(10 * time.Minute)
	got, err = e.svc.UpdateUser(t.Context(), sess.ID, json.RawMessage(`null`))
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if got.User != nil || string(got.Data) != `{"k":"v"}` {
		t.Errorf("after UpdateUser(null): User = %s, Data = %s, want nil and {\"k\":\"v\"}", got.User, got.Data)
	}
	if !got.RequestTime.Equal(t0.Add(20 * time.Minute)) {
		t.Errorf("UpdateUser: RequestTime = %v, want %v", got.RequestTime, t0.Add(20*time.Minute))
	}
	if stored := e.stored(t, sess.ID); !reflect.DeepEqual(stored, got) {
		t.Errorf("stored =\n%+v\nreturned =\n%+v", stored, got)
	}
}

func TestChangeRefusedWhenNotAlive(t *testing.T) {
	ops := []struct {
		name string
		do   func(ctx context.Context, svc *sessiond.Service, id string) (*sessiond.Session, error)
	}{
		{name: "StoreData", do: func(ctx context.Context, svc *sessiond.Service, id string) (*sessiond.Session, error) {
			return svc.StoreData(ctx, id, json.RawMessage(`"new"`))
		}},
		{name: "UpdateUser", do: func(ctx context.Context, svc *sessiond.Service, id string) (*sessiond.Session, error) {
			return svc.UpdateUser(ctx, id, json.RawMessage(`"new"`))
		}},
	}
	states := []struct {
		name    string
		prepare func(t *testing.T, e *env, id string)
	}{
		{name: "dead, not swept", prepare: func(t *testing.T, e *env, id string) { e.clk.Add(time.Hour + time.Millisecond) }},
		{name: "closed", prepare: func(t *testing.T, e *env, id string) {
			if _, err := e.svc.CloseSession(t.Context(), id, sessiond.ReasonClosed); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "swept", prepare: func(t *testing.T, e *env, id string) {
			e.clk.Add(2 * time.Hour)
			e.svc.Sweep(t.Context())
		}},
	}
	for _, op := range ops {
		for _, st := range states {
			t.Run(op.name+"/"+st.name, func(t *testing.T) {
				e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
				sess, _ := e.open(t, sessiond.OpenRequest{User: json.RawMessage(`"old"`), Data: json.RawMessage(`"old"`)})
				st.prepare(t, e, sess.ID)
				before := e.stored(t, sess.ID)
				e.clk.Add(time.Minute)

				got, err := op.do(t.Context(), e.svc, sess.ID)
				wantCode(t, op.name, err, sessiond.ECLOSED)
				if got != nil {
					t.Errorf("%s returned %+v with its error, want nil", op.name, got)
				}
				if after := e.stored(t, sess.ID); !reflect.DeepEqual(after, before) {
					t.Errorf("refused %s changed the session:\nbefore %+v\nafter  %+v", op.name, before, after)
				}
			})
		}
	}
}

func TestChangeBadID(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	tests := []struct {
		name string
		id   string
		want string
	}{
		{name: "empty", id: "", want: sessiond.EINVALID},
		{name: "unknown", id: "0123456789abcdef0123456789abcdef", want: sessiond.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.Get(t.Context(), tt.id)
			wantCode(t, "Get", err, tt.want)
			_, err = e.svc.StoreData(t.Context(), tt.id, json.RawMessage(`1`))
			wantCode(t, "StoreData", err, tt.want)
			_, err = e.svc.UpdateUser(t.Context(), tt.id, json.RawMessage(`1`))
			wantCode(t, "UpdateUser", err, tt.want)
			_, err = e.svc.CloseSession(t.Context(), tt.id, sessiond.ReasonClosed)
			wantCode(t, "CloseSession", err, tt.want)
			_, err = e.svc.Delete(t.Context(), tt.id)
			wantCode(t, "Delete", err, tt.want)
		})
	}
	if got := e.endedCalls(); len(got) != 0 {
		t.Errorf("OnEnd called %v for sessions that do not exist", got)
	}
}

// ---- touches ----

func TestTouchExtendsLife(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	touched, _ := e.open(t, sessiond.OpenRequest{})
	untouched, _ := e.open(t, sessiond.OpenRequest{})

	e.clk.Add(50 * time.Minute)
	e.svc.Touch(touched.ID)
	if err := e.svc.FlushTouches(t.Context()); err != nil {
		t.Fatalf("FlushTouches: %v", err)
	}
	if got := e.stored(t, touched.ID).RequestTime; !got.Equal(t0.Add(50 * time.Minute)) {
		t.Errorf("stored RequestTime after flush = %v, want %v", got, t0.Add(50*time.Minute))
	}
	e.clk.Add(50 * time.Minute) // 100m after open, 50m after the touch

	if got := e.get(t, touched.ID); !got.Active {
		t.Errorf("touched session: Active = false, want true")
	}
	if got := e.get(t, untouched.ID); got.Active {
		t.Errorf("untouched session: Active = true, want false")
	}
	if _, err := e.svc.StoreData(t.Context(), touched.ID, json.RawMessage(`1`)); err != nil {
		t.Errorf("StoreData on touched session: %v", err)
	}
}

func TestTouchNeverMovesBack(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(30 * time.Minute)
	e.svc.Touch(sess.ID)
	e.clk.Set(t0.Add(10 * time.Minute)) // a clock step back must not undo the touch
	e.svc.Touch(sess.ID)
	if got := e.get(t, sess.ID).RequestTime; !got.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("RequestTime = %v, want %v", got, t0.Add(30*time.Minute))
	}
}

func TestPendingTouchCountsForLiveness(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, token := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(50 * time.Minute)
	e.svc.Touch(sess.ID) // not flushed
	e.clk.Add(50 * time.Minute)

	if got := e.stored(t, sess.ID).RequestTime; !got.Equal(t0) {
		t.Fatalf("stored RequestTime = %v, want %v (touch not flushed yet)", got, t0)
	}
	got := e.get(t, sess.ID)
	if !got.Active {
		t.Errorf("Get: Active = false, want true (pending touch keeps it alive)")
	}
	if !got.RequestTime.Equal(t0.Add(50 * time.Minute)) {
		t.Errorf("Get: RequestTime = %v, want the pending touch %v", got.RequestTime, t0.Add(50*time.Minute))
	}
	if _, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{Token: token}); err != nil {
		t.Errorf("Authenticate: %v, want the pending touch to keep the token valid", err)
	}
	if _, err := e.svc.StoreData(t.Context(), sess.ID, json.RawMessage(`1`)); err != nil {
		t.Errorf("StoreData: %v, want the pending touch to keep it alive", err)
	}
}

// Verify and SessionByToken see this instance's unflushed touches: both to
// keep the token alive, SessionByToken also in the request_time it shows
// (its own touch, pending too). Verify applies them only when the stored
// time alone says idle.
func TestPendingTouchCountsForTokens(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	a, _ := e.createKey(t, "a")
	caller := &sessiond.Caller{APIKeyID: a.ID}
	sess, token := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID})
	e.clk.Add(10 * time.Minute)
	e.svc.Touch(sess.ID) // not flushed
	e.clk.Add(10 * time.Minute)
	got, err := e.svc.SessionByToken(t.Context(), caller, token) // alive by the stored time alone
	if err != nil {
		t.Fatalf("SessionByToken: %v", err)
	}
	if want := t0.Add(20 * time.Minute); !got.RequestTime.Equal(want) {
		t.Errorf("SessionByToken: RequestTime = %v, want its own pending touch %v", got.RequestTime, want)
	}

	e.clk.Add(50 * time.Minute) // idle by the stored time, not by the touch at +20m
	if ok, err := e.svc.VerifyToken(t.Context(), caller, token); err != nil || !ok {
		t.Errorf("VerifyToken = %v, %v; want true (the pending touch keeps it alive)", ok, err)
	}
	e.clk.Add(61 * time.Minute)
	if ok, err := e.svc.VerifyToken(t.Context(), caller, token); err != nil || ok {
		t.Errorf("VerifyToken after the idle timeout = %v, %v; want false", ok, err)
	}
}

// The engine judges Active and State from stored request times, so List
// writes pending touches first: a session kept alive only by an unflushed
// touch is listed as alive, as Get shows it.
func TestListCountsPendingTouches(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(50 * time.Minute)
	e.svc.Touch(sess.ID) // not flushed
	e.clk.Add(50 * time.Minute)

	yes := true
	page, err := e.svc.List(t.Context(), sessiond.Filter{Active: &yes}, sessiond.Paging{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := ids(page.Data), []string{sess.ID}; !slices.Equal(got, want) {
		t.Errorf("List(active) ids = %v, want %v (Get shows it active: %v)", got, want, e.get(t, sess.ID).Active)
	}
}

// flakyStore is a memory store whose Touch fails while fail is set. onTouch,
// if set, runs inside Touch before it answers.
type flakyStore struct {
	*memory.Store
	fail    bool
	onTouch func()
}

var errDiskFull = errors.New("disk full")

func (f *flakyStore) Touch(ctx context.Context, touches []sessiond.Touch) error {
	if f.onTouch != nil {
		f.onTouch()
	}
	if f.fail {
		return errDiskFull
	}
	return f.Store.Touch(ctx, touches)
}

func TestFlushTouchesKeepsTouchesOnFailure(t *testing.T) {
	store := &flakyStore{Store: memory.New(), fail: true}
	e := newEnvOver(t, store, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(10 * time.Minute)
	e.svc.Touch(sess.ID)

	if err := e.svc.FlushTouches(t.Context()); !errors.Is(err, errDiskFull) {
		t.Fatalf("FlushTouches = %v, want the store's error %v", err, errDiskFull)
	}
	if got := e.stored(t, sess.ID).RequestTime; !got.Equal(t0) {
		t.Errorf("stored RequestTime after failed flush = %v, want %v", got, t0)
	}
	if got := e.get(t, sess.ID).RequestTime; !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("Get after failed flush: RequestTime = %v, want the kept touch %v", got, t0.Add(10*time.Minute))
	}

	store.fail = false
	if err := e.svc.FlushTouches(t.Context()); err != nil {
		t.Fatalf("FlushTouches: %v", err)
	}
	if got := e.stored(t, sess.ID).RequestTime; !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("stored RequestTime after next flush = %v, want %v", got, t0.Add(10*time.Minute))
	}
}

func TestFlushTouchesFailureKeepsNewerTouch(t *testing.T) {
	store := &flakyStore{Store: memory.New(), fail: true}
	e := newEnvOver(t, store, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(10 * time.Minute)
	e.svc.Touch(sess.ID)
	// A newer touch arrives while the failing write is in flight.
	store.onTouch = func() {
		store.onTouch = nil
		e.clk.Add(5 * time.Minute)
		e.svc.Touch(sess.ID)
	}
	if err := e.svc.FlushTouches(t.Context()); err == nil {
		t.Fatal("FlushTouches = nil, want the store's error")
	}
	store.fail = false
	if err := e.svc.FlushTouches(t.Context()); err != nil {
		t.Fatalf("FlushTouches: %v", err)
	}
	if got := e.stored(t, sess.ID).RequestTime; !got.Equal(t0.Add(15 * time.Minute)) {
		t.Errorf("stored RequestTime = %v, want the newer touch %v", got, t0.Add(15*time.Minute))
	}
}

func TestStopFlushesTouches(t *testing.T) {
	// Long intervals: the loops never fire during the test; Stop must flush.
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour, TouchInterval: time.Hour, SweepInterval: time.Hour})
	e.svc.Start()
	sess, _ := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(10 * time.Minute)
	e.svc.Touch(sess.ID)

	if err := e.svc.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := e.stored(t, sess.ID).RequestTime; !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("stored RequestTime after Stop = %v, want %v", got, t0.Add(10*time.Minute))
	}
	if err := e.svc.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// ---- closing and deleting ----

func TestCloseSession(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, token := e.open(t, sessiond.OpenRequest{UserID: "u", User: json.RawMessage(`{"a":1}`), Data: json.RawMessage(`{"b":2}`)})
	e.clk.Add(10 * time.Minute)
	closeAt := e.clk.Now()

	got, err := e.svc.CloseSession(t.Context(), sess.ID, sessiond.ReasonForced)
	if err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	want := sess.Clone()
	want.Active = false
	want.CloseTime, want.RequestTime = closeAt, closeAt
	want.CloseReason = sessiond.ReasonForced
	want.User, want.Data = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CloseSession returned\n%+v\nwant\n%+v", got, want)
	}
	if g := e.get(t, sess.ID); !reflect.DeepEqual(g, want) {
		t.Errorf("Get after close =\n%+v\nwant\n%+v", g, want)
	}
	if got, want := e.endedCalls(), [][]string{{sess.ID}}; !reflect.DeepEqual(got, want) {
		t.Errorf("OnEnd calls = %v, want %v", got, want)
	}
	_, err = e.svc.Authenticate(t.Context(), sessiond.Credentials{Token: token})
	wantCode(t, "Authenticate with a closed session's token", err, sessiond.EUNAUTHORIZED)

	// Closing again changes nothing: same close time, same reason, no hook.
	e.clk.Add(10 * time.Minute)
	again, err := e.svc.CloseSession(t.Context(), sess.ID, sessiond.ReasonClosed)
	if err != nil {
		t.Fatalf("second CloseSession: %v", err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("second CloseSession returned\n%+v\nwant unchanged\n%+v", again, want)
	}
	if got := len(e.endedCalls()); got != 1 {
		t.Errorf("OnEnd called %d times, want 1", got)
	}
}

func TestCloseDeadSessionIsExpired(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(2 * time.Hour)
	got, err := e.svc.CloseSession(t.Context(), sess.ID, sessiond.ReasonForced)
	if err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	if got.Active || got.CloseReason != sessiond.ReasonExpired {
		t.Errorf("closing a dead session: Active = %v, CloseReason = %q, want false and %q", got.Active, got.CloseReason, sessiond.ReasonExpired)
	}
	if got, want := e.endedIDs(), []string{sess.ID}; !slices.Equal(got, want) {
		t.Errorf("OnEnd ids = %v, want %v", got, want)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	sess, token := e.open(t, sessiond.OpenRequest{UserID: "u", Data: json.RawMessage(`1`)})

	got, err := e.svc.Delete(t.Context(), sess.ID)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got.ID != sess.ID || got.UserID != "u" || string(got.Data) != `1` {
		t.Errorf("Delete returned %+v, want the session as it was", got)
	}
	if got, want := e.endedCalls(), [][]string{{sess.ID}}; !reflect.DeepEqual(got, want) {
		t.Errorf("OnEnd calls = %v, want %v", got, want)
	}
	_, err = e.svc.Get(t.Context(), sess.ID)
	wantCode(t, "Get after Delete", err, sessiond.ENOTFOUND)
	_, err = e.svc.Authenticate(t.Context(), sessiond.Credentials{Token: token})
	wantCode(t, "Authenticate with a deleted session's token", err, sessiond.EUNAUTHORIZED)
	_, err = e.svc.Delete(t.Context(), sess.ID)
	wantCode(t, "second Delete", err, sessiond.ENOTFOUND)
	if got := len(e.endedCalls()); got != 1 {
		t.Errorf("OnEnd called %d times, want 1", got)
	}
}

// ---- sweep ----

func TestSweepClosesDeadSessions(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	dead1, _ := e.open(t, sessiond.OpenRequest{Data: json.RawMessage(`1`)})
	dead2, _ := e.open(t, sessiond.OpenRequest{ExpiresIn: 40 * time.Minute})
	e.clk.Add(30 * time.Minute)
	alive, _ := e.open(t, sessiond.OpenRequest{Data: json.RawMessage(`2`)})
	closed, _ := e.open(t, sessiond.OpenRequest{})
	if _, err := e.svc.CloseSession(t.Context(), closed.ID, sessiond.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(45 * time.Minute)
	before := len(e.endedCalls())

	e.svc.Sweep(t.Context())

	// Each is closed at the instant it died: dead1 an idle hour after it
	// was opened, dead2 at its expire_time 40 minutes after.
	for _, c := range []struct {
		sess *sessiond.Session
		died time.Time
	}{{dead1, dead1.OpenTime.Add(time.Hour)}, {dead2, dead2.OpenTime.Add(40 * time.Minute)}} {
		s := e.stored(t, c.sess.ID)
		if s.Active || s.CloseReason != sessiond.ReasonExpired || !s.CloseTime.Equal(c.died) || !s.RequestTime.Equal(c.died) || s.Data != nil {
			t.Errorf("swept session %s = %+v, want closed as expired at %v with no data", c.sess.ID, s, c.died)
		}
	}
	if s := e.stored(t, alive.ID); !s.Active || string(s.Data) != `2` {
		t.Errorf("alive session after sweep = %+v, want untouched", s)
	}
	if s := e.stored(t, closed.ID); s.CloseReason != sessiond.ReasonClosed {
		t.Errorf("closed session after sweep: CloseReason = %q, want %q", s.CloseReason, sessiond.ReasonClosed)
	}
	var swept []string
	for _, call := range e.endedCalls()[before:] {
		swept = append(swept, call...)
	}
	slices.Sort(swept)
	if want := slices.Sorted(slices.Values([]string{dead1.ID, dead2.ID})); !slices.Equal(swept, want) {
		t.Errorf("OnEnd ids from sweep = %v, want %v", swept, want)
	}
}

// A dead session reads the same before and after the sweep: closed at the
// instant it died, so that nobody sees close_time or request_time move and
// retention counts from its death.
func TestDeadSessionLooksTheSameBeforeAndAfterSweep(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{Data: json.RawMessage(`1`)})
	e.clk.Add(90 * time.Minute) // dead since t0+1h
	before := e.get(t, sess.ID)
	e.svc.Sweep(t.Context())
	if after := e.get(t, sess.ID); !reflect.DeepEqual(after, before) {
		t.Errorf("dead session before the sweep\n%+v\nafter the sweep\n%+v\nwant them equal", before, after)
	}
}

func TestSweepFlushesTouchesFirst(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, _ := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(50 * time.Minute)
	e.svc.Touch(sess.ID) // not flushed
	e.clk.Add(50 * time.Minute)

	e.svc.Sweep(t.Context())

	s := e.stored(t, sess.ID)
	if !s.Active {
		t.Errorf("sweep closed a session kept alive by a pending touch: %+v", s)
	}
	if !s.RequestTime.Equal(t0.Add(50 * time.Minute)) {
		t.Errorf("stored RequestTime after sweep = %v, want %v", s.RequestTime, t0.Add(50*time.Minute))
	}
	if got := e.endedCalls(); len(got) != 0 {
		t.Errorf("OnEnd calls = %v, want none", got)
	}
}

func TestSweepPurgesAfterRetention(t *testing.T) {
	e := newEnv(t, sessiond.Config{Retention: 2 * time.Hour}) // idle timeout: the 24h default
	closed, _ := e.open(t, sessiond.OpenRequest{})
	active, _ := e.open(t, sessiond.OpenRequest{})
	if _, err := e.svc.CloseSession(t.Context(), closed.ID, sessiond.ReasonClosed); err != nil {
		t.Fatal(err)
	}

	e.clk.Add(2 * time.Hour) // exactly the retention: kept
	e.svc.Sweep(t.Context())
	if got := e.get(t, closed.ID); got.Active {
		t.Errorf("closed session is active again: %+v", got)
	}
	if got := len(e.endedCalls()); got != 1 {
		t.Errorf("OnEnd called %d times, want 1 (the close)", got)
	}

	e.clk.Add(time.Millisecond) // past the retention: purged
	e.svc.Sweep(t.Context())
	_, err := e.svc.Get(t.Context(), closed.ID)
	wantCode(t, "Get of a purged session", err, sessiond.ENOTFOUND)
	if got := e.get(t, active.ID); !got.Active {
		t.Errorf("active session after purge: %+v, want active", got)
	}
	if got, want := e.endedCalls(), [][]string{{closed.ID}, {closed.ID}}; !reflect.DeepEqual(got, want) {
		t.Errorf("OnEnd calls = %v, want %v (close, then purge)", got, want)
	}
}

// ---- listing ----

func TestListPaging(t *testing.T) {
	e := newEnv(t, sessiond.Config{DefaultTake: 2, MaxTake: 3})
	var newestFirst []string
	for range 5 {
		s, _ := e.open(t, sessiond.OpenRequest{})
		newestFirst = append([]string{s.ID}, newestFirst...)
		e.clk.Add(time.Second)
	}

	tests := []struct {
		name      string
		filter    sessiond.Filter
		paging    sessiond.Paging
		want      []string
		wantTotal int64 // -1: no total wanted
		wantCode  string
	}{
		{name: "take 0 means the default", paging: sessiond.Paging{}, want: newestFirst[:2], wantTotal: -1},
		{name: "take above the maximum is cut", paging: sessiond.Paging{Take: 100}, want: newestFirst[:3], wantTotal: -1},
		{name: "skip and take", paging: sessiond.Paging{Skip: 1, Take: 2}, want: newestFirst[1:3], wantTotal: -1},
		{name: "skip past the end", paging: sessiond.Paging{Skip: 10, Take: 2}, want: []string{}, wantTotal: -1},
		{name: "total counts every match", paging: sessiond.Paging{Skip: 4, Take: 3, Total: true}, want: newestFirst[4:], wantTotal: 5},
		{name: "negative skip", paging: sessiond.Paging{Skip: -1}, wantCode: sessiond.EINVALID},
		{name: "negative take", paging: sessiond.Paging{Take: -1}, wantCode: sessiond.EINVALID},
		{name: "unknown state", filter: sessiond.Filter{State: "zombie"}, wantCode: sessiond.EINVALID},
		{name: "state is case-sensitive", filter: sessiond.Filter{State: "Active"}, wantCode: sessiond.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := e.svc.List(t.Context(), tt.filter, tt.paging)
			if tt.wantCode != "" {
				wantCode(t, "List", err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := ids(page.Data); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			switch {
			case tt.wantTotal < 0 && page.Total != nil:
				t.Errorf("Total = %d, want nil", *page.Total)
			case tt.wantTotal >= 0 && (page.Total == nil || *page.Total != tt.wantTotal):
				t.Errorf("Total = %v, want %d", page.Total, tt.wantTotal)
			}
		})
	}
}

// ---- API keys ----

func TestAPIKeys(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	a, secretA := e.createKey(t, "tenant a")
	e.clk.Add(time.Second)
	b, _ := e.createKey(t, "tenant b")

	if !hexID.MatchString(a.ID) {
		t.Errorf("key id = %q, want 32 lowercase hex characters", a.ID)
	}
	if a.Name != "tenant a" || !a.Created.Equal(t0) {
		t.Errorf("key = %+v, want name %q created %v", a, "tenant a", t0)
	}
	if len(secretA) < 26 {
		t.Errorf("secret %d characters long, want at least 26 (128 bits of base32)", len(secretA))
	}
	stored, err := e.store.GetAPIKey(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte(secretA)); !bytes.Equal(stored.SecretHash, want[:]) {
		t.Errorf("stored secret hash = %x, want SHA-256 of the secret", stored.SecretHash)
	}

	got, err := e.svc.GetAPIKey(t.Context(), a.ID)
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("GetAPIKey = %+v, want %+v", got, a)
	}
	list, err := e.svc.ListAPIKeys(t.Context())
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	if got, want := []string{list[0].ID, list[1].ID}, []string{a.ID, b.ID}; len(list) != 2 || !slices.Equal(got, want) {
		t.Errorf("ListAPIKeys ids = %v, want %v (oldest first)", got, want)
	}

	_, err = e.svc.GetAPIKey(t.Context(), "0123456789abcdef0123456789abcdef")
	wantCode(t, "GetAPIKey unknown", err, sessiond.ENOTFOUND)
	_, err = e.svc.GetAPIKey(t.Context(), "")
	wantCode(t, "GetAPIKey empty", err, sessiond.EINVALID)
	_, _, err = e.svc.CreateAPIKey(t.Context(), strings.Repeat("n", 201))
	wantCode(t, "CreateAPIKey with a long name", err, sessiond.EINVALID)
	if list, _ := e.svc.ListAPIKeys(t.Context()); len(list) != 2 {
		t.Errorf("a refused CreateAPIKey stored a key: %d keys, want 2", len(list))
	}
}

func TestRevokeAPIKey(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	a, secretA := e.createKey(t, "a")
	b, secretB := e.createKey(t, "b")
	sA1, tokenA1 := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID, Data: json.RawMessage(`1`)})
	sA2, _ := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID})
	sB, tokenB := e.open(t, sessiond.OpenRequest{APIKeyID: b.ID})
	internal, tokenInternal := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(time.Minute)

	if err := e.svc.RevokeAPIKey(t.Context(), a.ID); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}

	_, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{APIKey: a.ID, Secret: secretA})
	wantCode(t, "Authenticate with the revoked key", err, sessiond.EUNAUTHORIZED)
	_, err = e.svc.Authenticate(t.Context(), sessiond.Credentials{Token: tokenA1})
	wantCode(t, "Authenticate with a revoked key's token", err, sessiond.EUNAUTHORIZED)
	for _, id := range []string{sA1.ID, sA2.ID} {
		s := e.get(t, id)
		if s.Active || s.CloseReason != sessiond.ReasonRevoked || !s.CloseTime.Equal(t0.Add(time.Minute)) || s.Data != nil {
			t.Errorf("session %s of the revoked key = %+v, want closed as %q at %v", id, s, sessiond.ReasonRevoked, t0.Add(time.Minute))
		}
	}
	if got, want := e.endedIDs(), slices.Sorted(slices.Values([]string{sA1.ID, sA2.ID})); !slices.Equal(got, want) {
		t.Errorf("OnEnd ids = %v, want %v", got, want)
	}

	// Other keys and the internal APIs are untouched.
	if _, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{APIKey: b.ID, Secret: secretB}); err != nil {
		t.Errorf("Authenticate with the other key: %v", err)
	}
	for _, tok := range []string{tokenB, tokenInternal} {
		if _, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{Token: tok}); err != nil {
			t.Errorf("Authenticate with a token of another key: %v", err)
		}
	}
	for _, id := range []string{sB.ID, internal.ID} {
		if !e.get(t, id).Active {
			t.Errorf("session %s of another key closed by the revocation", id)
		}
	}
	if keys, _ := e.svc.ListAPIKeys(t.Context()); len(keys) != 1 || keys[0].ID != b.ID {
		t.Errorf("keys after revocation = %v, want only %s", keys, b.ID)
	}

	err = e.svc.RevokeAPIKey(t.Context(), a.ID)
	wantCode(t, "revoking again", err, sessiond.ENOTFOUND)
	err = e.svc.RevokeAPIKey(t.Context(), "0123456789abcdef0123456789abcdef")
	wantCode(t, "revoking an unknown key", err, sessiond.ENOTFOUND)
	err = e.svc.RevokeAPIKey(t.Context(), "")
	wantCode(t, "revoking an empty id", err, sessiond.EINVALID)
}

// RevokeAPIKey closes a session alive only thanks to an unflushed touch
// too, as "revoked", and OnEnd runs at once.
func TestRevokeClosesSessionAliveByPendingTouch(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	a, _ := e.createKey(t, "a")
	sess, _ := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID})
	e.clk.Add(50 * time.Minute)
	e.svc.Touch(sess.ID) // not flushed
	e.clk.Add(50 * time.Minute)

	if err := e.svc.RevokeAPIKey(t.Context(), a.ID); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	if got := e.get(t, sess.ID); got.Active || got.CloseReason != sessiond.ReasonRevoked {
		t.Errorf("session after revocation: Active = %v, CloseReason = %q, want false and %q", got.Active, got.CloseReason, sessiond.ReasonRevoked)
	}
	if got, want := e.endedIDs(), []string{sess.ID}; !slices.Equal(got, want) {
		t.Errorf("OnEnd ids = %v, want %v", got, want)
	}
}

// ---- authentication ----

func TestAuthenticate(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	a, secretA := e.createKey(t, "a")
	b, secretB := e.createKey(t, "b")
	sess, token := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID})
	closed, closedToken := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID})
	if _, err := e.svc.CloseSession(t.Context(), closed.ID, sessiond.ReasonClosed); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		creds       sessiond.Credentials
		wantKey     string
		wantSession string // "" : authenticated by key
		wantCode    string
	}{
		{name: "token", creds: sessiond.Credentials{Token: token}, wantKey: a.ID, wantSession: sess.ID},
		{name: "key and secret", creds: sessiond.Credentials{APIKey: a.ID, Secret: secretA}, wantKey: a.ID},
		{name: "token wins over another key's secret", creds: sessiond.Credentials{Token: token, APIKey: b.ID, Secret: secretB}, wantKey: a.ID, wantSession: sess.ID},
		{name: "token wins over a wrong secret", creds: sessiond.Credentials{Token: token, APIKey: a.ID, Secret: "wrong"}, wantKey: a.ID, wantSession: sess.ID},
		{name: "bad token with good key", creds: sessiond.Credentials{Token: "not-a-token", APIKey: a.ID, Secret: secretA}, wantCode: sessiond.EUNAUTHORIZED},
		{name: "closed session's token", creds: sessiond.Credentials{Token: closedToken}, wantCode: sessiond.EUNAUTHORIZED},
		{name: "session id as token", creds: sessiond.Credentials{Token: sess.ID}, wantCode: sessiond.EUNAUTHORIZED},
		{name: "wrong secret", creds: sessiond.Credentials{APIKey: a.ID, Secret: secretB}, wantCode: sessiond.EUNAUTHORIZED},
		{name: "empty secret", creds: sessiond.Credentials{APIKey: a.ID}, wantCode: sessiond.EUNAUTHORIZED},
		{name: "unknown key", creds: sessiond.Credentials{APIKey: "0123456789abcdef0123456789abcdef", Secret: secretA}, wantCode: sessiond.EUNAUTHORIZED},
		{name: "secret without key", creds: sessiond.Credentials{Secret: secretA}, wantCode: sessiond.EUNAUTHORIZED},
		{name: "nothing", creds: sessiond.Credentials{}, wantCode: sessiond.EUNAUTHORIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller, err := e.svc.Authenticate(t.Context(), tt.creds)
			if tt.wantCode != "" {
				wantCode(t, "Authenticate", err, tt.wantCode)
				if caller != nil {
					t.Errorf("Authenticate failed but returned caller %+v", caller)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if caller.APIKeyID != tt.wantKey {
				t.Errorf("APIKeyID = %q, want %q", caller.APIKeyID, tt.wantKey)
			}
			switch {
			case tt.wantSession == "" && caller.Session != nil:
				t.Errorf("Session = %s, want nil", caller.Session.ID)
			case tt.wantSession != "" && (caller.Session == nil || caller.Session.ID != tt.wantSession):
				t.Errorf("Session = %+v, want %s", caller.Session, tt.wantSession)
			}
		})
	}
}

func TestAuthenticateDeadToken(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	_, token := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(time.Hour + time.Millisecond)
	_, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{Token: token})
	wantCode(t, "Authenticate with a dead session's token", err, sessiond.EUNAUTHORIZED)
}

func TestAuthenticateTouches(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	sess, token := e.open(t, sessiond.OpenRequest{})
	e.clk.Add(50 * time.Minute)
	e.authenticate(t, sessiond.Credentials{Token: token})
	if got := e.get(t, sess.ID).RequestTime; !got.Equal(t0.Add(50 * time.Minute)) {
		t.Errorf("RequestTime after Authenticate = %v, want %v", got, t0.Add(50*time.Minute))
	}
	if err := e.svc.FlushTouches(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := e.stored(t, sess.ID).RequestTime; !got.Equal(t0.Add(50 * time.Minute)) {
		t.Errorf("stored RequestTime after flush = %v, want %v", got, t0.Add(50*time.Minute))
	}
	e.clk.Add(50 * time.Minute) // alive only thanks to that touch
	e.authenticate(t, sessiond.Credentials{Token: token})
}

// ---- token methods and ownership ----

func TestTokenMethodsOwnership(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	a, secretA := e.createKey(t, "a")
	b, secretB := e.createKey(t, "b")
	callerA := e.authenticate(t, sessiond.Credentials{APIKey: a.ID, Secret: secretA})
	callerB := e.authenticate(t, sessiond.Credentials{APIKey: b.ID, Secret: secretB})
	sess, token := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID, Data: json.RawMessage(`"a's"`)})
	ctx := t.Context()

	// Key B sees A's token as unknown and changes nothing.
	if ok, err := e.svc.VerifyToken(ctx, callerB, token); ok || err != nil {
		t.Errorf("B: VerifyToken = %v, %v, want false, nil", ok, err)
	}
	_, err := e.svc.SessionByToken(ctx, callerB, token)
	wantCode(t, "B: SessionByToken", err, sessiond.ENOTFOUND)
	_, err = e.svc.StoreDataByToken(ctx, callerB, token, json.RawMessage(`"b's"`))
	wantCode(t, "B: StoreDataByToken", err, sessiond.ENOTFOUND)
	if err := e.svc.CloseByToken(ctx, callerB, token); err != nil {
		t.Errorf("B: CloseByToken = %v, want nil", err)
	}
	if got := e.get(t, sess.ID); !got.Active || string(got.Data) != `"a's"` {
		t.Errorf("after B's calls: Active = %v, Data = %s, want true and \"a's\"", got.Active, got.Data)
	}
	if got := e.endedCalls(); len(got) != 0 {
		t.Errorf("OnEnd calls = %v after B's calls, want none", got)
	}

	// Key A owns it.
	e.clk.Add(10 * time.Minute)
	if ok, err := e.svc.VerifyToken(ctx, callerA, token); !ok || err != nil {
		t.Errorf("A: VerifyToken = %v, %v, want true, nil", ok, err)
	}
	if got := e.get(t, sess.ID).RequestTime; !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("VerifyToken did not touch: RequestTime = %v, want %v", got, t0.Add(10*time.Minute))
	}
	got, err := e.svc.SessionByToken(ctx, callerA, token)
	if err != nil || got.ID != sess.ID {
		t.Errorf("A: SessionByToken = %+v, %v, want session %s", got, err, sess.ID)
	}
	got, err = e.svc.StoreDataByToken(ctx, callerA, token, json.RawMessage(`{"x":1}`))
	if err != nil || string(got.Data) != `{"x":1}` {
		t.Errorf("A: StoreDataByToken = %+v, %v, want data {\"x\":1}", got, err)
	}
	if err := e.svc.CloseByToken(ctx, callerA, token); err != nil {
		t.Errorf("A: CloseByToken = %v, want nil", err)
	}
	if got := e.get(t, sess.ID); got.Active || got.CloseReason != sessiond.ReasonClosed {
		t.Errorf("after A's CloseByToken: Active = %v, CloseReason = %q, want false and %q", got.Active, got.CloseReason, sessiond.ReasonClosed)
	}
	if got, want := e.endedCalls(), [][]string{{sess.ID}}; !reflect.DeepEqual(got, want) {
		t.Errorf("OnEnd calls = %v, want %v", got, want)
	}

	// A closed token: inactive, not found, closing it again is fine.
	if ok, err := e.svc.VerifyToken(ctx, callerA, token); ok || err != nil {
		t.Errorf("A: VerifyToken of closed = %v, %v, want false, nil", ok, err)
	}
	_, err = e.svc.SessionByToken(ctx, callerA, token)
	wantCode(t, "A: SessionByToken of closed", err, sessiond.ENOTFOUND)
	_, err = e.svc.StoreDataByToken(ctx, callerA, token, json.RawMessage(`1`))
	wantCode(t, "A: StoreDataByToken of closed", err, sessiond.ENOTFOUND)
	if err := e.svc.CloseByToken(ctx, callerA, token); err != nil {
		t.Errorf("A: CloseByToken of closed = %v, want nil", err)
	}
	if got := len(e.endedCalls()); got != 1 {
		t.Errorf("OnEnd called %d times, want 1", got)
	}
}

func TestTokenMethodsUnknownAndEmptyToken(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	a, secretA := e.createKey(t, "a")
	caller := e.authenticate(t, sessiond.Credentials{APIKey: a.ID, Secret: secretA})
	ctx := t.Context()

	if ok, err := e.svc.VerifyToken(ctx, caller, "unknown"); ok || err != nil {
		t.Errorf("VerifyToken(unknown) = %v, %v, want false, nil", ok, err)
	}
	_, err := e.svc.SessionByToken(ctx, caller, "unknown")
	wantCode(t, "SessionByToken(unknown)", err, sessiond.ENOTFOUND)
	_, err = e.svc.StoreDataByToken(ctx, caller, "unknown", json.RawMessage(`1`))
	wantCode(t, "StoreDataByToken(unknown)", err, sessiond.ENOTFOUND)
	if err := e.svc.CloseByToken(ctx, caller, "unknown"); err != nil {
		t.Errorf("CloseByToken(unknown) = %v, want nil", err)
	}

	_, err = e.svc.VerifyToken(ctx, caller, "")
	wantCode(t, "VerifyToken(empty)", err, sessiond.EINVALID)
	_, err = e.svc.SessionByToken(ctx, caller, "")
	wantCode(t, "SessionByToken(empty)", err, sessiond.EINVALID)
	_, err = e.svc.StoreDataByToken(ctx, caller, "", json.RawMessage(`1`))
	wantCode(t, "StoreDataByToken(empty)", err, sessiond.EINVALID)
	err = e.svc.CloseByToken(ctx, caller, "")
	wantCode(t, "CloseByToken(empty)", err, sessiond.EINVALID)
}

// ---- gateway statistics ----

func TestConnections(t *testing.T) {
	e := newEnv(t, sessiond.Config{})
	ctx := t.Context()
	sess, _ := e.open(t, sessiond.OpenRequest{})
	other, _ := e.open(t, sessiond.OpenRequest{})

	e.svc.RecordConnection(sess.ID, "zeta", 10, 100, false)
	e.clk.Add(time.Second)
	e.svc.RecordConnection(sess.ID, "alpha", 1, 2, true)
	e.clk.Add(time.Second)
	e.svc.RecordConnection(sess.ID, "zeta", 2, 20, true)
	e.svc.RecordConnection(other.ID, "alpha", 7, 7, false)
	connections := func(id string) []sessiond.ConnStat {
		t.Helper()
		got, err := e.svc.Connections(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Before the flush (pending only), after it (stored only), and with
	// both: the same sums.
	want := []sessiond.ConnStat{
		{Service: "alpha", Requests: 1, Reads: 1, Writes: 2, Errors: 1, LastUsed: t0.Add(time.Second)},
		{Service: "zeta", Requests: 2, Reads: 12, Writes: 120, Errors: 1, LastUsed: t0.Add(2 * time.Second)},
	}
	if got := connections(sess.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("Connections before the flush =\n%+v\nwant\n%+v", got, want)
	}
	if err := e.svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := connections(sess.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("Connections after the flush =\n%+v\nwant\n%+v", got, want)
	}
	stored, err := e.svc.Store().ConnStats(ctx, sess.ID)
	if err != nil || !reflect.DeepEqual(stored, want) {
		t.Errorf("the store holds %+v (%v), want %+v", stored, err, want)
	}
	e.clk.Add(time.Second)
	e.svc.RecordConnection(sess.ID, "zeta", 3, 30, false)
	want[1] = sessiond.ConnStat{Service: "zeta", Requests: 3, Reads: 15, Writes: 150, Errors: 1, LastUsed: t0.Add(3 * time.Second)}
	if got := connections(sess.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("Connections stored and pending =\n%+v\nwant\n%+v", got, want)
	}
	got := connections(sess.ID)
	got[0].Requests = 99 // a copy: must not change the service's count
	if again := connections(sess.ID); !reflect.DeepEqual(again, want) {
		t.Errorf("changing the returned slice changed the statistics: %+v", again)
	}
	if got := connections("0123456789abcdef0123456789abcdef"); len(got) != 0 {
		t.Errorf("Connections(unknown) = %#v, want none", got)
	}
}

// Statistics outlive the session's close (operators read them), and go
// with the session when it is deleted or purged.
func TestConnectionsAfterTheSessionEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, e *env, id, keyID string)
		kept bool
	}{
		{name: "closed", kept: true, end: func(t *testing.T, e *env, id, keyID string) {
			if _, err := e.svc.CloseSession(t.Context(), id, sessiond.ReasonClosed); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "expired", kept: true, end: func(t *testing.T, e *env, id, keyID string) {
			e.clk.Add(2 * time.Hour)
			e.svc.Sweep(t.Context())
		}},
		{name: "revoked", kept: true, end: func(t *testing.T, e *env, id, keyID string) {
			if err := e.svc.RevokeAPIKey(t.Context(), keyID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "deleted", end: func(t *testing.T, e *env, id, keyID string) {
			if _, err := e.svc.Delete(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "purged", end: func(t *testing.T, e *env, id, keyID string) {
			e.clk.Add(2 * time.Hour)
			e.svc.Sweep(t.Context())
			e.clk.Add(8 * 24 * time.Hour)
			e.svc.Sweep(t.Context())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
			ctx := t.Context()
			k, _ := e.createKey(t, "k")
			sess, _ := e.open(t, sessiond.OpenRequest{APIKeyID: k.ID})
			e.svc.RecordConnection(sess.ID, "svc", 1, 1, false)
			if err := e.svc.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			tt.end(t, e, sess.ID, k.ID)
			got, err := e.svc.Connections(ctx, sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.kept && len(got) != 1 {
				t.Errorf("Connections after the session ended = %+v, want the one", got)
			}
			if !tt.kept && len(got) != 0 {
				t.Errorf("Connections after the session went = %+v, want none", got)
			}
		})
	}
}

// idStore chooses its sessions' ids (sessiond.IDChooser).
type idStore struct {
	sessiond.Store
	n int
}

func (s *idStore) NewSessionID(apiKeyID, userID string) string {
	s.n++
	return fmt.Sprintf("ab%030x", s.n)
}

func TestOpenAsksTheEngineForIDs(t *testing.T) {
	st := &idStore{Store: memory.New()}
	e := newEnvOver(t, st, sessiond.Config{})
	sess, _ := e.open(t, sessiond.OpenRequest{UserID: "u"})
	if sess.ID != fmt.Sprintf("ab%030x", 1) {
		t.Errorf("id %q, want the engine's", sess.ID)
	}
	if _, err := e.svc.Get(t.Context(), sess.ID); err != nil {
		t.Error(err)
	}
}
