package redis

import (
	"container/heap"
	"context"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
)

// List merges sorted sets of the groups: the sessions of a user from the
// user's home group (and its strays), those of an API key from every
// group's k:<key>, all sessions from every group's order. Each set is
// read in its order (score -open, ties by id: the listing's order) from
// the window's score bounds (FromTime, ToTime), a chunk at a time. With
// no other filter, the skipped entries are passed over unread and only
// the page's sessions are read; the total is the sets' ZCOUNT. Any other
// filter (address, client, search, state, active, a key with a user) is
// applied to the sessions read while merging: its page costs the
// sessions read until it is full, and its total reads every candidate.
func (s *Store) List(ctx context.Context, f sessiond.Filter, p sessiond.Paging) (*sessiond.Page, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	page := &sessiond.Page{Data: []*sessiond.Session{}}
	var keys []string
	switch {
	case f.UserID != "":
		gs, err := s.userGroups(ctx, f.UserID)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			keys = append(keys, s.base(g)+"u:"+f.UserID)
		}
	case f.APIKeyID != nil:
		for g := range groups {
			keys = append(keys, s.base(g)+"k:"+*f.APIKeyID)
		}
	default:
		for g := range groups {
			keys = append(keys, s.base(g)+"order")
		}
	}
	lo, hi := "-inf", "+inf"
	if !f.ToTime.IsZero() {
		lo = strconv.FormatInt(-f.ToTime.UnixMicro(), 10) // open <= floor(to)
	}
	if !f.FromTime.IsZero() {
		hi = strconv.FormatInt(-ceilMicro(f.FromTime), 10)
	}
	filtered := f.Address != "" || f.Client != "" || f.Search != "" || f.State != "" || f.Active != nil ||
		(f.UserID != "" && f.APIKeyID != nil)
	skip, take := max(p.Skip, 0), max(p.Take, 0)

	// A filter on liveness alone is counted from the indexes; its page
	// still reads sessions while merging, until it is full.
	counted := false
	if alive, ok := f.Liveness(); filtered && p.Total && ok && alive && f.FromTime.IsZero() && f.ToTime.IsZero() {
		n, ok, err := s.aliveTotal(ctx, f)
		if err != nil {
			return nil, err
		}
		if ok {
			page.Total, counted = &n, true
		}
	}

	// The total of an unfiltered listing is the sets' ZCOUNT, sent with
	// their first chunks.
	var counts []*goredis.IntCmd
	count := func(pipe goredis.Pipeliner) {
		if filtered || !p.Total {
			return
		}
		for _, k := range keys {
			counts = append(counts, pipe.ZCount(ctx, k, lo, hi))
		}
	}
	setTotal := func() {
		if counts != nil {
			var n int64
			for _, c := range counts {
				n += c.Val()
			}
			page.Total = &n
		}
	}
	if take == 0 && !(filtered && p.Total && !counted) {
		if p.Total {
			pipe := s.rdb.Pipeline()
			count(pipe)
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, s.wrap(err)
			}
			setTotal()
		}
		return page, nil
	}
	// Each set is read a chunk at a time: the first chunk is what an even
	// spread over the sets needs (with room), and a set that runs out reads
	// twice as much each time, up to the window (at most 1000).
	most := 1000
	if !filtered {
		most = min(max(skip+take, 16), 1000)
	}
	first := min(most, 8+4*(skip+take)/len(keys))
	m := &merger{s: s, lo: lo, hi: hi}
	for _, k := range keys {
		m.cursors = append(m.cursors, &cursor{key: k, chunk: first, most: most})
	}
	if err := m.start(ctx, count); err != nil {
		return nil, err
	}
	setTotal()

	var matched int64
	if !filtered {
		for range skip {
			if _, ok, err := m.next(ctx); err != nil {
				return nil, err
			} else if !ok {
				return page, nil
			}
		}
	}
	// Read candidates a batch at a time; keep the matches of the window
	// (and count them all for a filtered total).
	for {
		want := take - len(page.Data)
		if filtered {
			want = 256
		}
		if want <= 0 && !(filtered && p.Total && !counted) {
			break
		}
		var batch []string
		for len(batch) < max(want, 1) {
			id, ok, err := m.next(ctx)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			batch = append(batch, id)
		}
		if len(batch) == 0 {
			break
		}
		sessions, err := s.readMany(ctx, batch)
		if err != nil {
			return nil, err
		}
		for _, sess := range sessions {
			if sess == nil || (filtered && !f.Match(sess)) {
				continue
			}
			if filtered {
				matched++
				if matched <= int64(skip) || len(page.Data) >= take {
					continue
				}
			}
			page.Data = append(page.Data, sess)
		}
		if filtered && len(page.Data) >= take && (!p.Total || counted) {
			break
		}
	}
	if filtered && p.Total && !counted {
		page.Total = &matched
	}
	return page, nil
}

// aliveTotal counts the alive sessions of every group from the indexes
// (the alive script), with the bounds CloseExpired uses. ok is false when
// a group has too many sessions past their expire_time to count so.
func (s *Store) aliveTotal(ctx context.Context, f sessiond.Filter) (n int64, ok bool, err error) {
	idleBound := ceilMicro(f.Now) - f.IdleTimeout.Microseconds()
	nowBound := ceilMicro(f.Now)
	calls := make([]call, groups)
	for g := range groups {
		calls[g] = call{lua.alive, []string{s.base(g)}, []any{idleBound, nowBound, batchSize}}
	}
	cmds, err := s.evalMany(ctx, calls)
	if err != nil {
		return 0, false, s.wrap(err)
	}
	for _, cmd := range cmds {
		c, err := cmd.Int64()
		if err != nil {
			return 0, false, s.wrap(err)
		}
		if c < 0 {
			return 0, false, nil
		}
		n += c
	}
	return n, true, nil
}

// readMany reads sessions in one pipeline; nil for those that are gone.
func (s *Store) readMany(ctx context.Context, ids []string) ([]*sessiond.Session, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.sessionKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.wrap(err)
	}
	out := make([]*sessiond.Session, len(ids))
	for i, id := range ids {
		sess, _, err := decodeSession(id, cmds[i].Val())
		if err != nil {
			return nil, sessiond.Internal(err)
		}
		out[i] = sess
	}
	return out, nil
}

// cursor reads one sorted set in order, a chunk at a time.
type cursor struct {
	key         string
	offset      int64
	chunk, most int
	buf         []goredis.Z
	end         bool
}

// merger merges cursors in the sets' order (score, then member).
type merger struct {
	s       *Store
	lo, hi  string
	cursors []*cursor
	h       cursorHeap
}

// start reads every cursor's first chunk in one pipeline, with what
// also adds to it.
func (m *merger) start(ctx context.Context, also func(goredis.Pipeliner)) error {
	if err := m.fill(ctx, m.cursors, also); err != nil {
		return err
	}
	for _, c := range m.cursors {
		if len(c.buf) > 0 {
			m.h = append(m.h, c)
		}
	}
	heap.Init(&m.h)
	return nil
}

func (m *merger) fill(ctx context.Context, cs []*cursor, also func(goredis.Pipeliner)) error {
	pipe := m.s.rdb.Pipeline()
	if also != nil {
		also(pipe)
	}
	cmds := make([]*goredis.ZSliceCmd, len(cs))
	for i, c := range cs {
		cmds[i] = pipe.ZRangeArgsWithScores(ctx, goredis.ZRangeArgs{
			Key: c.key, Start: m.lo, Stop: m.hi, ByScore: true, Offset: c.offset, Count: int64(c.chunk),
		})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return m.s.wrap(err)
	}
	for i, c := range cs {
		c.buf = cmds[i].Val()
		c.offset += int64(len(c.buf))
		c.end = len(c.buf) < c.chunk
		c.chunk = min(c.chunk*2, c.most)
	}
	return nil
}

// next returns the next id in order; false at the end.
func (m *merger) next(ctx context.Context) (string, bool, error) {
	if len(m.h) == 0 {
		return "", false, nil
	}
	c := m.h[0]
	id, _ := c.buf[0].Member.(string)
	c.buf = c.buf[1:]
	if len(c.buf) == 0 && !c.end {
		if err := m.fill(ctx, []*cursor{c}, nil); err != nil {
			return "", false, err
		}
	}
	if len(c.buf) == 0 {
		heap.Pop(&m.h)
	} else {
		heap.Fix(&m.h, 0)
	}
	return id, true, nil
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].buf[0], h[j].buf[0]
	if a.Score != b.Score {
		return a.Score < b.Score
	}
	return a.Member.(string) < b.Member.(string)
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
