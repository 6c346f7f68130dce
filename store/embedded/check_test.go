package embedded

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

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

// checkConsistency verifies that the token and user index keys, and the
// in-memory index, hold exactly the entries the stored sessions imply, and
// that no key of an unknown kind is stored. Call it with no write running.
func checkConsistency(s *Store) error {
	iter, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	defer iter.Close()
	var (
		users     = map[string]bool{}   // user index keys the sessions imply
		tokens    = map[string]string{} // token index entries not yet seen
		allTokens = map[string]string{}
		items     = map[item]bool{}
		errs      []error
	)
	// Sessions come before tokens and user keys in key order ('s' < 't' <
	// 'u'), so the wanted entries are complete when those are checked.
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
			if uk := userIndexKey(sess); uk != nil {
				users[string(uk)] = true
			}
			if len(sess.TokenHash) > 0 {
				tokens[string(sess.TokenHash)] = sess.ID
				allTokens[string(sess.TokenHash)] = sess.ID
			}
			items[itemOf(sess)] = true
		case kindToken:
			hash := string(k[1:])
			if id, ok := tokens[hash]; !ok || id != string(v) {
				errs = append(errs, fmt.Errorf("token %x -> %q, want %q", hash, v, id))
			}
			delete(tokens, hash)
		case kindUser:
			if !users[string(k)] {
				errs = append(errs, fmt.Errorf("stray user index key %x", k))
			}
			delete(users, string(k))
		default:
			errs = append(errs, fmt.Errorf("key of unknown kind %x", k))
		}
	}
	if err := iter.Error(); err != nil {
		return err
	}
	if len(tokens) > 0 {
		errs = append(errs, fmt.Errorf("%d token index entries missing", len(tokens)))
	}
	if len(users) > 0 {
		errs = append(errs, fmt.Errorf("%d user index entries missing", len(users)))
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
	entries := len(s.mem.tokens)
	for _, n := range s.mem.shared {
		entries += n
	}
	s.mem.mu.RUnlock()
	if entries != len(allTokens) {
		errs = append(errs, fmt.Errorf("in-memory token map: %d entries, want %d", entries, len(allTokens)))
	}
	for hash, id := range allTokens {
		if got, present := s.mem.tokenRef([]byte(hash)); !present || got != id && got != "" {
			errs = append(errs, fmt.Errorf("in-memory token map: %x -> %q, %v; want %q", hash, got, present, id))
		}
	}
	if _, closer, err := s.db.Get(keyFormat); err != nil {
		errs = append(errs, fmt.Errorf("format key: %w", err))
	} else {
		closer.Close()
	}
	return errors.Join(errs...)
}

var _ sessiond.Store = checkedStore{}
