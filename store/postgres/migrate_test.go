package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
)

// query runs sql on url (a schema's URL) with a connection of its own.
func query(t *testing.T, url, sql string, args ...any) pgx.Rows {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	rows, err := pgtest.Conn(t, url).Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return rows
}

func TestMigrateConcurrentOpens(t *testing.T) {
	url := pgtest.Schema(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), url, postgres.Options{})
			errs[i] = err
			if err == nil {
				s.Close()
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	versions, err := pgx.CollectRows(query(t, url, `SELECT version FROM schema_migrations ORDER BY version`), pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) == 0 || versions[0] != 1 {
		t.Fatalf("schema_migrations = %v, want each version once from 1", versions)
	}
	for i := 1; i < len(versions); i++ {
		if versions[i] != versions[i-1]+1 {
			t.Errorf("schema_migrations = %v, want each version once", versions)
		}
	}
	// A store opened on the migrated schema works.
	s := open(t, url, postgres.Options{})
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	url := pgtest.Schema(t)
	s := open(t, url, postgres.Options{})
	s.Close()
	query(t, url, `INSERT INTO schema_migrations (version) VALUES (9999)`).Close()

	_, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this sessiond knows") {
		t.Fatalf("Open on a newer schema = %v, want a refusal naming the newer version", err)
	}
	if !strings.Contains(err.Error(), "9999") {
		t.Errorf("refusal %q does not name the schema's version", err)
	}
}

func TestOpenMissingSchema(t *testing.T) {
	url := pgtest.WithParam(t, pgtest.BaseURL(), "search_path", "no_such_schema_sessiond")
	if _, err := postgres.Open(t.Context(), url, postgres.Options{}); err == nil || !strings.Contains(err.Error(), "no schema") {
		t.Fatalf("Open with a missing schema = %v, want a clear refusal", err)
	}
}
