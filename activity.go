package sessiond

import (
	"sync"
	"time"
)

// IOActivityWindow is the span over which IOActivity counts a session's
// gateway requests (MaxScale's io_activity: "the last 30 seconds").
const IOActivityWindow = 30 * time.Second

// maxActivitySessions bounds the sessions whose recent requests are kept:
// past it, sessions idle for a whole window are dropped, and then new ones
// are not counted, so that a flood of sessions cannot grow memory.
const maxActivitySessions = 100_000

// ioActivity counts this instance's gateway requests per session over the
// last IOActivityWindow, in one-second buckets: the statistics in the
// store are totals and cannot say how many requests were recent. It is
// per instance: requests another instance served are not counted here.
type ioActivity struct {
	mu        sync.Mutex
	sessions  map[string]*ioCounts
	lastPrune int64 // unix second of the last pass dropping idle sessions
}

const ioBuckets = int64(IOActivityWindow / time.Second)

type ioCounts struct {
	last int64             // unix second of the newest request
	n    [ioBuckets]uint32 // requests in second s at n[s%ioBuckets]
}

// add counts one request of the session at unix second sec.
func (c *ioCounts) add(sec int64) {
	if sec < c.last { // a clock step back: count it in the newest second
		sec = c.last
	}
	// Clear the buckets of the seconds between the newest and sec.
	for s := max(c.last+1, sec-ioBuckets+1); s <= sec; s++ {
		c.n[s%ioBuckets] = 0
	}
	c.last = sec
	c.n[sec%ioBuckets]++
}

// sum returns the requests in the window ending at unix second sec.
func (c *ioCounts) sum(sec int64) int {
	total := 0
	for s := max(c.last-ioBuckets+1, sec-ioBuckets+1); s <= c.last; s++ {
		total += int(c.n[s%ioBuckets])
	}
	return total
}

func (a *ioActivity) record(id string, now time.Time) {
	sec := now.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		a.sessions = make(map[string]*ioCounts)
	}
	c := a.sessions[id]
	if c == nil {
		if len(a.sessions) >= maxActivitySessions || sec-a.lastPrune >= ioBuckets {
			a.prune(sec)
		}
		if len(a.sessions) >= maxActivitySessions {
			return
		}
		c = &ioCounts{last: sec}
		a.sessions[id] = c
	}
	c.add(sec)
}

// prune drops the sessions with no request in the window ending at sec.
func (a *ioActivity) prune(sec int64) {
	a.lastPrune = sec
	for id, c := range a.sessions {
		if c.last <= sec-ioBuckets {
			delete(a.sessions, id)
		}
	}
}

// IOActivity returns the gateway requests of the session that this
// instance served in the last IOActivityWindow.
func (s *Service) IOActivity(id string) int {
	sec := s.clock.Now().Unix()
	a := &s.activity
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.sessions[id]
	if c == nil || c.last <= sec-ioBuckets {
		return 0
	}
	return c.sum(sec)
}
