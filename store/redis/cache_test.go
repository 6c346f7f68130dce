package redis_test

import (
	"sync"
	"testing"

	"sessiond"
	"sessiond/store/cache"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
	"sessiond/store/storetest"
)

// The whole contract, two-handle part included, through the per-instance
// cache over Redis: as the daemon runs it. The two-handle part is where
// the cache must be kept right by the other handle's events.
func TestConformanceThroughCache(t *testing.T) {
	url := redistest.BaseURL()
	var (
		mu       sync.Mutex
		prefixes = map[sessiond.Store]string{}
	)
	storetest.Run(t, storetest.Engine{
		New: func(t *testing.T) sessiond.Store {
			prefix := redistest.Prefix(t, url)
			s := cache.New(open(t, url, redis.Options{Prefix: prefix}), cache.Options{})
			if _, ok := sessiond.Store(s).(sessiond.IDChooser); !ok {
				t.Fatal("the cache hides the engine's IDChooser")
			}
			mu.Lock()
			prefixes[s] = prefix
			mu.Unlock()
			return s
		},
		Reopen: func(t *testing.T, s sessiond.Store) sessiond.Store {
			mu.Lock()
			prefix := prefixes[s]
			mu.Unlock()
			return cache.New(open(t, url, redis.Options{Prefix: prefix}), cache.Options{})
		},
	})
}
