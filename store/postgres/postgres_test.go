package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
	"sessiond/store/storetest"
)

// open opens a Store on url and closes it when the test ends.
func open(t *testing.T, url string, opts postgres.Options) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	var (
		mu   sync.Mutex
		urls = map[sessiond.Store]string{}
	)
	storetest.Run(t, storetest.Engine{
		New: func(t *testing.T) sessiond.Store {
			url := pgtest.Schema(t)
			s := open(t, url, postgres.Options{})
			mu.Lock()
			urls[s] = url
			mu.Unlock()
			return s
		},
		Reopen: func(t *testing.T, s sessiond.Store) sessiond.Store {
			mu.Lock()
			url := urls[s]
			mu.Unlock()
			return open(t, url, postgres.Options{})
		},
	})
}
