package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"sessiond"
	"sessiond/store/cache"
	"sessiond/store/memory"
	"sessiond/store/postgres"
	"sessiond/store/postgres/pgtest"
)

func newMetrics(t *testing.T, opts Options) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// A registry serves one instance: registering a second set fails rather
// than mixing two instances' figures.
func TestNewTwiceOnOneRegistryFails(t *testing.T) {
	_, reg := newMetrics(t, Options{})
	if _, err := New(reg, Options{}); err == nil {
		t.Fatal("New on a registry that holds the metrics already: no error")
	}
}

// Counters count this instance's events only; other instances' events
// feed the lag histogram, measured on this instance's clock.
func TestEventsOwnOriginCountedOthersLag(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	m, _ := newMetrics(t, Options{Now: func() time.Time { return now }})
	svc := sessiond.NewService(m.Store(memory.New()), nil, sessiond.Config{}, nil)
	stop, err := m.Watch(svc)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	s, _, err := svc.Open(ctx, sessiond.OpenRequest{UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CloseSession(ctx, s.ID, sessiond.ReasonForced); err != nil {
		t.Fatal(err)
	}
	stream := svc.Events().(*sessiond.LocalStream)
	stream.Deliver([]sessiond.Event{
		{Kind: sessiond.EventOpened, SessionID: "x", Origin: "other", Time: now.Add(-2 * time.Second)},
		{Kind: sessiond.EventClosed, Reason: sessiond.ReasonExpired, Origin: "other", Time: now.Add(time.Second)}, // skewed clock: 0
		{Kind: sessiond.EventClosed, Reason: "something new", Origin: stream.Origin(), Time: now},
		{Kind: sessiond.EventLost},
		{Kind: sessiond.EventResumed},
	})
	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.opened, 1},
		{m.closed[2], 1}, // forced
		{m.closed[1], 0}, // expired: only another instance's
		{m.closed[len(reasons)-1], 1},
		{m.streamLost, 1},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%v = %v, want %v", c.c, got, c.want)
		}
	}
	// Lags of 2s and 0 (the other clock ahead): two samples, summing 2.
	var h dto.Metric
	if err := m.lag.Write(&h); err != nil {
		t.Fatal(err)
	}
	if got := h.GetHistogram(); got.GetSampleCount() != 2 || got.GetSampleSum() != 2 {
		t.Errorf("lag histogram: %d samples summing %v, want 2 summing 2", got.GetSampleCount(), got.GetSampleSum())
	}
}

// The timing decorator keeps the optional interfaces the Service and the
// cache rely on, and adds none: none for the memory engine; Streamer for
// the PostgreSQL engine, whose events then still cross instances through
// the cache above it; IDChooser for an engine that chooses ids. GetMany is
// timed on all, one call for the batch.
func TestStoreKeepsOptionalInterfaces(t *testing.T) {
	ctx := context.Background()
	m, _ := newMetrics(t, Options{})
	mem := m.Store(memory.New())
	if _, ok := mem.(sessiond.Streamer); ok {
		t.Error("the memory store became a Streamer")
	}
	if _, ok := mem.(sessiond.IDChooser); ok {
		t.Error("the memory store became an IDChooser")
	}
	if _, err := mem.Create(ctx, &sessiond.Session{ID: "m1", Active: true}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := sessiond.GetMany(ctx, mem, []string{"m1", "nobody"}); err != nil || len(got) != 1 || got[0].ID != "m1" {
		t.Fatalf("GetMany on memory: %v, %v; want m1 alone", got, err)
	}

	pg, err := postgres.Open(ctx, pgtest.Schema(t), postgres.Options{Origin: "a"})
	if err != nil {
		t.Fatal(err)
	}
	timed := m.Store(pg)
	cached := cache.New(timed, cache.Options{})
	defer cached.Close()
	st, ok := timed.(sessiond.Streamer)
	if !ok || st.Stream() != pg.Stream() || cached.Stream() != pg.Stream() {
		t.Fatal("the PostgreSQL store lost its Streamer")
	}
	if _, ok := timed.(sessiond.IDChooser); ok {
		t.Error("the PostgreSQL store became an IDChooser")
	}
	ch, ok := m.Store(chooser{memory.New()}).(sessiond.IDChooser)
	if !ok {
		t.Fatal("an IDChooser lost its NewSessionID")
	}
	if id := ch.NewSessionID("", "u"); id != "chosen" {
		t.Errorf("NewSessionID = %q, want the engine's", id)
	}
	// Calls are timed per method; a not-found is an answer, not a failure.
	if _, err := timed.Get(ctx, strings.Repeat("0", 32)); !sessiond.IsNotFound(err) {
		t.Fatalf("Get of a missing session: %v", err)
	}
	if _, err := sessiond.GetMany(ctx, timed, []string{strings.Repeat("0", 32)}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.storeLatency, "sessiond_store_duration_seconds"); n != numStoreMethods {
		t.Errorf("%d store methods timed, want %d", n, numStoreMethods)
	}
	for _, c := range []struct {
		method string
		calls  uint64
	}{{"get", 1}, {"get_many", 2}} {
		var h dto.Metric
		m.storeLatency.WithLabelValues(c.method).(prometheus.Histogram).Write(&h)
		if n, errs := h.GetHistogram().GetSampleCount(), testutil.ToFloat64(m.storeErrors.WithLabelValues(c.method)); n != c.calls || errs != 0 {
			t.Errorf("%s: %d calls, %v errors; want %d calls, 0 errors", c.method, n, errs, c.calls)
		}
	}
}

// chooser is an engine that chooses its sessions' ids.
type chooser struct{ *memory.Store }

func (chooser) NewSessionID(apiKeyID, userID string) string { return "chosen" }

// The active sessions gauge reads the store, and reuses the figure for
// ActiveTTL.
func TestActiveSessionsReadFromTheStore(t *testing.T) {
	m, reg := newMetrics(t, Options{ActiveTTL: time.Hour})
	svc := sessiond.NewService(m.Store(memory.New()), nil, sessiond.Config{}, nil)
	if _, err := m.Watch(svc); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := svc.Open(context.Background(), sessiond.OpenRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "sessiond_sessions_active" {
				return f.Metric[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no sessiond_sessions_active")
		return 0
	}
	if got := read(); got != 3 {
		t.Errorf("active = %v, want 3", got)
	}
	svc.Open(context.Background(), sessiond.OpenRequest{})
	if got := read(); got != 3 {
		t.Errorf("active within the TTL = %v, want the cached 3", got)
	}
}
