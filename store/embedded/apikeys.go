package embedded

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"sessiond"
)

// CreateAPIKey stores a new key. ECONFLICT if the id exists; EINVALID if
// the id is empty or longer than 1024 bytes.
func (s *Store) CreateAPIKey(ctx context.Context, k *sessiond.APIKey) error {
	if k.ID == "" || len(k.ID) > maxIDLen {
		return sessiond.Errorf(sessiond.EINVALID, "api key id must be 1 to %d bytes", maxIDLen)
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.exit()
	key := apiKeyKey(k.ID)
	s.keyLock.Lock()
	defer s.keyLock.Unlock()
	if found, err := s.exists(key); err != nil {
		return err
	} else if found {
		return sessiond.Errorf(sessiond.ECONFLICT, "api key %s already exists", k.ID)
	}
	if err := s.fault.check(); err != nil {
		return err
	}
	if err := s.db.Set(key, encodeAPIKey(nil, k), pebble.Sync); err != nil {
		return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store write failed", Err: err}
	}
	return nil
}

// GetAPIKey returns the key. ENOTFOUND if there is none.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v, closer, err := s.db.Get(apiKeyKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, notFound("api key", id)
	} else if err != nil {
		return nil, sessiond.Internal(err)
	}
	defer closer.Close()
	k, err := decodeAPIKey(id, v)
	if err != nil {
		return nil, sessiond.Internal(err)
	}
	return k, nil
}

// ListAPIKeys returns every key, oldest first (ties by id).
func (s *Store) ListAPIKeys(ctx context.Context) ([]*sessiond.APIKey, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindAPIKey}, UpperBound: []byte{kindAPIKey + 1}})
	if err != nil {
		return nil, sessiond.Internal(err)
	}
	defer iter.Close()
	keys := []*sessiond.APIKey{}
	for iter.First(); iter.Valid(); iter.Next() {
		v, err := iter.ValueAndErr()
		if err != nil {
			return nil, sessiond.Internal(err)
		}
		k, err := decodeAPIKey(string(iter.Key()[1:]), v)
		if err != nil {
			return nil, sessiond.Internal(err)
		}
		keys = append(keys, k)
	}
	if err := iter.Error(); err != nil {
		return nil, sessiond.Internal(err)
	}
	slices.SortFunc(keys, func(a, b *sessiond.APIKey) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return keys, nil
}

// DeleteAPIKey removes the key. ENOTFOUND if there is none.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.exit()
	key := apiKeyKey(id)
	s.keyLock.Lock()
	defer s.keyLock.Unlock()
	if found, err := s.exists(key); err != nil {
		return err
	} else if !found {
		return notFound("api key", id)
	}
	if err := s.fault.check(); err != nil {
		return err
	}
	if err := s.db.Delete(key, pebble.Sync); err != nil {
		return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store write failed", Err: err}
	}
	return nil
}
