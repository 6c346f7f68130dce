package sessiond

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Gateway statistics per session and upstream service. Requests add to
// pending deltas in memory; every TouchInterval they are written to the
// store in one batch (Store.AddConnStats), where every instance and a
// restart see the same figures. A request never writes to the store.

// ConnStat counts one session's use of one gateway upstream.
type ConnStat struct {
	Service  string    `json:"service"`
	Requests int64     `json:"requests"`
	Reads    int64     `json:"reads"`  // bytes read from the client
	Writes   int64     `json:"writes"` // bytes written to the client
	Errors   int64     `json:"errors"`
	LastUsed time.Time `json:"last_used"`
}

// AddConnDelta adds d to the statistics of d.Service in stats (ordered by
// service) and returns them. Engines use it so that the rule lives once.
func AddConnDelta(stats []ConnStat, d ConnDelta) []ConnStat {
	i, found := slices.BinarySearchFunc(stats, d.Service, func(c ConnStat, svc string) int {
		return strings.Compare(c.Service, svc)
	})
	if !found {
		stats = slices.Insert(stats, i, ConnStat{Service: d.Service})
	}
	st := &stats[i]
	st.Requests += d.Requests
	st.Reads += d.Reads
	st.Writes += d.Writes
	st.Errors += d.Errors
	if d.LastUsed.After(st.LastUsed) {
		st.LastUsed = d.LastUsed
	}
	return stats
}

// maxPendingStats bounds the deltas kept in memory while the store cannot
// take them: past it, new deltas are dropped (and counted in the log), so
// that an outage cannot grow memory without bound.
const maxPendingStats = 100_000

type statKey struct{ session, service string }

type connStats struct {
	mu      sync.Mutex
	pending map[statKey]*ConnDelta
	dropped int64
}

// RecordConnection adds one gateway request to the statistics of the
// session and service. It writes nothing to the store.
func (s *Service) RecordConnection(sessionID, service string, read, written int64, failed bool) {
	now := s.clock.Now()
	s.activity.record(sessionID, now)
	c := &s.stats
	c.mu.Lock()
	defer c.mu.Unlock()
	k := statKey{sessionID, service}
	d := c.pending[k]
	if d == nil {
		if len(c.pending) >= maxPendingStats {
			c.dropped++
			return
		}
		d = &ConnDelta{SessionID: sessionID, Service: service}
		c.pending[k] = d
	}
	d.Requests++
	d.Reads += read
	d.Writes += written
	if failed {
		d.Errors++
	}
	d.LastUsed = now
}

// FlushStats writes the pending statistics to the store. On failure they
// are kept (added to newer ones) for the next flush.
func (s *Service) FlushStats(ctx context.Context) error {
	c := &s.stats
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return nil
	}
	batch := make([]ConnDelta, 0, len(c.pending))
	for _, d := range c.pending {
		batch = append(batch, *d)
	}
	clear(c.pending)
	dropped := c.dropped
	c.dropped = 0
	c.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("gateway statistics dropped while the store could not take them", "requests", dropped)
	}
	if err := s.store.AddConnStats(ctx, batch); err != nil {
		c.mu.Lock()
		for _, d := range batch {
			k := statKey{d.SessionID, d.Service}
			if cur := c.pending[k]; cur != nil {
				cur.Requests += d.Requests
				cur.Reads += d.Reads
				cur.Writes += d.Writes
				cur.Errors += d.Errors
				cur.LastUsed = maxTime(cur.LastUsed, d.LastUsed)
			} else if len(c.pending) < maxPendingStats {
				d := d
				c.pending[k] = &d
			}
		}
		c.mu.Unlock()
		s.log.Error("writing gateway statistics", "err", err, "entries", len(batch))
		return err
	}
	return nil
}

// Connections returns the session's gateway statistics, one per service,
// ordered by service: the stored ones (every instance's) plus this
// instance's not yet written.
func (s *Service) Connections(ctx context.Context, sessionID string) ([]ConnStat, error) {
	stored, err := s.store.ConnStats(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	c := &s.stats
	c.mu.Lock()
	for k, d := range c.pending {
		if k.session == sessionID {
			stored = AddConnDelta(stored, *d)
		}
	}
	c.mu.Unlock()
	return stored, nil
}
