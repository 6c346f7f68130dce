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

// The timing decorator keeps the optional interfaces the Service relies
// on: none for the memory engine; Streamer and IDChooser for the cached
// PostgreSQL engine, whose events then still cross instances.
func TestStoreKeepsOptionalInterfaces(t *testing.T) {
	m, _ := newMetrics(t, Options{})
	mem := m.Store(memory.New())
	if _, ok := mem.(sessiond.Streamer); ok {
		t.Error("the memory store became a Streamer")
	}
	if _, ok := mem.(sessiond.IDChooser); ok {
		t.Error("the memory store became an IDChooser")
	}

	pg, err := postgres.Open(context.Background(), pgtest.Schema(t), postgres.Options{Origin: "a"})
	if err != nil {
		t.Fatal(err)
	}
	inner := cache.New(pg, cache.Options{})
	defer inner.Close()
	timed := m.Store(inner)
	st, ok := timed.(sessiond.Streamer)
	if !ok || st.Stream() != inner.Stream() {
		t.Fatal("the cached PostgreSQL store lost its Streamer")
	}
	ch, ok := timed.(sessiond.IDChooser)
	if !ok {
		t.Fatal("the cached PostgreSQL store lost its IDChooser")
	}
	if id := ch.NewSessionID("", "u"); len(id) != 32 {
		t.Errorf("NewSessionID = %q", id)
	}
	// Calls are timed per method; a not-found is an answer, not a failure.
	if _, err := timed.Get(context.Background(), strings.Repeat("0", 32)); !sessiond.IsNotFound(err) {
		t.Fatalf("Get of a missing session: %v", err)
	}
	if n := testutil.CollectAndCount(m.storeLatency, "sessiond_store_duration_seconds"); n != numStoreMethods {
		t.Errorf("%d store methods timed, want %d", n, numStoreMethods)
	}
	var h dto.Metric
	m.storeLatency.WithLabelValues("get").(prometheus.Histogram).Write(&h)
	if h.GetHistogram().GetSampleCount() != 1 || testutil.ToFloat64(m.storeErrors.WithLabelValues("get")) != 0 {
		t.Errorf("get: %d calls, %v errors; want 1 call, 0 errors", h.GetHistogram().GetSampleCount(), testutil.ToFloat64(m.storeErrors.WithLabelValues("get")))
	}
}

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
