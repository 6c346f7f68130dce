package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"sessiond"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateTimeout bounds the migration of a schema, waiting for another
// instance's included.
const migrateTimeout = 10 * time.Minute

// sqlMigrationsTable creates the table of the applied versions.
const sqlMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now())`

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number and '_'", base)
		}
		text, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(text)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// migrate brings the schema to the newest embedded version, in one
// transaction under an advisory lock keyed on the schema, so that
// instances starting at once wait for each other and each version is
// applied once. A schema newer than this binary is refused.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrations()
	if err != nil {
		return sessiond.Internal(err)
	}
	known := all[len(all)-1].version
	// Not the operation timeout: a migration may rewrite a large table
	// (002 does, once), and instances starting meanwhile wait for its lock.
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, migrateTimeout))
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var schema *string
		if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		if schema == nil {
			return sessiond.Errorf(sessiond.EINVALID, "postgres store: no schema to use (does the search_path name an existing schema?)")
		}
		s.schema = *schema
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('sessiond.migrate.' || $1, 0))`, s.schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlMigrationsTable); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if current > known {
			return sessiond.Errorf(sessiond.EINVALID,
				"postgres store: schema %q is at version %d, newer than this sessiond knows (%d); run a newer sessiond",
				s.schema, current, known)
		}
		for _, m := range all {
			if m.version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
				return err
			}
			s.log.Info("postgres store: schema migrated", "schema", s.schema, "version", m.version, "file", m.name)
		}
		return nil
	})
	return s.wrap(err)
}
