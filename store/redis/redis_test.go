package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
	"sessiond/store/storetest"
)

// open opens a Store on url and closes it when the test ends.
func open(t *testing.T, url string, opts redis.Options) *redis.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// conformance runs the suite on url, each test under its own prefix.
func conformance(t *testing.T, url string) {
	var (
		mu       sync.Mutex
		prefixes = map[sessiond.Store]string{}
	)
	storetest.Run(t, storetest.Engine{
		New: func(t *testing.T) sessiond.Store {
			prefix := redistest.Prefix(t, url)
			s := open(t, url, redis.Options{Prefix: prefix})
			mu.Lock()
			prefixes[s] = prefix
			mu.Unlock()
			return s
		},
		Reopen: func(t *testing.T, s sessiond.Store) sessiond.Store {
			mu.Lock()
			prefix := prefixes[s]
			mu.Unlock()
			return open(t, url, redis.Options{Prefix: prefix})
		},
	})
	t.Run("GetMany", func(t *testing.T) {
		storetest.GetMany(t, open(t, url, redis.Options{Prefix: redistest.Prefix(t, url)}))
	})
}

func TestConformance(t *testing.T) { conformance(t, redistest.BaseURL()) }
