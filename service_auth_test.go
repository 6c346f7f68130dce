package sessiond_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/memory"
)

// countingStore is a memory store that counts its API key reads.
type countingStore struct {
	*memory.Store
	keyReads atomic.Int64
}

func (c *countingStore) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	c.keyReads.Add(1)
	return c.Store.GetAPIKey(ctx, id)
}

// An unknown API key costs the same store reads as a known key with a
// wrong secret: one per cache period, not one per request.
func TestAuthenticateUnknownKeySameWork(t *testing.T) {
	store := &countingStore{Store: memory.New()}
	e := newEnvOver(t, store, sessiond.Config{})
	// A key created by another instance: this one has never seen it.
	other := sessiond.NewService(store, e.clk, sessiond.Config{}, nil)
	known, _, err := other.CreateAPIKey(t.Context(), "known")
	if err != nil {
		t.Fatal(err)
	}

	reads := func(creds sessiond.Credentials) int64 {
		t.Helper()
		before := store.keyReads.Load()
		for range 20 {
			_, err := e.svc.Authenticate(t.Context(), creds)
			wantCode(t, "Authenticate", err, sessiond.EUNAUTHORIZED)
		}
		return store.keyReads.Load() - before
	}
	knownReads := reads(sessiond.Credentials{APIKey: known.ID, Secret: "wrong"})
	unknownReads := reads(sessiond.Credentials{APIKey: "0123456789abcdef0123456789abcdef", Secret: "wrong"})
	if knownReads != unknownReads || knownReads != 1 {
		t.Errorf("store reads for 20 attempts: known key with a wrong secret %d, unknown key %d; want 1 and 1", knownReads, unknownReads)
	}
}

// Unknown key ids are remembered in a bounded cache: many of them still
// work as unknown, and a known key keeps working.
func TestAuthenticateManyUnknownKeys(t *testing.T) {
	store := &countingStore{Store: memory.New()}
	e := newEnvOver(t, store, sessiond.Config{})
	k, secret := e.createKey(t, "k")
	for i := range 10000 {
		_, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{APIKey: sessiond.NewID(), Secret: "x"})
		if sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
			t.Fatalf("attempt %d: %v, want unauthorized", i, err)
		}
	}
	if _, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{APIKey: k.ID, Secret: secret}); err != nil {
		t.Errorf("Authenticate with the known key: %v", err)
	}
}

// sharedStore is a store that two Services share as two instances would,
// with one stream between them.
type sharedStore struct {
	sessiond.Store
	stream sessiond.Stream
}

func (s sharedStore) Stream() sessiond.Stream { return s.stream }

// The key cache keeps revocation working: revoked here or by another
// instance on the same stream, at once; by an instance whose event never
// arrived, once the cache period has passed on the service's clock.
func TestAuthenticateRevokedKeyCached(t *testing.T) {
	store := sharedStore{&countingStore{Store: memory.New()}, sessiond.NewLocalStream("test")}
	ttl := 5 * time.Second
	e := newEnvOver(t, store, sessiond.Config{APIKeyCacheTTL: ttl})
	other := sessiond.NewService(store, e.clk, sessiond.Config{APIKeyCacheTTL: ttl}, nil)
	deaf := sessiond.NewService(store.Store, e.clk, sessiond.Config{APIKeyCacheTTL: ttl}, nil) // its own stream
	a, secretA := e.createKey(t, "a")
	b, secretB := e.createKey(t, "b")
	c, secretC := e.createKey(t, "c")
	for _, c := range []sessiond.Credentials{{APIKey: a.ID, Secret: secretA}, {APIKey: b.ID, Secret: secretB}, {APIKey: c.ID, Secret: secretC}} {
		e.authenticate(t, c) // cached
	}

	if err := e.svc.RevokeAPIKey(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Authenticate(t.Context(), sessiond.Credentials{APIKey: a.ID, Secret: secretA})
	wantCode(t, "the key revoked here", err, sessiond.EUNAUTHORIZED)

	if err := other.RevokeAPIKey(t.Context(), b.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(t.Context(), sessiond.Credentials{APIKey: b.ID, Secret: secretB})
	wantCode(t, "the key revoked by another instance", err, sessiond.EUNAUTHORIZED)

	if err := deaf.RevokeAPIKey(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	e.authenticate(t, sessiond.Credentials{APIKey: c.ID, Secret: secretC}) // not told: cached
	e.clk.Add(ttl)
	_, err = e.svc.Authenticate(t.Context(), sessiond.Credentials{APIKey: c.ID, Secret: secretC})
	wantCode(t, "the key revoked untold, after the cache period", err, sessiond.EUNAUTHORIZED)
}

// While the stream is lost, nothing is served from the key cache: every
// lookup reads the store; once it has resumed, the cache serves again.
func TestAPIKeyCacheReadsThroughWhileStreamLost(t *testing.T) {
	counting := &countingStore{Store: memory.New()}
	stream := sessiond.NewLocalStream("test")
	e := newEnvOver(t, sharedStore{counting, stream}, sessiond.Config{})
	k, secret := e.createKey(t, "k")
	cred := sessiond.Credentials{APIKey: k.ID, Secret: secret}
	e.authenticate(t, cred)
	before := counting.keyReads.Load()
	e.authenticate(t, cred)
	if n := counting.keyReads.Load() - before; n != 0 {
		t.Fatalf("cached key read the store %d times", n)
	}
	stream.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
	before = counting.keyReads.Load()
	for range 3 {
		e.authenticate(t, cred)
	}
	if n := counting.keyReads.Load() - before; n != 3 {
		t.Errorf("while lost: %d store reads for 3 lookups, want 3", n)
	}
	stream.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
	e.authenticate(t, cred)
	before = counting.keyReads.Load()
	e.authenticate(t, cred)
	if n := counting.keyReads.Load() - before; n != 0 {
		t.Errorf("after resumed: %d store reads, want 0", n)
	}
}

// Authenticate marks the failures that are guesses with
// ErrWrongCredentials, and only those.
func TestAuthenticateWrongCredentials(t *testing.T) {
	e := newEnv(t, sessiond.Config{IdleTimeout: time.Hour})
	a, secretA := e.createKey(t, "a")
	_, token := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID})
	closed, closedToken := e.open(t, sessiond.OpenRequest{APIKeyID: a.ID})
	if _, err := e.svc.CloseSession(t.Context(), closed.ID, sessiond.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		creds sessiond.Credentials
		wrong bool
	}{
		{name: "unknown token", creds: sessiond.Credentials{Token: "not-a-token"}, wrong: true},
		{name: "unknown key", creds: sessiond.Credentials{APIKey: "0123456789abcdef0123456789abcdef", Secret: secretA}, wrong: true},
		{name: "wrong secret", creds: sessiond.Credentials{APIKey: a.ID, Secret: "wrong"}, wrong: true},
		{name: "key without secret", creds: sessiond.Credentials{APIKey: a.ID}, wrong: true},
		{name: "closed session's token", creds: sessiond.Credentials{Token: closedToken}},
		{name: "nothing", creds: sessiond.Credentials{}},
		{name: "secret without key", creds: sessiond.Credentials{Secret: secretA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.Authenticate(t.Context(), tt.creds)
			wantCode(t, "Authenticate", err, sessiond.EUNAUTHORIZED)
			if got := errors.Is(err, sessiond.ErrWrongCredentials); got != tt.wrong {
				t.Errorf("errors.Is(%v, ErrWrongCredentials) = %v, want %v", err, got, tt.wrong)
			}
		})
	}
	e.authenticate(t, sessiond.Credentials{Token: token})
}
