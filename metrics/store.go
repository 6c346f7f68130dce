package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sessiond"
)

// Store returns inner with every method but Close timed into
// sessiond_store_duration_seconds, and its failures counted. It times the
// engine's own calls: the daemon puts it under the cache of a shared
// engine, so that a cache hit costs no observation and the histogram shows
// the trips to the store. The result implements the optional interfaces of
// inner that the Service and the cache rely on (sessiond.Streamer,
// sessiond.IDChooser), passed through untimed, and sessiond.MultiGetter.
func (m *Metrics) Store(inner sessiond.Store) sessiond.Store {
	t := &timedStore{inner: inner, base: time.Now()}
	for i, name := range storeMethods {
		t.obs[i] = storeObs{m.storeLatency.WithLabelValues(name), m.storeErrors.WithLabelValues(name)}
	}
	st, streams := inner.(sessiond.Streamer)
	ch, chooses := inner.(sessiond.IDChooser)
	switch {
	case streams && chooses:
		return struct {
			*timedStore
			sessiond.Streamer
			sessiond.IDChooser
		}{t, st, ch}
	case streams:
		return struct {
			*timedStore
			sessiond.Streamer
		}{t, st}
	case chooses:
		return struct {
			*timedStore
			sessiond.IDChooser
		}{t, ch}
	}
	return t
}

// The store methods, in the order of the method label's values.
const (
	mCreate = iota
	mGet
	mGetByTokenHash
	mUpdate
	mDelete
	mList
	mTouch
	mCloseExpired
	mUserSessions
	mPurge
	mAddConnStats
	mConnStats
	mCreateAPIKey
	mGetAPIKey
	mListAPIKeys
	mDeleteAPIKey
	mPing
	mGetMany
	numStoreMethods
)

var storeMethods = [numStoreMethods]string{"create", "get", "get_by_token_hash", "update", "delete", "list", "touch",
	"close_expired", "user_sessions", "purge", "add_conn_stats", "conn_stats", "create_apikey", "get_apikey",
	"list_apikeys", "delete_apikey", "ping", "get_many"}

type storeObs struct {
	latency prometheus.Observer
	errors  prometheus.Counter
}

type timedStore struct {
	inner sessiond.Store
	obs   [numStoreMethods]storeObs
	base  time.Time // the origin of clock
}

// clock reads the monotonic clock alone (time.Since of a time with a
// monotonic reading), which costs half of time.Now: timings need no wall
// time.
func (t *timedStore) clock() time.Duration { return time.Since(t.base) }

// done observes a call of method that started at start (clock) and
// returned err.
func (t *timedStore) done(method int, start time.Duration, err error) {
	o := &t.obs[method]
	o.latency.Observe((t.clock() - start).Seconds())
	if err != nil && storeFailure(err) {
		o.errors.Inc()
	}
}

// storeFailure tells a store that failed from one that answered: not
// found, conflicts and the errors of an UpdateFunc are answers.
func storeFailure(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the caller left
	}
	switch sessiond.ErrorCode(err) {
	case sessiond.EINTERNAL, sessiond.EUNAVAILABLE, sessiond.ETIMEOUT:
		return true
	}
	return false
}

func (t *timedStore) Create(ctx context.Context, s *sessiond.Session, userMin int) (bool, error) {
	start := t.clock()
	crowded, err := t.inner.Create(ctx, s, userMin)
	t.done(mCreate, start, err)
	return crowded, err
}

func (t *timedStore) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	start := t.clock()
	s, err := t.inner.Get(ctx, id)
	t.done(mGet, start, err)
	return s, err
}

func (t *timedStore) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	start := t.clock()
	s, err := t.inner.GetByTokenHash(ctx, hash)
	t.done(mGetByTokenHash, start, err)
	return s, err
}

func (t *timedStore) Update(ctx context.Context, id string, fn sessiond.UpdateFunc) (*sessiond.Session, error) {
	start := t.clock()
	s, err := t.inner.Update(ctx, id, fn)
	t.done(mUpdate, start, err)
	return s, err
}

func (t *timedStore) Delete(ctx context.Context, id string) (*sessiond.Session, error) {
	start := t.clock()
	s, err := t.inner.Delete(ctx, id)
	t.done(mDelete, start, err)
	return s, err
}

func (t *timedStore) List(ctx context.Context, f sessiond.Filter, p sessiond.Paging) (*sessiond.Page, error) {
	start := t.clock()
	page, err := t.inner.List(ctx, f, p)
	t.done(mList, start, err)
	return page, err
}

func (t *timedStore) Touch(ctx context.Context, touches []sessiond.Touch) error {
	start := t.clock()
	err := t.inner.Touch(ctx, touches)
	t.done(mTouch, start, err)
	return err
}

func (t *timedStore) CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error) {
	start := t.clock()
	ids, err := t.inner.CloseExpired(ctx, now, idle)
	t.done(mCloseExpired, start, err)
	return ids, err
}

func (t *timedStore) UserSessions(ctx context.Context, apiKeyID, userID string, min int) ([]sessiond.UserSession, error) {
	start := t.clock()
	us, err := t.inner.UserSessions(ctx, apiKeyID, userID, min)
	t.done(mUserSessions, start, err)
	return us, err
}

func (t *timedStore) Purge(ctx context.Context, closedBefore time.Time) ([]string, error) {
	start := t.clock()
	ids, err := t.inner.Purge(ctx, closedBefore)
	t.done(mPurge, start, err)
	return ids, err
}

func (t *timedStore) AddConnStats(ctx context.Context, deltas []sessiond.ConnDelta) error {
	start := t.clock()
	err := t.inner.AddConnStats(ctx, deltas)
	t.done(mAddConnStats, start, err)
	return err
}

func (t *timedStore) ConnStats(ctx context.Context, sessionID string) ([]sessiond.ConnStat, error) {
	start := t.clock()
	cs, err := t.inner.ConnStats(ctx, sessionID)
	t.done(mConnStats, start, err)
	return cs, err
}

func (t *timedStore) CreateAPIKey(ctx context.Context, k *sessiond.APIKey) error {
	start := t.clock()
	err := t.inner.CreateAPIKey(ctx, k)
	t.done(mCreateAPIKey, start, err)
	return err
}

func (t *timedStore) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	start := t.clock()
	k, err := t.inner.GetAPIKey(ctx, id)
	t.done(mGetAPIKey, start, err)
	return k, err
}

func (t *timedStore) ListAPIKeys(ctx context.Context) ([]*sessiond.APIKey, error) {
	start := t.clock()
	ks, err := t.inner.ListAPIKeys(ctx)
	t.done(mListAPIKeys, start, err)
	return ks, err
}

func (t *timedStore) DeleteAPIKey(ctx context.Context, id string) error {
	start := t.clock()
	err := t.inner.DeleteAPIKey(ctx, id)
	t.done(mDeleteAPIKey, start, err)
	return err
}

// GetMany is sessiond.GetMany on inner: one trip when inner is a
// sessiond.MultiGetter, else one Get per id, timed as one call.
func (t *timedStore) GetMany(ctx context.Context, ids []string) ([]*sessiond.Session, error) {
	start := t.clock()
	found, err := sessiond.GetMany(ctx, t.inner, ids)
	t.done(mGetMany, start, err)
	return found, err
}

func (t *timedStore) Ping(ctx context.Context) error {
	start := t.clock()
	err := t.inner.Ping(ctx)
	t.done(mPing, start, err)
	return err
}

// Close is not timed: it happens once.
func (t *timedStore) Close() error { return t.inner.Close() }
