package sessiond

import (
	"context"
	"slices"
	"sync"
	"time"
)

// API keys and their cache. Known and unknown ids alike are cached, for
// APIKeyCacheTTL at most, so that both cost the same (one store read per
// TTL): otherwise an unknown id would cost a store read every time and a
// known one none, which a client can measure and which would let it load
// the store at will. The cache learns of creations and revocations, on
// every instance, from the event stream; while the stream is lost it is
// empty and every lookup reads the store. The TTL only bounds what a
// publication that never arrived (a crash between commit and publish)
// could leave stale.

// maxUnknownKeys bounds the key ids remembered as unknown: any client can
// send any id.
const maxUnknownKeys = 4096

type keyCache struct {
	mu   sync.Mutex
	keys map[string]cachedKey
	// unknown holds, oldest first from next, the ids cached as unknown, so
	// that no more than maxUnknownKeys of them are.
	unknown []cachedID
	next    int
	// lost: the stream may have missed events; cache nothing.
	lost bool
	// gen counts invalidations: a lookup caches what it read only if none
	// came between its read and its put, which may predate the event.
	gen uint64
}

type cachedKey struct {
	key     *APIKey // nil: known not to exist
	fetched time.Time
}

type cachedID struct {
	id      string
	fetched time.Time
}

// onEvents keeps the cache right from the event stream. Session events,
// the most, pass without the lock.
func (c *keyCache) onEvents(evs []Event) {
	if !slices.ContainsFunc(evs, func(e Event) bool {
		switch e.Kind {
		case EventKeyCreated, EventKeyRevoked, EventLost, EventResumed:
			return true
		}
		return false
	}) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range evs {
		switch e.Kind {
		case EventKeyCreated, EventKeyRevoked:
			delete(c.keys, e.APIKeyID)
			c.gen++
		case EventLost:
			c.gen++
			c.lost = true
			clear(c.keys)
			c.unknown, c.next = c.unknown[:0], 0
		case EventResumed:
			c.lost = false
		}
	}
}

// get returns the cached key of id (nil: known not to exist) and whether
// it was cached and fresh at now; else the generation to put with.
func (c *keyCache) get(id string, now time.Time, ttl time.Duration) (*APIKey, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[id]
	if !ok || now.Sub(k.fetched) >= ttl {
		return nil, false, c.gen
	}
	return k.key, true, c.gen
}

// put caches what the store said of id, read at fetched after get
// returned gen, unless the stream is lost or an invalidation came since.
func (c *keyCache) put(id string, k *APIKey, fetched time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost || c.gen != gen {
		return
	}
	c.keys[id] = cachedKey{key: k, fetched: fetched}
	if k != nil {
		return
	}
	if len(c.unknown) < maxUnknownKeys {
		c.unknown = append(c.unknown, cachedID{id, fetched})
		return
	}
	old := c.unknown[c.next]
	if ck, ok := c.keys[old.id]; ok && ck.key == nil && ck.fetched.Equal(old.fetched) {
		delete(c.keys, old.id)
	}
	c.unknown[c.next] = cachedID{id, fetched}
	c.next = (c.next + 1) % maxUnknownKeys
}

// prune drops entries older than ttl.
func (c *keyCache) prune(now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, k := range c.keys {
		if now.Sub(k.fetched) >= ttl {
			delete(c.keys, id)
		}
	}
}

// CreateAPIKey creates a key and returns it with its secret, shown this
// once and stored only as a hash.
func (s *Service) CreateAPIKey(ctx context.Context, name string) (*APIKey, string, error) {
	if len(name) > 200 {
		return nil, "", Errorf(EINVALID, "name is longer than 200 characters")
	}
	secret := NewSecret()
	now := s.clock.Now()
	k := &APIKey{ID: NewID(), Name: name, SecretHash: HashSecret(secret), Created: now}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	s.publish(ctx, Event{Kind: EventKeyCreated, APIKeyID: k.ID, Time: now})
	// Known here without a read: cache it (after the event, which drops it).
	_, _, gen := s.keys.get(k.ID, now, s.cfg.APIKeyCacheTTL)
	s.keys.put(k.ID, k, now, gen)
	return k, secret, nil
}

// ListAPIKeys returns every key.
func (s *Service) ListAPIKeys(ctx context.Context) ([]*APIKey, error) {
	return s.store.ListAPIKeys(ctx)
}

// GetAPIKey returns one key (never its secret, which is not stored).
func (s *Service) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	if id == "" {
		return nil, Errorf(EINVALID, "api key id is required")
	}
	return s.store.GetAPIKey(ctx, id)
}

// RevokeAPIKey deletes a key: its secret stops working at once, on every
// instance, and every session it opened is closed, so its tokens stop
// working too.
func (s *Service) RevokeAPIKey(ctx context.Context, id string) error {
	if id == "" {
		return Errorf(EINVALID, "api key id is required")
	}
	if err := s.store.DeleteAPIKey(ctx, id); err != nil {
		return err
	}
	s.publish(ctx, Event{Kind: EventKeyRevoked, APIKeyID: id, Time: s.clock.Now()})
	// Close its sessions. Tokens of this key already fail (the key is gone);
	// closing makes that visible and frees their directories. Pending
	// touches are written first, so that a session alive only by them is
	// found too.
	if err := s.FlushTouches(ctx); err != nil {
		return err
	}
	keyID := id
	for {
		page, err := s.store.List(ctx, Filter{APIKeyID: &keyID, Active: ptr(true), Now: s.clock.Now(), IdleTimeout: s.cfg.IdleTimeout}, Paging{Take: 500})
		if err != nil {
			return err
		}
		if len(page.Data) == 0 {
			return nil
		}
		for _, sess := range page.Data {
			if _, err := s.CloseSession(ctx, sess.ID, ReasonRevoked); err != nil && ErrorCode(err) != ENOTFOUND {
				return err
			}
		}
	}
}

// apiKey returns the key of id, or nil when there is none, from the cache
// when it can.
func (s *Service) apiKey(ctx context.Context, id string, now time.Time) (*APIKey, error) {
	k, ok, gen := s.keys.get(id, now, s.cfg.APIKeyCacheTTL)
	if ok {
		return k, nil
	}
	k, err := s.store.GetAPIKey(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		k = nil
	} else if err != nil {
		return nil, err
	}
	s.keys.put(id, k, now, gen)
	return k, nil
}
