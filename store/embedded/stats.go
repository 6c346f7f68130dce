package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"sessiond"
)

// Gateway statistics: one key per session and upstream service,
//
//	c id 0x00 service -> requests, reads, writes, errors, last_used (uvarints, unix ms)
//
// statIndex remembers, in memory, which services each session has
// statistics for, so that deleting a session deletes its statistics with
// point deletions in the same batch, without a read or a range tombstone;
// it is rebuilt at start from the keys (one per session that used the
// gateway).
type statIndex struct {
	mu sync.Mutex
	m  map[string][]string // session id -> services, ordered
}

func statKey(id, service string) []byte {
	k := make([]byte, 0, 2+len(id)+len(service))
	k = append(append(append(k, kindStats), id...), 0)
	return append(k, service...)
}

func encodeStat(c sessiond.ConnStat) []byte {
	b := make([]byte, 0, 5*binary.MaxVarintLen64)
	for _, v := range []int64{c.Requests, c.Reads, c.Writes, c.Errors, c.LastUsed.UnixMilli()} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	return b
}

func decodeStat(service string, v []byte) (sessiond.ConnStat, error) {
	var f [5]int64
	for i := range f {
		u, n := binary.Uvarint(v)
		if n <= 0 {
			return sessiond.ConnStat{}, fmt.Errorf("damaged statistics record of %q", service)
		}
		f[i], v = int64(u), v[n:]
	}
	return sessiond.ConnStat{Service: service, Requests: f[0], Reads: f[1], Writes: f[2], Errors: f[3],
		LastUsed: time.UnixMilli(f[4]).UTC()}, nil
}

// loadStatIndex reads the statistics keys.
func loadStatIndex(db *pebble.DB) (*statIndex, error) {
	idx := &statIndex{m: make(map[string][]string)}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindStats}, UpperBound: []byte{kindStats + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		id, svc, ok := bytes.Cut(it.Key()[1:], []byte{0})
		if !ok {
			return nil, fmt.Errorf("damaged statistics key %q", it.Key())
		}
		idx.m[string(id)] = append(idx.m[string(id)], string(svc))
	}
	return idx, it.Error()
}

// removeStats adds to b the deletion of the statistics of id.
func (s *Store) removeStats(b *pebble.Batch, id string) error {
	s.stats.mu.Lock()
	svcs := s.stats.m[id]
	s.stats.mu.Unlock()
	for _, svc := range svcs {
		if err := b.Delete(statKey(id, svc), nil); err != nil {
			return err
		}
	}
	return nil
}

// forgetStats drops id from the index once its deletion is committed.
func (s *Store) forgetStats(ids ...string) {
	s.stats.mu.Lock()
	for _, id := range ids {
		delete(s.stats.m, id)
	}
	s.stats.mu.Unlock()
}

// AddConnStats adds the deltas of existing sessions, under each session's
// lock (so that a concurrent Delete either sees the new keys or runs
// after them), in one synced batch.
func (s *Store) AddConnStats(ctx context.Context, deltas []sessiond.ConnDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.exit()
	ids := make([]string, 0, len(deltas))
	for _, d := range deltas {
		ids = append(ids, d.SessionID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	unlock := s.lockIDs(ids)
	defer unlock()

	b := s.db.NewBatch()
	var added []sessiond.ConnDelta
	for _, d := range deltas {
		if cur, err := s.load(d.SessionID); err != nil {
			b.Close()
			return err
		} else if cur == nil {
			continue
		}
		stats, err := s.readStat(d.SessionID, d.Service)
		if err != nil {
			b.Close()
			return err
		}
		stats = sessiond.AddConnDelta(stats, d)
		if err := b.Set(statKey(d.SessionID, d.Service), encodeStat(stats[0]), nil); err != nil {
			b.Close()
			return sessiond.Internal(err)
		}
		added = append(added, d)
	}
	if len(added) == 0 {
		b.Close()
		return nil
	}
	if err := s.commit(b, true); err != nil {
		return err
	}
	s.stats.mu.Lock()
	for _, d := range added {
		svcs := s.stats.m[d.SessionID]
		if i, found := slices.BinarySearch(svcs, d.Service); !found {
			s.stats.m[d.SessionID] = slices.Insert(svcs, i, d.Service)
		}
	}
	s.stats.mu.Unlock()
	return nil
}

// readStat returns the stored statistics of one session and service (none
// or one).
func (s *Store) readStat(id, service string) ([]sessiond.ConnStat, error) {
	v, closer, err := s.db.Get(statKey(id, service))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, sessiond.Internal(err)
	}
	defer closer.Close()
	c, err := decodeStat(service, v)
	if err != nil {
		return nil, sessiond.Internal(err)
	}
	return []sessiond.ConnStat{c}, nil
}

// ConnStats returns the statistics of a session, ordered by service.
func (s *Store) ConnStats(ctx context.Context, sessionID string) ([]sessiond.ConnStat, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	s.stats.mu.Lock()
	svcs := slices.Clone(s.stats.m[sessionID])
	s.stats.mu.Unlock()
	out := make([]sessiond.ConnStat, 0, len(svcs))
	for _, svc := range svcs {
		c, err := s.readStat(sessionID, svc)
		if err != nil {
			return nil, err
		}
		out = append(out, c...)
	}
	return out, nil
}
