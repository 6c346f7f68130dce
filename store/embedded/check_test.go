package embedded

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"sessiond"
)

// checkedStore runs checkConsistency before closing, so that every
// conformance test ends with a full check of the store.
type checkedStore struct {
	*Store
	t *testing.T
}

func (c checkedStore) Close() error {
	if !c.isClosed() {
		if err := checkConsistency(c.Store); err != nil {
			c.t.Errorf("consistency check: %v", err)
		}
	}
	return c.Store.Close()
}

func (s *Store) isClosed() bool {
	s.life.RLock()
	defer s.life.RUnlock()
	return s.closed
}

// checkConsistency verifies that the user index keys, and the in-memory
// index (B-tree, id hashes and token map), hold exactly the entries the
// stored sessions imply, and that no key of an unknown kind (nor of the
// token index of format 2) is stored. Call it with no write running.
func checkConsistency(s *Store) error {
	type userKey struct {
		user uint64
		userEntry
	}
	iter, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	defer iter.Close()
	var (
		users = map[userKey]bool{} // user entries the sessions imply
		// active sessions per user hash
		activeUsers = map[uint64]int{}
		stored      = map[string]*sessiond.Session{}
		statKeys    [][2]string
		items       = map[item]bool{}
		ids         = map[uint64]int{}      // sessions per id hash
		tokens      = map[uint64][]string{} // ids per token hash's hash
		errs        []error
	)
	for iter.First(); iter.Valid(); iter.Next() {
		k := bytes.Clone(iter.Key())
		v, err := iter.ValueAndErr()
		if err != nil {
			return err
		}
		switch k[0] {
		case kindMeta, kindAPIKey:
		case kindSession:
			sess, err := decodeSession(string(k[1:]), v)
			if err != nil {
				return err
			}
			it := itemOf(sess)
			if it.user != 0 {
				users[userKey{it.user, it.userEntry()}] = true
				if it.active {
					activeUsers[it.user]++
				}
			}
			ids[s.mem.idHash(sess.ID)]++
			if len(sess.TokenHash) > 0 {
				h := s.mem.tokenHash(sess.TokenHash)
				tokens[h] = append(tokens[h], sess.ID)
			}
			items[it] = true
			stored[sess.ID] = sess
		case kindLegacyUser:
			errs = append(errs, fmt.Errorf("user index key of format 3 %x", k))
		case kindLegacyToken:
			errs = append(errs, fmt.Errorf("token index key of format 2 %x", k))
		case kindStats:
			id, svc, _ := bytes.Cut(k[1:], []byte{0})
			statKeys = append(statKeys, [2]string{string(id), string(svc)})
			if _, err := decodeStat(string(svc), v); err != nil {
				errs = append(errs, err)
			}
		default:
			errs = append(errs, fmt.Errorf("key of unknown kind %x", k))
		}
	}
	if err := iter.Error(); err != nil {
		return err
	}
	// Statistics: each of a stored session, each in the in-memory index,
	// and the index holds no more.
	indexed := 0
	s.stats.mu.Lock()
	for _, svcs := range s.stats.m {
		indexed += len(svcs)
	}
	for _, sk := range statKeys {
		if stored[sk[0]] == nil {
			errs = append(errs, fmt.Errorf("statistics of session %s, which does not exist", sk[0]))
		}
		if !slices.Contains(s.stats.m[sk[0]], sk[1]) {
			errs = append(errs, fmt.Errorf("statistics of session %s, service %q missing in memory", sk[0], sk[1]))
		}
	}
	s.stats.mu.Unlock()
	if indexed != len(statKeys) {
		errs = append(errs, fmt.Errorf("in-memory statistics index: %d entries, want %d", indexed, len(statKeys)))
	}
	s.mem.mu.RLock()
	s.mem.users.each(func(user uint64, e userEntry) {
		u := userKey{user, e}
		if !users[u] {
			errs = append(errs, fmt.Errorf("in-memory user index: stray or stale entry %+v", u))
		}
		delete(users, u)
	})
	for h, set := range s.mem.users {
		if set.active != activeUsers[h] {
			errs = append(errs, fmt.Errorf("in-memory user index: user hash %x counts %d active sessions, has %d", h, set.active, activeUsers[h]))
		}
	}
	s.mem.mu.RUnlock()
	for u := range users {
		errs = append(errs, fmt.Errorf("in-memory user index: missing %+v", u))
	}
	n := 0
	s.mem.snapshot().Ascend(func(it item) bool {
		n++
		if !items[it] {
			errs = append(errs, fmt.Errorf("in-memory index: stray or stale item %+v", it))
		}
		return true
	})
	if n != len(items) {
		errs = append(errs, fmt.Errorf("in-memory index: %d items, want %d", n, len(items)))
	}

	s.mem.mu.RLock()
	defer s.mem.mu.RUnlock()
	// The id hashes: each once in ids, and the sessions beyond the first
	// counted in idsShared (which holds no zero count).
	if got, want := len(s.mem.ids), len(ids); got != want {
		errs = append(errs, fmt.Errorf("in-memory ids: %d hashes, want %d", got, want))
	}
	for h, want := range ids {
		_, ok := s.mem.ids[h]
		if got := s.mem.idsShared[h] + 1; !ok || got != want {
			errs = append(errs, fmt.Errorf("in-memory ids: hash %x present %v, %d sessions; want %d", h, ok, got, want))
		}
	}
	for h, n := range s.mem.idsShared {
		if n <= 0 || ids[h] != n+1 {
			errs = append(errs, fmt.Errorf("in-memory ids: hash %x shared by %d more, want %d", h, n, ids[h]-1))
		}
	}
	// The token map: per hash, exactly the ids of the sessions with it.
	if got, want := len(s.mem.tokens), len(tokens); got != want {
		errs = append(errs, fmt.Errorf("in-memory token map: %d hashes, want %d", got, want))
	}
	for h, more := range s.mem.tokensMore {
		if _, ok := s.mem.tokens[h]; !ok || len(more) == 0 {
			errs = append(errs, fmt.Errorf("in-memory token map: hash %x has overflow %q but first %v", h, more, ok))
		}
	}
	for h, want := range tokens {
		first, ok := s.mem.tokens[h]
		got := append([]string{first}, s.mem.tokensMore[h]...)
		slices.Sort(got)
		slices.Sort(want)
		if !ok || !slices.Equal(got, want) {
			errs = append(errs, fmt.Errorf("in-memory token map: hash %x -> %q (present %v), want %q", h, got, ok, want))
		}
	}
	if _, closer, err := s.db.Get(keyFormat); err != nil {
		errs = append(errs, fmt.Errorf("format key: %w", err))
	} else {
		closer.Close()
	}
	// Every cached session is exactly its record.
	s.cache.entries(func(id string, v []byte, placed bool) {
		c, err := decodeSession(id, v)
		switch rec, ok := stored[id]; {
		case !placed:
			errs = append(errs, fmt.Errorf("cache holds session %s under another id's hash", id))
		case !ok:
			errs = append(errs, fmt.Errorf("cache holds session %s, which is not stored", id))
		case err != nil:
			errs = append(errs, fmt.Errorf("cache holds session %s as a bad record: %w", id, err))
		case !reflect.DeepEqual(c, rec):
			errs = append(errs, fmt.Errorf("cache holds session %s as %+v, stored as %+v", id, c, rec))
		}
	})
	return errors.Join(errs...)
}

var _ sessiond.Store = checkedStore{}

// TestCheckConsistencyCatches breaks the store or its in-memory index in
// one way at a time and checks that checkConsistency reports it.
func TestCheckConsistencyCatches(t *testing.T) {
	sess := testSession(1)
	tests := []struct {
		name    string
		corrupt func(s *Store) error
	}{
		{"stray id hash", func(s *Store) error {
			s.mem.update(func(m *memIndex) { m.addID(m.idHash("ghost")) })
			return nil
		}},
		{"id hash counted twice", func(s *Store) error {
			s.mem.update(func(m *memIndex) { m.addID(m.idHash(sess.ID)) })
			return nil
		}},
		{"missing id hash", func(s *Store) error {
			s.mem.update(func(m *memIndex) { m.removeID(m.idHash(sess.ID)) })
			return nil
		}},
		{"missing token", func(s *Store) error {
			s.mem.update(func(m *memIndex) { m.removeToken(m.tokenHash(sess.TokenHash), sess.ID) })
			return nil
		}},
		{"stray token candidate", func(s *Store) error {
			s.mem.update(func(m *memIndex) { m.addToken(m.tokenHash(sess.TokenHash), "ghost") })
			return nil
		}},
		{"token of the wrong session", func(s *Store) error {
			s.mem.update(func(m *memIndex) { m.tokens[m.tokenHash(sess.TokenHash)] = "ghost" })
			return nil
		}},
		{"stale item", func(s *Store) error {
			s.mem.update(func(m *memIndex) {
				it := itemOf(sess)
				it.active = false
				m.tree.ReplaceOrInsert(it)
			})
			return nil
		}},
		{"stale cache entry", func(s *Store) error {
			stale := sess.Clone()
			stale.RequestTime = stale.RequestTime.Add(time.Nanosecond)
			s.cache.set(stale.ID, makeEntry(stale.ID, encodeSession(nil, stale)))
			return nil
		}},
		{"cache entry of a session not stored", func(s *Store) error {
			ghost := testSession(2)
			s.cache.set(ghost.ID, makeEntry(ghost.ID, encodeSession(nil, ghost)))
			return nil
		}},
		{"cache entry under another id's hash", func(s *Store) error {
			sh, h := s.cache.locate(testSession(2).ID)
			sh.mu.Lock()
			sh.m[h] = makeEntry(sess.ID, encodeSession(nil, sess))
			sh.mu.Unlock()
			return nil
		}},
		{"token index key of format 2", func(s *Store) error {
			return s.db.Set(append([]byte{kindLegacyToken}, sess.TokenHash...), []byte(sess.ID), nil)
		}},
		{"user index key of format 3", func(s *Store) error {
			return s.db.Set(legacyUserKey(sess), nil, nil)
		}},
		{"missing user item", func(s *Store) error {
			it := itemOf(sess)
			s.mem.update(func(m *memIndex) { m.users.remove(it.user, it.userEntry()) })
			return nil
		}},
		{"stray user item", func(s *Store) error {
			it := itemOf(testSession(2))
			s.mem.update(func(m *memIndex) { m.users.add(it.user, it.userEntry()) })
			return nil
		}},
		{"stale user item", func(s *Store) error {
			s.mem.update(func(m *memIndex) {
				it := itemOf(sess)
				m.users.remove(it.user, it.userEntry())
				it.open = stampOf(sess.OpenTime.Add(time.Second))
				m.users.add(it.user, it.userEntry())
			})
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{})
			if _, err := s.Create(t.Context(), sess, 0); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := checkConsistency(s); err != nil {
				t.Fatalf("before breaking: %v", err)
			}
			if err := tt.corrupt(s); err != nil {
				t.Fatal(err)
			}
			if err := checkConsistency(s); err == nil {
				t.Errorf("checkConsistency found nothing wrong")
			}
		})
	}
}

// legacyUserKey returns the user index key format 3 wrote for s: the kind,
// the uvarint length of the user_id (its SHA-256 when longer than 256
// bytes), the user_id, the open time with every bit inverted, the id.
func legacyUserKey(s *sessiond.Session) []byte {
	k := []byte{kindLegacyUser}
	user := []byte(s.UserID)
	k = binary.AppendUvarint(k, uint64(len(user)))
	if len(user) > 256 {
		h := sha256.Sum256(user)
		user = h[:]
	}
	k = append(k, user...)
	n := len(k)
	k = appendTime(k, s.OpenTime)
	for i := n; i < len(k); i++ {
		k[i] = ^k[i]
	}
	return append(k, s.ID...)
}
