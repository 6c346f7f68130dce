package postgres

// SQLMigrationsTable lets tests build a schema at an older version as the
// engine would have.
const SQLMigrationsTable = sqlMigrationsTable
