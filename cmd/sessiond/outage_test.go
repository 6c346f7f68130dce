package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"sessiond/store/postgres/pgtest"
	"sessiond/store/redis/redistest"
)

// outageBound is how long any call may take while the database is down:
// the engine's operation timeout (5 s) and some slack.
const outageBound = 8 * time.Second

// TestPostgresOutage runs sessiond on a private PostgreSQL server, stops the
// server under load and starts it again: meanwhile every call answers
// within outageBound, either as before or with a 503 in its dialect, and
// /health/ready says not ready; afterwards the same process serves again
// by itself, and every write acknowledged before, during or after the
// outage is in the database.
func TestPostgresOutage(t *testing.T) {
	srv := pgtest.StartServer(t)
	testOutage(t, srv.URL(), srv.Stop, srv.Start)
}

// TestRedisOutage is the same on a private Redis server (appendonly,
// appendfsync always, so that its restart keeps what it acknowledged).
func TestRedisOutage(t *testing.T) {
	srv := redistest.StartServer(t)
	testOutage(t, srv.URL(), srv.Stop, srv.Start)
}

func testOutage(t *testing.T, store string, stop, start func()) {
	d := startDaemon(t, t.TempDir(), "--store", store)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	var (
		mu         sync.Mutex
		records    = map[string]*record{}
		acks, errs int
		bad        []string // answers that are neither success nor a proper 503
		slowest    time.Duration
	)
	// answer checks one answer; it reports whether the call succeeded.
	answer := func(what string, took time.Duration, code int, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		slowest = max(slowest, took)
		switch {
		case err != nil:
			bad = append(bad, what+": "+err.Error())
		case took > outageBound:
			bad = append(bad, what+": answered after "+took.String())
		case code == http.StatusOK:
			return true
		case code == http.StatusServiceUnavailable:
			errs++
		default:
			bad = append(bad, what+": status "+http.StatusText(code))
		}
		return false
	}
	timed := func(ctx context.Context, name string, params, out any) bool {
		start := time.Now()
		code, err := command(ctx, client, d.public, name, params, out)
		if ctx.Err() != nil {
			return false
		}
		return answer(name, time.Since(start), code, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				var s wireSession
				if !timed(ctx, "open_session", map[string]any{"user_id": "u", "data": map[string]int{"v": 0}}, &s) {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				rec := &record{}
				records[s.ID] = rec
				acks++
				mu.Unlock()
				for v := 1; v <= 3 && ctx.Err() == nil; v++ {
					mu.Lock()
					rec.attempted = v
					mu.Unlock()
					if !timed(ctx, "store_session_data", map[string]any{"session_id": s.ID, "data": map[string]int{"v": v}}, nil) {
						break
					}
					mu.Lock()
					rec.acked = v
					acks++
					mu.Unlock()
				}
				timed(ctx, "get_session_by_id", map[string]any{"session_id": s.ID}, nil)
			}
		})
	}
	waitAcks := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		mu.Lock()
		from := acks
		mu.Unlock()
		for {
			mu.Lock()
			got := acks - from
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d writes acknowledged in 30 s (want %d)", got, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ready := func() int {
		a := call(t, client, http.MethodGet, d.admin+"/health/ready", nil)
		return a.status
	}

	waitAcks(200)
	stop()
	stopped := time.Now()
	// Down: calls fail with 503 within the bound, readiness says so.
	time.Sleep(2 * time.Second)
	if got := ready(); got != http.StatusServiceUnavailable {
		t.Errorf("/health/ready with the database down: %d, want 503", got)
	}
	mu.Lock()
	errsDown := errs
	mu.Unlock()
	if errsDown == 0 {
		t.Errorf("no call answered 503 in the %v the database was down", time.Since(stopped).Round(time.Millisecond))
	}
	for _, probe := range []struct {
		name   string
		params any
	}{
		{"open_session", map[string]any{"user_id": "probe"}},
		{"get_sessions", map[string]any{}},
	} {
		a := call(t, client, http.MethodPost, d.public+"/v1/sessions/"+probe.name, probe.params)
		t.Logf("%s with the database down: %d %s", probe.name, a.status, a.body)
		var e pipError
		if json.Unmarshal(a.body, &e); a.status != http.StatusServiceUnavailable || e.Code != "SERVICE_UNAVAILABLE" {
			t.Errorf("%s with the database down: %d %s, want a 503 ErrorDescription SERVICE_UNAVAILABLE", probe.name, a.status, a.body)
		}
	}

	start()
	restarted := time.Now()
	waitAcks(200)
	mu.Lock()
	t.Logf("writes resumed within %v of the restart; %d calls answered 503 meanwhile; slowest answer %v",
		time.Since(restarted).Round(time.Millisecond), errs, slowest)
	mu.Unlock()
	if got := ready(); got != http.StatusOK {
		t.Errorf("/health/ready after the database came back: %d, want 200", got)
	}
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Errorf("bad answer: %s", b)
	}
	// Every acknowledged write is in the database, read by the same
	// process (its cache was dropped when the stream was lost).
	for id, rec := range records {
		var s wireSession
		code, err := command(context.Background(), client, d.public, "get_session_by_id", map[string]any{"session_id": id}, &s)
		if err != nil || code != http.StatusOK {
			t.Fatalf("session %s: acknowledged open lost (status %d, err %v)", id, code, err)
		}
		var data struct{ V int }
		if err := json.Unmarshal(s.Data, &data); err != nil {
			t.Fatalf("session %s: data %s: %v", id, s.Data, err)
		}
		if data.V < rec.acked || data.V > rec.attempted {
			t.Errorf("session %s: data version %d, want between acknowledged %d and attempted %d", id, data.V, rec.acked, rec.attempted)
		}
	}
	t.Logf("%d writes acknowledged on %d sessions, all present", acks, len(records))
}
