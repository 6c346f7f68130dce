package cache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/cache"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
	"sessiond/store/storetest"
)

// The whole contract, two-handle part included, through the cache over a
// real PostgreSQL: as the daemon runs it. The two-handle part is where the
// cache must be kept right by the other handle's events (LISTEN/NOTIFY).
func TestConformanceOverPostgres(t *testing.T) {
	var (
		mu   sync.Mutex
		urls = map[sessiond.Store]string{}
	)
	open := func(t *testing.T, url string) *cache.Store {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		pg, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		return cache.New(pg, cache.Options{})
	}
	storetest.Run(t, storetest.Engine{
		New: func(t *testing.T) sessiond.Store {
			url := pgtest.Schema(t)
			s := open(t, url)
			mu.Lock()
			urls[s] = url
			mu.Unlock()
			return s
		},
		Reopen: func(t *testing.T, s sessiond.Store) sessiond.Store {
			mu.Lock()
			url := urls[s]
			mu.Unlock()
			return open(t, url)
		},
	})
}
