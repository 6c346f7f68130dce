package embedded

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"sessiond"
	"sessiond/store/storetest"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// openTest opens a store in a fresh directory and closes it when the test
// ends.
func openTest(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s, err := Open(tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"default options", Options{}},
		// Tiny sweep batches: sweeps span many commits.
		{"tiny sweep batches", Options{SweepBatch: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, storetest.Engine{New: func(t *testing.T) sessiond.Store {
				s, err := Open(t.TempDir(), tt.opts)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return checkedStore{s, t}
			}})
		})
	}
}

// testSession returns a session with every field set.
func testSession(i int) *sessiond.Session {
	// Ids are random in production (sessiond.NewID): derive them from i
	// by hashing so that they scatter over the key space the same way.
	idh := sha256.Sum256(fmt.Appendf(nil, "id-%d", i))
	id := hex.EncodeToString(idh[:16])
	h := sha256.Sum256([]byte(id))
	return &sessiond.Session{
		ID:          id,
		UserID:      fmt.Sprintf("user-%d", i%1000),
		UserName:    fmt.Sprintf("User %d", i%1000),
		Active:      true,
		OpenTime:    t0.Add(time.Duration(i) * time.Millisecond),
		RequestTime: t0.Add(time.Duration(i) * time.Millisecond),
		ExpireTime:  t0.Add(30 * 24 * time.Hour),
		Address:     "192.168.10.20",
		Client:      "Mozilla/5.0 (X11; Linux x86_64)",
		User:        json.RawMessage(`{"id":"u","name":"A User","roles":["reader","writer"]}`),
		Data:        json.RawMessage(`{"cart":[1,2,3],"theme":"dark"}`),
		APIKeyID:    "0123456789abcdef0123456789abcdef",
		TokenHash:   h[:],
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := t.Context()
	var want []*sessiond.Session
	for i := range 20 {
		sess := testSession(i)
		if _, err := s.Create(ctx, sess, 0); err != nil {
			t.Fatalf("Create: %v", err)
		}
		want = append(want, sess)
	}
	// Change, close and delete some; add a key.
	upd, err := s.Update(ctx, want[3].ID, func(sess *sessiond.Session) error {
		sess.Data = json.RawMessage(`"updated"`)
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want[3] = upd
	if _, err := s.Delete(ctx, want[4].ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Touch(ctx, []sessiond.Touch{{ID: want[5].ID, Time: t0.Add(time.Hour)}}); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	want[5].RequestTime = t0.Add(time.Hour)
	closedIDs, err := s.CloseExpired(ctx, t0.Add(40*24*time.Hour), time.Hour)
	if err != nil || len(closedIDs) != 19 {
		t.Fatalf("CloseExpired = %d ids, %v; want 19", len(closedIDs), err)
	}
	for _, sess := range want {
		sessiond.ApplyClose(sess, sess.Deadline(time.Hour), sessiond.ReasonExpired)
	}
	key := &sessiond.APIKey{ID: "k", Name: "key", SecretHash: []byte{1, 2, 3}, Created: t0}
	if err := s.CreateAPIKey(ctx, key); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if err := checkConsistency(s); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	for i, w := range want {
		got, err := s.Get(ctx, w.ID)
		if i == 4 {
			if sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
				t.Errorf("deleted session after reopen: Get = %v, want not found", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Get(%s) after reopen: %v", w.ID, err)
		}
		if d := sessionDiff(got, w); d != "" {
			t.Errorf("session %d after reopen differs: %s", i, d)
		}
	}
	if got, err := s.GetAPIKey(ctx, "k"); err != nil || got.Name != "key" {
		t.Errorf("GetAPIKey after reopen = %+v, %v", got, err)
	}
	// The indexes survived too: nothing is left to close, and everything
	// closed can be purged.
	if ids, err := s.CloseExpired(ctx, t0.Add(50*24*time.Hour), time.Hour); err != nil || len(ids) != 0 {
		t.Errorf("CloseExpired after reopen = %v, %v; want none", ids, err)
	}
	if ids, err := s.Purge(ctx, t0.Add(50*24*time.Hour)); err != nil || len(ids) != 19 {
		t.Errorf("Purge after reopen = %d ids, %v; want 19", len(ids), err)
	}
}

// sessionDiff names the first differing field, comparing encodings (which
// cover every field).
func sessionDiff(got, want *sessiond.Session) string {
	g, w := encodeSession(nil, got), encodeSession(nil, want)
	if got.ID != want.ID || string(g) != string(w) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func TestOpenErrors(t *testing.T) {
	t.Run("locked by another store", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if _, err := Open(dir, Options{LockTimeout: 50 * time.Millisecond}); err == nil {
			t.Errorf("second Open of a directory in use succeeded")
		}
	})
	t.Run("not a database", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, DirName), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, DirName, "CURRENT"), []byte("this is not a pebble store, no"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{}); err == nil {
			t.Errorf("Open of a garbage store succeeded")
		}
	})
	t.Run("bbolt file of the previous engine", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, legacyFileName), []byte("bbolt"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), "older format") {
			t.Errorf("Open next to a bbolt file = %v, want an older format error", err)
		}
	})
	t.Run("newer format", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.db.Set(keyFormat, []byte("99"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := Open(dir, Options{}); err == nil {
			t.Errorf("Open of a newer format succeeded")
		}
	})
	t.Run("creates the directory private", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o700); got != want {
			t.Errorf("directory mode = %v, want %v", got, want)
		}
		fi, err = os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o700); got != want {
			t.Errorf("store directory mode = %v, want %v", got, want)
		}
		if got, want := s.Path(), filepath.Join(dir, DirName); got != want {
			t.Errorf("Path() = %q, want %q", got, want)
		}
	})
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.Create(ctx, testSession(1), 0); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	id := testSession(1).ID
	calls := []struct {
		name string
		call func() error
	}{
		{"Create", func() error { _, err := s.Create(ctx, testSession(2), 0); return err }},
		{"Get", func() error { _, err := s.Get(ctx, id); return err }},
		{"GetByTokenHash", func() error { _, err := s.GetByTokenHash(ctx, testSession(1).TokenHash); return err }},
		{"Update", func() error {
			_, err := s.Update(ctx, id, func(*sessiond.Session) error { return nil })
			return err
		}},
		{"Delete", func() error { _, err := s.Delete(ctx, id); return err }},
		{"List", func() error { _, err := s.List(ctx, sessiond.Filter{}, sessiond.Paging{Take: 1}); return err }},
		{"Touch", func() error { return s.Touch(ctx, []sessiond.Touch{{ID: id, Time: t0}}) }},
		{"CloseExpired", func() error { _, err := s.CloseExpired(ctx, t0, time.Hour); return err }},
		{"Purge", func() error { _, err := s.Purge(ctx, t0); return err }},
		{"CreateAPIKey", func() error { return s.CreateAPIKey(ctx, &sessiond.APIKey{ID: "k"}) }},
		{"GetAPIKey", func() error { _, err := s.GetAPIKey(ctx, "k"); return err }},
		{"ListAPIKeys", func() error { _, err := s.ListAPIKeys(ctx); return err }},
		{"DeleteAPIKey", func() error { return s.DeleteAPIKey(ctx, "k") }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := sessiond.ErrorCode(tt.call()), sessiond.EUNAVAILABLE; got != want {
				t.Errorf("%s after Close: code %q, want %q", tt.name, got, want)
			}
		})
	}
}

// TestCloseWhileWriting closes the store under concurrent writers: every
// write either succeeds (and is then on disk) or fails with EUNAVAILABLE.
func TestCloseWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acked   []string
		started = make(chan struct{})
		once    sync.Once
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				sess := testSession(w*100000 + i)
				_, err := s.Create(context.Background(), sess, 0)
				once.Do(func() { close(started) })
				if err != nil {
					if got := sessiond.ErrorCode(err); got != sessiond.EUNAVAILABLE {
						t.Errorf("Create during Close: %v", err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, sess.ID)
				mu.Unlock()
			}
		})
	}
	<-started
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	for _, id := range acked {
		if _, err := s.Get(t.Context(), id); err != nil {
			t.Fatalf("acknowledged session %s lost: %v", id, err)
		}
	}
}

// TestUpdateFailures checks that an UpdateFunc that fails or panics
// stores nothing, gets its own error, and leaves the session's lock free
// for the writes that follow.
func TestUpdateFailures(t *testing.T) {
	s := openTest(t, Options{})
	ctx := t.Context()
	id := testSession(0).ID
	if _, err := s.Create(ctx, testSession(0), 0); err != nil {
		t.Fatalf("Create: %v", err)
	}
	fnErr := errors.New("fn failed")
	tests := []struct {
		name     string
		fn       sessiond.UpdateFunc
		wantErr  error  // compared with ==, when set
		wantCode string // otherwise
	}{
		{"fn error", func(sess *sessiond.Session) error { sess.UserName = "not stored"; return fnErr }, fnErr, ""},
		{"fn panics", func(sess *sessiond.Session) error { sess.UserName = "not stored either"; panic("boom") }, nil, sessiond.EINTERNAL},
		{"unchanged", func(sess *sessiond.Session) error { sess.UserName = "dropped"; return sessiond.ErrUnchanged }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Update(ctx, id, tt.fn)
			if tt.wantErr != nil {
				if err != tt.wantErr {
					t.Errorf("Update error = %v, want the fn's error", err)
				}
			} else if code := sessiond.ErrorCode(err); code != tt.wantCode {
				t.Errorf("Update error code = %q (%v), want %q", code, err, tt.wantCode)
			}
			if err == nil && got.UserName != testSession(0).UserName {
				t.Errorf("Update returned user_name %q, want the stored %q", got.UserName, testSession(0).UserName)
			}
			stored, err := s.Get(ctx, id)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if stored.UserName != testSession(0).UserName {
				t.Errorf("stored user_name = %q, want %q", stored.UserName, testSession(0).UserName)
			}
			// The lock was released: a write of the same session goes through.
			if _, err := s.Update(ctx, id, func(sess *sessiond.Session) error { return nil }); err != nil {
				t.Errorf("Update after the failure: %v", err)
			}
		})
	}
}

// tokenIDs returns the ids the token map holds for the 64-bit hash h,
// sorted.
func tokenIDs(m *memIndex, h uint64) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var ids []string
	if first, ok := m.tokens[h]; ok {
		ids = append(ids, first)
	}
	ids = append(ids, m.tokensMore[h]...)
	slices.Sort(ids)
	return ids
}

// TestMemIndexSharedHashes drives the in-memory id set and token map
// through 64-bit hashes that several sessions share: each session must
// stay findable until it is removed, whichever goes first.
func TestMemIndexSharedHashes(t *testing.T) {
	m := newMemIndex(maphash.MakeSeed())
	const h = 42
	tokenSteps := []struct {
		name string
		do   func()
		want []string
	}{
		{"added", func() { m.addToken(h, "a") }, []string{"a"}},
		{"shared", func() { m.addToken(h, "b") }, []string{"a", "b"}},
		{"shared by three", func() { m.addToken(h, "c") }, []string{"a", "b", "c"}},
		{"first removed", func() { m.removeToken(h, "a") }, []string{"b", "c"}},
		{"unknown id removed", func() { m.removeToken(h, "x") }, []string{"b", "c"}},
		{"overflow removed", func() { m.removeToken(h, "b") }, []string{"c"}},
		{"last removed", func() { m.removeToken(h, "c") }, nil},
	}
	for _, st := range tokenSteps {
		st.do()
		if got := tokenIDs(m, h); !slices.Equal(got, st.want) {
			t.Errorf("token map, %s: ids = %q, want %q", st.name, got, st.want)
		}
	}
	if len(m.tokens) != 0 || len(m.tokensMore) != 0 {
		t.Errorf("token map not empty at the end: %v, %v", m.tokens, m.tokensMore)
	}

	idSteps := []struct {
		name string
		do   func()
		want bool
	}{
		{"added", func() { m.addID(h) }, true},
		{"shared", func() { m.addID(h) }, true},
		{"one removed", func() { m.removeID(h) }, true},
		{"both removed", func() { m.removeID(h) }, false},
	}
	for _, st := range idSteps {
		st.do()
		if _, got := m.ids[h]; got != st.want {
			t.Errorf("id set, %s: present = %v, want %v", st.name, got, st.want)
		}
	}
	if len(m.ids) != 0 || len(m.idsShared) != 0 {
		t.Errorf("id set not empty at the end: %v, %v", m.ids, m.idsShared)
	}
}

// TestTokenMapCollisions makes sessions share the 64-bit hashes of their
// token hashes and ids (by adding false entries to the in-memory index),
// and checks that lookups and uniqueness checks compare the real values.
func TestTokenMapCollisions(t *testing.T) {
	s := openTest(t, Options{})
	ctx := t.Context()
	a, b := testSession(1), testSession(2)
	for _, sess := range []*sessiond.Session{a, b} {
		if _, err := s.Create(ctx, sess, 0); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	ha := s.mem.tokenHash(a.TokenHash)
	noone := testSession(3).TokenHash // a token no session has
	hn := s.mem.tokenHash(noone)
	// a's token hash now names b first, then a; noone's names a.
	s.mem.update(func(m *memIndex) {
		m.removeToken(ha, a.ID)
		m.addToken(ha, b.ID)
		m.addToken(ha, a.ID)
		m.addToken(hn, a.ID)
	})

	if got, err := s.GetByTokenHash(ctx, a.TokenHash); err != nil || got.ID != a.ID {
		t.Errorf("GetByTokenHash past a wrong candidate = %v, %v; want %s", got, err, a.ID)
	}
	if got, err := s.GetByTokenHash(ctx, b.TokenHash); err != nil || got.ID != b.ID {
		t.Errorf("GetByTokenHash = %v, %v; want %s", got, err, b.ID)
	}
	if _, err := s.GetByTokenHash(ctx, noone); sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
		t.Errorf("GetByTokenHash of a token sharing a 64-bit hash = %v, want not found", err)
	}
	dup := testSession(4)
	dup.TokenHash = a.TokenHash
	if _, err := s.Create(ctx, dup, 0); sessiond.ErrorCode(err) != sessiond.ECONFLICT {
		t.Errorf("Create with a taken token behind a wrong candidate = %v, want a conflict", err)
	}
	free := testSession(5)
	free.TokenHash = noone
	if _, err := s.Create(ctx, free, 0); err != nil {
		t.Errorf("Create with a free token sharing a 64-bit hash = %v", err)
	}

	// An id whose 64-bit hash is taken is checked in pebble.
	c := testSession(6)
	s.mem.update(func(m *memIndex) { m.addID(m.idHash(c.ID)) })
	if _, err := s.Create(ctx, c, 0); err != nil {
		t.Errorf("Create of a free id sharing a 64-bit hash = %v", err)
	}
	again := testSession(6)
	again.TokenHash = testSession(7).TokenHash
	if _, err := s.Create(ctx, again, 0); sessiond.ErrorCode(err) != sessiond.ECONFLICT {
		t.Errorf("Create of a taken id = %v, want a conflict", err)
	}

	// Take the false entries back out: the index must then be exact.
	s.mem.update(func(m *memIndex) {
		m.removeToken(ha, b.ID)
		m.removeToken(hn, a.ID)
		m.removeID(m.idHash(c.ID))
	})
	if err := checkConsistency(s); err != nil {
		t.Errorf("after the collisions: %v", err)
	}
}

// TestUpgrade opens stores of formats 2 and 3, as they were written (a
// token index in pebble in 2, a user index in both), and checks that the
// upgrade leaves format 4 with no key of either index, and sessions found
// by token and by user, both after the upgrade and after a reopen.
func TestUpgrade(t *testing.T) {
	for _, format := range []int{formatVersionTokens, formatVersionUsers} {
		t.Run(fmt.Sprint("format ", format), func(t *testing.T) { testUpgrade(t, format) })
	}
}

func testUpgrade(t *testing.T, format int) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := t.Context()
	var sessions []*sessiond.Session
	b := s.db.NewBatch()
	for i := range 50 {
		sess := testSession(i)
		sess.UserID = fmt.Sprint("user-", i%3)
		if _, err := s.Create(ctx, sess, 0); err != nil {
			t.Fatalf("Create: %v", err)
		}
		sessions = append(sessions, sess)
		// What formats 2 and 3 wrote beside each record.
		if err := b.Set(legacyUserKey(sess), nil, nil); err != nil {
			t.Fatal(err)
		}
		if format == formatVersionTokens {
			if err := b.Set(append([]byte{kindLegacyToken}, sess.TokenHash...), []byte(sess.ID), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Set(keyFormat, []byte(fmt.Sprint(format)), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.commit(b, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, round := range []string{"upgrade", "reopen"} {
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("%s: Open: %v", round, err)
		}
		v, closer, err := s.db.Get(keyFormat)
		if err != nil {
			t.Fatalf("%s: format: %v", round, err)
		}
		if got, want := string(v), "4"; got != want {
			t.Errorf("%s: format = %q, want %q", round, got, want)
		}
		closer.Close()
		if err := checkConsistency(s); err != nil { // reports any t or u key left
			t.Errorf("%s: %v", round, err)
		}
		for _, sess := range sessions {
			if got, err := s.GetByTokenHash(ctx, sess.TokenHash); err != nil || got.ID != sess.ID {
				t.Errorf("%s: GetByTokenHash = %v, %v; want %s", round, got, err, sess.ID)
			}
		}
		page, err := s.List(ctx, sessiond.Filter{UserID: "user-1"}, sessiond.Paging{Take: 100, Total: true})
		if err != nil || page.Total == nil || *page.Total != 17 || len(page.Data) != 17 {
			t.Errorf("%s: List of user-1 = %+v, %v; want its 17 sessions", round, page, err)
		}
		dup := testSession(1000)
		dup.TokenHash = sessions[7].TokenHash
		if _, err := s.Create(ctx, dup, 0); sessiond.ErrorCode(err) != sessiond.ECONFLICT {
			t.Errorf("%s: Create with a taken token = %v, want a conflict", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentMixedWriters runs creates, updates, touches, deletes and
// sweeps of overlapping sessions from many goroutines, then checks that
// the indexes (stored and in memory) still match the records.
func TestConcurrentMixedWriters(t *testing.T) {
	s := openTest(t, Options{SweepBatch: 7})
	ctx := t.Context()
	const n = 400
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				sess := testSession(i)
				sess.ExpireTime = t0.Add(time.Duration(i%3) * time.Hour)
				if _, err := s.Create(ctx, sess, 0); err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				if i%2 == 0 {
					_, err := s.Update(ctx, sess.ID, func(x *sessiond.Session) error {
						x.UserID = fmt.Sprintf("moved-%d", i%5)
						x.OpenTime = x.OpenTime.Add(time.Second)
						return nil
					})
					// The sweeper may have closed and purged the session
					// already (it expires at t0 when i%3 == 0): not found is
					// an answer here, any other error is not.
					if err != nil && sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
						t.Errorf("Update: %v", err)
					}
				}
				if err := s.Touch(ctx, []sessiond.Touch{{ID: sess.ID, Time: t0.Add(time.Minute)}}); err != nil {
					t.Errorf("Touch: %v", err)
				}
				if i%7 == 0 {
					if _, err := s.Delete(ctx, sess.ID); err != nil && sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
						t.Errorf("Delete: %v", err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			if _, err := s.CloseExpired(ctx, t0.Add(time.Duration(i)*10*time.Minute), 24*time.Hour); err != nil {
				t.Errorf("CloseExpired: %v", err)
			}
			if _, err := s.Purge(ctx, t0.Add(time.Hour)); err != nil {
				t.Errorf("Purge: %v", err)
			}
		}
	})
	wg.Wait()
	if err := checkConsistency(s); err != nil {
		t.Fatal(err)
	}
}

func TestContextCanceled(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Create(ctx, testSession(1), 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := s.Get(t.Context(), testSession(1).ID); sessiond.ErrorCode(err) != sessiond.ENOTFOUND {
		t.Errorf("canceled Create was stored: Get = %v", err)
	}
	if _, err := s.Get(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context = %v, want context.Canceled", err)
	}
}

func TestInvalidInput(t *testing.T) {
	s := openTest(t, Options{})
	ctx := t.Context()
	long := testSession(1)
	long.ID = string(make([]byte, maxIDLen+1))
	emptyID := testSession(2)
	emptyID.ID = ""
	longToken := testSession(3)
	longToken.TokenHash = make([]byte, maxTokenHashLen+1)
	for name, sess := range map[string]*sessiond.Session{"long id": long, "empty id": emptyID, "long token hash": longToken} {
		if _, err := s.Create(ctx, sess, 0); sessiond.ErrorCode(err) != sessiond.EINVALID {
			t.Errorf("Create(%s): code %q, want %q", name, sessiond.ErrorCode(err), sessiond.EINVALID)
		}
	}
	// A user_id too long to be a key is indexed by its hash.
	huge := testSession(4)
	huge.UserID = string(make([]byte, 100000))
	if _, err := s.Create(ctx, huge, 0); err != nil {
		t.Fatalf("Create(huge user_id): %v", err)
	}
	page, err := s.List(ctx, sessiond.Filter{UserID: huge.UserID}, sessiond.Paging{Take: 10})
	if err != nil || len(page.Data) != 1 {
		t.Errorf("List(huge user_id) = %v, %v; want the session", page, err)
	}
}

// ---- codec ----

func TestCodecRoundTrip(t *testing.T) {
	full := testSession(7)
	full.CloseTime = t0.Add(time.Hour + 123456789)
	full.CloseReason = sessiond.ReasonForced
	tests := []struct {
		name string
		sess *sessiond.Session
	}{
		{"every field", full},
		{"zero", &sessiond.Session{ID: "z"}},
		{"empty but not nil", &sessiond.Session{ID: "e", User: json.RawMessage{}, Data: json.RawMessage{}, TokenHash: []byte{}}},
		{"extreme times", &sessiond.Session{ID: "x",
			OpenTime:    time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
			RequestTime: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			ExpireTime:  time.Unix(-1, 0).UTC(),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := encodeSession(nil, tt.sess)
			if len(rec) > sessionSize(tt.sess) {
				t.Errorf("record is %d bytes, above sessionSize %d", len(rec), sessionSize(tt.sess))
			}
			got, err := decodeSession(tt.sess.ID, rec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if d := sessionDiff(got, tt.sess); d != "" {
				t.Error(d)
			}
			for _, p := range []struct {
				name string
				a, b []byte
			}{{"User", got.User, tt.sess.User}, {"Data", got.Data, tt.sess.Data}, {"TokenHash", got.TokenHash, tt.sess.TokenHash}} {
				if (p.a == nil) != (p.b == nil) {
					t.Errorf("%s: nil %v, want nil %v", p.name, p.a == nil, p.b == nil)
				}
			}
			for _, p := range []struct {
				name string
				a, b time.Time
			}{{"OpenTime", got.OpenTime, tt.sess.OpenTime}, {"RequestTime", got.RequestTime, tt.sess.RequestTime},
				{"CloseTime", got.CloseTime, tt.sess.CloseTime}, {"ExpireTime", got.ExpireTime, tt.sess.ExpireTime}} {
				if !p.a.Equal(p.b) || p.a.IsZero() != p.b.IsZero() {
					t.Errorf("%s = %v, want %v", p.name, p.a, p.b)
				}
			}
			if got.CloseTime.IsZero() && got.CloseTime != (time.Time{}) {
				t.Errorf("zero CloseTime decodes as %#v, want time.Time{}", got.CloseTime)
			}
		})
	}
}

// TestCodecCorrupt feeds every truncation and some bit flips of a record
// to the decoder: it must fail or succeed, never panic.
func TestCodecCorrupt(t *testing.T) {
	rec := encodeSession(nil, testSession(1))
	for n := range len(rec) {
		if _, err := decodeSession("x", rec[:n]); err == nil {
			t.Errorf("decoding %d of %d bytes succeeded", n, len(rec))
		}
	}
	for i := range rec {
		b := slices.Clone(rec)
		b[i] ^= 0xff
		decodeSession("x", b) // must not panic
	}
	b := slices.Clone(rec)
	b[0] = 99
	if _, err := decodeSession("x", b); err == nil {
		t.Errorf("decoding an unknown version succeeded")
	}
	key := encodeAPIKey(nil, &sessiond.APIKey{ID: "k", Name: "n", SecretHash: []byte{1}, Created: t0})
	for n := range len(key) {
		if _, err := decodeAPIKey("k", key[:n]); err == nil {
			t.Errorf("decoding %d of %d API key bytes succeeded", n, len(key))
		}
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999999999).UTC(),
		time.Unix(0, 0).UTC(),
		time.Unix(0, 1).UTC(),
		t0,
		t0.Add(time.Nanosecond),
		t0.Add(time.Millisecond),
		time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := appendTime(nil, times[i-1]), appendTime(nil, times[i])
		if string(a) >= string(b) {
			t.Errorf("key(%v) >= key(%v)", times[i-1], times[i])
		}
		if got := getTime(b); !got.Equal(times[i]) {
			t.Errorf("getTime(key(%v)) = %v", times[i], got)
		}
	}
}

// ---- benchmarks ----

var benchLarge = flag.Int("embedded.large", 100_000, "sessions prefilled in the large Get benchmarks")

// prefill stores n sessions, 10,000 per batch, as Create would.
func prefill(tb testing.TB, s *Store, n int) {
	tb.Helper()
	const chunk = 10_000
	for start := 0; start < n; start += chunk {
		b := s.db.NewBatch()
		var items []item
		for i := start; i < min(start+chunk, n); i++ {
			sess := testSession(i)
			if _, err := putSession(b, sess); err != nil {
				tb.Fatal(err)
			}
			items = append(items, itemOf(sess))
		}
		if err := s.commit(b, true); err != nil {
			tb.Fatalf("prefill: %v", err)
		}
		s.mem.update(func(m *memIndex) {
			for i, it := range items {
				m.add(it, testSession(start+i).TokenHash)
			}
		})
	}
}

// prefilled caches one prefilled store per size for the read benchmarks.
var prefilled sync.Map // int -> *Store

func prefilledStore(b *testing.B, n int) *Store {
	if s, ok := prefilled.Load(n); ok {
		return s.(*Store)
	}
	dir, err := os.MkdirTemp("", "embedded-bench-")
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	prefill(b, s, n)
	prefilled.Store(n, s)
	return s
}

func TestMain(m *testing.M) {
	code := m.Run()
	prefilled.Range(func(_, v any) bool {
		s := v.(*Store)
		s.Close()
		os.RemoveAll(filepath.Dir(s.Path()))
		return true
	})
	os.Exit(code)
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func benchSizes() []int { return []int{1000, *benchLarge} }

func BenchmarkGet(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			s := prefilledStore(b, n)
			ctx := context.Background()
			ids := make([]string, 1024)
			for i := range ids {
				ids[i] = testSession(i * 7919 % n).ID
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetByTokenHash(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			s := prefilledStore(b, n)
			ctx := context.Background()
			hashes := make([][]byte, 1024)
			for i := range hashes {
				hashes[i] = testSession(i * 7919 % n).TokenHash
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.GetByTokenHash(ctx, hashes[i%len(hashes)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetParallel(b *testing.B) {
	s := prefilledStore(b, *benchLarge)
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := int(next.Add(7919) % int64(*benchLarge))
			if _, err := s.Get(ctx, testSession(i).ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateParallel runs about 64 concurrent writers, on an empty
// store and on one holding -embedded.large sessions.
func BenchmarkCreateParallel(b *testing.B) {
	for _, n := range []int{0, *benchLarge} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			s := openTest(b, Options{})
			prefill(b, s, n)
			benchCreate(b, s, n)
		})
	}
}

// benchCreate creates b.N sessions from about 64 goroutines, numbered
// from first.
func benchCreate(b *testing.B, s *Store, first int) {
	var next atomic.Int64
	next.Store(int64(first))
	b.ReportAllocs()
	b.SetParallelism(max(1, 64/runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := s.Create(ctx, testSession(int(next.Add(1))), 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkUpdateParallel runs about 64 concurrent writers, each updating
// its own sessions among 10,000.
func BenchmarkUpdateParallel(b *testing.B) {
	const n = 10_000
	s := openTest(b, Options{})
	prefill(b, s, n)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(1, 64/runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := testSession(int(next.Add(1) % n)).ID
			_, err := s.Update(ctx, id, func(sess *sessiond.Session) error {
				sess.Data = json.RawMessage(`{"cart":[1,2,3],"theme":"light"}`)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkCreateSerial is one writer at a time: one commit, two fsyncs,
// per write.
func BenchmarkCreateSerial(b *testing.B) {
	s := openTest(b, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Create(ctx, testSession(i), 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList(b *testing.B) {
	s := prefilledStore(b, *benchLarge)
	ctx := context.Background()
	tests := []struct {
		name string
		f    sessiond.Filter
		p    sessiond.Paging
	}{
		{"first page", sessiond.Filter{}, sessiond.Paging{Take: 100}},
		{"user", sessiond.Filter{UserID: "user-42"}, sessiond.Paging{Take: 100, Total: true}},
		{"time range", sessiond.Filter{FromTime: t0.Add(time.Second), ToTime: t0.Add(2 * time.Second)}, sessiond.Paging{Take: 100, Total: true}},
		{"total of all", sessiond.Filter{}, sessiond.Paging{Take: 100, Total: true}},
		{"total of active", sessiond.Filter{Active: ptrTo(true), Now: t0.Add(time.Hour), IdleTimeout: time.Hour}, sessiond.Paging{Take: 100, Total: true}},
		{"total of a search", sessiond.Filter{Search: "user 42"}, sessiond.Paging{Take: 100, Total: true}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.List(ctx, tt.f, tt.p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCodec(b *testing.B) {
	sess := testSession(1)
	rec := encodeSession(nil, sess)
	js, _ := json.Marshal(sess)
	b.Run("binary/encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = encodeSession(buf[:0], sess)
		}
	})
	b.Run("binary/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeSession(sess.ID, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(sess); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s sessiond.Session
			if err := json.Unmarshal(js, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Logf("record sizes: binary %d bytes, json %d bytes", len(rec), len(js))
}

// BenchmarkSweep runs CloseExpired and Purge over -embedded.large active
// sessions of which none is due: the indexes make this cost nothing like
// a scan.
func BenchmarkSweep(b *testing.B) {
	s := prefilledStore(b, *benchLarge)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if ids, err := s.CloseExpired(ctx, t0.Add(time.Hour), 24*time.Hour); err != nil || len(ids) != 0 {
			b.Fatalf("CloseExpired = %d ids, %v", len(ids), err)
		}
		if ids, err := s.Purge(ctx, t0); err != nil || len(ids) != 0 {
			b.Fatalf("Purge = %d ids, %v", len(ids), err)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// BenchmarkTouch flushes 1,000 coalesced request_time updates per call
// (what the Service writes each second) into -embedded.large sessions.
func BenchmarkTouch(b *testing.B) {
	s := openTest(b, Options{})
	prefill(b, s, *benchLarge)
	ctx := context.Background()
	touches := make([]sessiond.Touch, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range touches {
			touches[j] = sessiond.Touch{
				ID:   testSession((i*len(touches) + j) * 7919 % *benchLarge).ID,
				Time: t0.Add(time.Duration(i+1) * time.Second),
			}
		}
		if err := s.Touch(ctx, touches); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(touches))/b.Elapsed().Seconds(), "touches/s")
}

// BenchmarkOpen measures Open of a store holding -embedded.large sessions:
// replaying nothing (Close flushed), it is one scan of the records that
// rebuilds the in-memory index. heap-B/session is the heap an open store
// holds per session.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	prefill(b, s, *benchLarge)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(openHeap(b, dir)/float64(*benchLarge), "heap-B/session")
}

// openHeap returns how much the Go heap grows by opening the store in dir:
// the in-memory index and what pebble keeps on the heap.
func openHeap(b *testing.B, dir string) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(after.HeapAlloc) - float64(before.HeapAlloc)
}

// TestTouchManySessions touches more sessions than one Touch chunk holds,
// with a cache too small for them all (so that some records come from the
// cache and some from pebble), and checks every session's request time
// afterwards: raised when the touch is later and the session active,
// unchanged otherwise, and the in-memory index and cache consistent.
func TestTouchManySessions(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, Options{CachedSessions: 100})
	const n = 3*touchChunk + 17
	want := make(map[string]time.Time, n)
	var touches []sessiond.Touch
	for i := range n {
		sess := testSession(i)
		if i%7 == 3 {
			sess.Active, sess.CloseTime, sess.CloseReason = false, sess.RequestTime, sessiond.ReasonClosed
		}
		if _, err := s.Create(ctx, sess, 0); err != nil {
			t.Fatalf("Create: %v", err)
		}
		at := sess.RequestTime.Add(time.Duration(i%5-1) * time.Minute) // earlier for i%5 == 0
		touches = append(touches, sessiond.Touch{ID: sess.ID, Time: at})
		want[sess.ID] = sess.RequestTime
		if sess.Active && at.After(sess.RequestTime) {
			want[sess.ID] = at
		}
	}
	if err := s.Touch(ctx, touches); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	for id, at := range want {
		got, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !got.RequestTime.Equal(at) {
			t.Errorf("session %s: request_time %v, want %v", id, got.RequestTime, at)
		}
	}
	if err := checkConsistency(s); err != nil {
		t.Fatal(err)
	}
}
