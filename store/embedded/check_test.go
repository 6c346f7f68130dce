package embedded

import (
	"errors"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"sessiond"
)

// checkedStore runs checkConsistency before closing, so that every
// conformance test ends with a full check of the file.
type checkedStore struct {
	*Store
	t *testing.T
}

func (c checkedStore) Close() error {
	if !c.closed.Load() {
		if err := checkConsistency(c.Store); err != nil {
			c.t.Errorf("consistency check: %v", err)
		}
	}
	return c.Store.Close()
}

// checkConsistency verifies bbolt's own structure, then that the token
// and index buckets hold exactly the entries the stored sessions imply.
func checkConsistency(s *Store) error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		var want [numIndexes]map[string]bool
		for i := range want {
			want[i] = map[string]bool{}
		}
		tokens := map[string]string{}
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			sess, err := decodeSession(string(k), v)
			if err != nil {
				return err
			}
			for i, key := range sessionIndexes(sess) {
				if key != nil {
					want[i][string(key)] = true
				}
			}
			if len(sess.TokenHash) > 0 {
				tokens[string(sess.TokenHash)] = sess.ID
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, name := range indexBuckets {
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				if !want[i][string(k)] {
					return fmt.Errorf("%s: stray key %x", name, k)
				}
				delete(want[i], string(k))
				return nil
			})
			if err != nil {
				return err
			}
			if len(want[i]) > 0 {
				return fmt.Errorf("%s: %d keys missing", name, len(want[i]))
			}
		}
		n := 0
		err = tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			n++
			if tokens[string(k)] != string(v) {
				return fmt.Errorf("tokens: %x -> %q, want %q", k, v, tokens[string(k)])
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n != len(tokens) {
			return fmt.Errorf("tokens: %d entries, want %d", n, len(tokens))
		}
		return nil
	})
}

var _ sessiond.Store = checkedStore{}
