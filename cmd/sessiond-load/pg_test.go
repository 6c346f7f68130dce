package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
)

// The baseline's schemas are made, migrated, filled from a daemon's and
// dropped; its handlers find the daemon's sessions by id and by token and
// insert new ones.
func TestBareDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	schemas := &pgSchemas{base: pgtest.BaseURL()}
	t.Cleanup(schemas.dropAll)

	// A daemon's schema, with one session.
	name, dbURL, err := schemas.create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	token := sessiond.NewSecret()
	now := time.Now().UTC()
	sess := &sessiond.Session{ID: sessiond.NewID(), UserID: "u1", Active: true, OpenTime: now, RequestTime: now,
		Data: []byte(`{"n":1}`), TokenHash: sessiond.HashSecret(token)}
	if _, err := st.Create(ctx, sess, 0); err != nil {
		t.Fatal(err)
	}

	b, err := openBareDB(ctx, schemas)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.copySessions(ctx, name); err != nil {
		t.Fatal(err)
	}
	insertOnly := *b
	insertOnly.insertOnly = true
	fixed := []byte(`{}`)
	serve := func(h http.Handler, body string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "POST", "/", strings.NewReader(body)))
		return w.Code
	}
	for _, c := range []struct {
		name string
		h    http.Handler
		body string
		want int
	}{
		{"get", b.get(fixed), `{"session_id":"` + sess.ID + `"}`, http.StatusOK},
		{"get unknown", b.get(fixed), `{"session_id":"` + sessiond.NewID() + `"}`, http.StatusNotFound},
		{"verify", b.verify(fixed), `{"token":"` + token + `"}`, http.StatusOK},
		{"verify unknown", b.verify(fixed), `{"token":"` + sessiond.NewSecret() + `"}`, http.StatusNotFound},
		{"open", b.open(fixed), `{"user_id":"u7","user_name":"Load"}`, http.StatusOK},
		{"open, the INSERT alone", insertOnly.open(fixed), `{"user_id":"u7","user_name":"Load"}`, http.StatusOK},
	} {
		if got := serve(c.h, c.body); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE user_id = 'u7' AND active`).Scan(&n); err != nil || n != 2 {
		t.Errorf("sessions of u7 after two opens: %d (%v), want 2", n, err)
	}

	st.Close()
	b.Close()
	schemas.dropAll()
	conn := pgtest.Conn(t, pgtest.BaseURL())
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)`,
		[]string{name, b.schema}).Scan(&left); err != nil || left != 0 {
		t.Errorf("schemas left after dropAll: %d (%v)", left, err)
	}
}
