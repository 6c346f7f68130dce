package postgres_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	t.Run("GetMany", func(t *testing.T) { storetest.GetMany(t, open(t, pgtest.Schema(t), postgres.Options{})) })
}

// A database that cannot be reached is EUNAVAILABLE, at once when it
// refuses the connection.
func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = postgres.Open(t.Context(), "postgres://postgres@"+addr+"/test?sslmode=disable", postgres.Options{OpTimeout: time.Second})
	if code := sessiond.ErrorCode(err); code != sessiond.EUNAVAILABLE {
		t.Errorf("Open on a closed port = %v, want code %s", err, sessiond.EUNAVAILABLE)
	}
}

// Both URL schemes open the store; a bad URL is EINVALID.
func TestOpenURLForms(t *testing.T) {
	url := pgtest.Schema(t)
	s := open(t, strings.Replace(url, "postgres://", "postgresql://", 1), postgres.Options{})
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// The URL's application_name names the connections.
	open(t, pgtest.WithParam(t, url, "application_name", "edge"), postgres.Options{Origin: t.Name()})
	names, err := pgx.CollectRows(query(t, pgtest.BaseURL(), `SELECT DISTINCT application_name FROM pg_stat_activity
		WHERE application_name LIKE 'edge%' ORDER BY 1`), pgx.RowTo[string])
	if want := []string{"edge " + t.Name(), "edge-listen " + t.Name()}; err != nil || !slices.Equal(names, want) {
		t.Errorf("application names = %q, %v; want %q", names, err, want)
	}
	if _, err := postgres.Open(t.Context(), "postgres://[bad", postgres.Options{}); sessiond.ErrorCode(err) != sessiond.EINVALID {
		t.Errorf("Open with a bad URL = %v, want code %s", err, sessiond.EINVALID)
	}
}
