package embedded

import (
	"cmp"
	"context"
	"slices"

	"sessiond"
)

// CreateAPIKey stores a new key. ECONFLICT if the id exists; EINVALID if
// the id is empty or longer than 1024 bytes.
func (s *Store) CreateAPIKey(ctx context.Context, k *sessiond.APIKey) error {
	if k.ID == "" || len(k.ID) > maxIDLen {
		return sessiond.Errorf(sessiond.EINVALID, "api key id must be 1 to %d bytes", maxIDLen)
	}
	rec := encodeAPIKey(nil, k)
	id := []byte(k.ID)
	return s.write(ctx, func(t *txn) error {
		if t.apiKeys.Get(id) != nil {
			return sessiond.Errorf(sessiond.ECONFLICT, "api key %s already exists", k.ID)
		}
		return fatal(t.apiKeys.Put(id, rec))
	})
}

// GetAPIKey returns the key. ENOTFOUND if there is none.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	var k *sessiond.APIKey
	err := s.view(ctx, func(t *txn) error {
		v := t.apiKeyBucket().Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		k, err = decodeAPIKey(id, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, notFound("api key", id)
	}
	return k, nil
}

// ListAPIKeys returns every key, oldest first (ties by id).
func (s *Store) ListAPIKeys(ctx context.Context) ([]*sessiond.APIKey, error) {
	keys := []*sessiond.APIKey{}
	err := s.view(ctx, func(t *txn) error {
		return t.apiKeyBucket().ForEach(func(id, v []byte) error {
			k, err := decodeAPIKey(string(id), v)
			if err != nil {
				return err
			}
			keys = append(keys, k)
			return nil
		})
	})
	if err != nil {
		return nil, err
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
	key := []byte(id)
	return s.write(ctx, func(t *txn) error {
		if t.apiKeys.Get(key) == nil {
			return notFound("api key", id)
		}
		return fatal(t.apiKeys.Delete(key))
	})
}
