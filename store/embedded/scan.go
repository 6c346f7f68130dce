package embedded

import (
	"bytes"
	"container/heap"
	"context"

	"github.com/cockroachdb/pebble/v2"

	"sessiond"
)

// List walks, newest first and within [FromTime, ToTime], the in-memory
// index: its sessions of the user when the filter names one, else all;
//
// and checks the other filters on each session (see matcher; liveness
// alone is judged from the index items); only the sessions of the page
// are decoded, and without Total the walk stops at
// the end of the page. With Total over filters that no index narrows, it
// reads every record in key order instead (listScan).
//
// List is not a snapshot: a session written while it runs may be seen in
// its old or its new version, or not at all if it was created or deleted
// meanwhile.
func (s *Store) List(ctx context.Context, f sessiond.Filter, p sessiond.Paging) (*sessiond.Page, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	page := &sessiond.Page{Data: []*sessiond.Session{}}
	c := &collector{s: s, m: newMatcher(&f), skip: max(p.Skip, 0), take: max(p.Take, 0), all: p.Total}
	var err error
	switch {
	case c.take == 0 && !p.Total:
	case useScan(&f, c.m, p):
		c.total, c.data, err = s.listScan(c.m, c.skip, c.take)
	case f.UserID != "":
		err = s.walkUser(&f, c)
	default:
		err = s.walkOpen(&f, c)
	}
	if err != nil {
		return nil, err
	}
	if c.data != nil {
		page.Data = c.data
	}
	if p.Total {
		page.Total = &c.total
	}
	return page, nil
}

// collector counts the matches of a walk and keeps its page.
type collector struct {
	s          *Store
	m          *matcher
	skip, take int
	all        bool // count every match (Paging.Total)
	total      int64
	data       []*sessiond.Session
}

// addItem considers the index item of a live filter: it is counted from
// the item, and its record read only when it falls in the page (and
// checked again there, as it may have changed since the item was read).
func (c *collector) addItem(it item) (bool, error) {
	if !c.m.matchItem(it) {
		return true, nil
	}
	if c.total >= int64(c.skip) && len(c.data) < c.take {
		v, release, err := c.s.record(it.id)
		if err != nil {
			return false, err
		}
		if v == nil {
			return true, nil // deleted since the walk began
		}
		sess, err := decodeSession(it.id, v)
		release()
		if err != nil {
			return false, sessiond.Internal(err)
		}
		if !c.m.f.Match(sess) {
			return true, nil
		}
		c.data = append(c.data, sess)
	}
	c.total++
	return c.all || len(c.data) < c.take, nil
}

// add considers session id, reading its record if needed, and reports
// whether the walk should go on.
func (c *collector) add(id []byte) (bool, error) {
	inPage := c.total >= int64(c.skip) && len(c.data) < c.take
	if c.m.keyOnly && !inPage {
		c.total++
		return c.all || len(c.data) < c.take, nil
	}
	v, release, err := c.s.record(string(id))
	if err != nil {
		return false, err
	}
	if v == nil {
		return true, nil // deleted since the walk began
	}
	defer release()
	match, sess, err := c.m.match(id, v)
	if err != nil || !match {
		return err == nil, err
	}
	c.total++
	if inPage {
		if sess == nil {
			if sess, err = decodeSession(string(id), v); err != nil {
				return false, sessiond.Internal(err)
			}
		}
		c.data = append(c.data, sess)
	}
	return c.all || len(c.data) < c.take, nil
}

// walkUser walks the sessions of f.UserID in the in-memory index, in List
// order, userPage at a time.
func (s *Store) walkUser(f *sessiond.Filter, c *collector) error {
	hasFrom, from := !f.FromTime.IsZero(), stampOf(f.FromTime)
	open, id := maxStamp, ""
	if !f.ToTime.IsZero() {
		open = stampOf(f.ToTime) // the newest opened at or before ToTime first
	}
	var page []userEntry
	for {
		page = s.mem.userSessions(page[:0], f.UserID, open, id, userPage)
		for _, u := range page {
			if hasFrom && u.open.compare(from) < 0 {
				return nil
			}
			more, err := c.add([]byte(u.id))
			if err != nil || !more {
				return err
			}
		}
		if len(page) < userPage {
			return nil
		}
		last := page[len(page)-1]
		open, id = last.open, last.id
	}
}

// userPage is how many of a user's sessions walkUser takes from the
// in-memory index at a time.
const userPage = 256

// walkOpen walks a snapshot of the in-memory index, which is in List order.
func (s *Store) walkOpen(f *sessiond.Filter, c *collector) error {
	hasFrom, from := !f.FromTime.IsZero(), stampOf(f.FromTime)
	var err error
	visit := func(it item) bool {
		if hasFrom && it.open.compare(from) < 0 {
			return false
		}
		var more bool
		if c.m.live {
			more, err = c.addItem(it)
		} else {
			more, err = c.add([]byte(it.id))
		}
		return more && err == nil
	}
	tree := s.mem.snapshot()
	if f.ToTime.IsZero() {
		tree.Ascend(visit)
	} else {
		// The first item at or after this one in List order is the newest
		// opened at or before ToTime.
		tree.AscendGreaterOrEqual(item{open: stampOf(f.ToTime)}, visit)
	}
	return err
}

// maxScanKeep bounds the rows listScan holds; deeper pages walk the index.
const maxScanKeep = 100_000

// useScan reports whether List should read every session record in key
// order rather than walk the in-memory index: when it must visit every
// session anyway (a total, over filters no index narrows) and reads each
// record. A walk would look every record up by id; the scan reads them in
// order, several times faster.
func useScan(f *sessiond.Filter, m *matcher, p sessiond.Paging) bool {
	return p.Total && !m.keyOnly && !m.live && f.UserID == "" && f.FromTime.IsZero() && f.ToTime.IsZero() &&
		max(p.Skip, 0)+max(p.Take, 0) <= maxScanKeep
}

// listScan reads every session, counts the matches and keeps the best
// skip+take of them (in List order) in a heap; it decodes only those.
func (s *Store) listScan(m *matcher, skip, take int) (int64, []*sessiond.Session, error) {
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindSession}, UpperBound: []byte{kindSession + 1}})
	if err != nil {
		return 0, nil, sessiond.Internal(err)
	}
	defer iter.Close()
	keep := skip + take
	var total int64
	var h rowHeap
	for iter.First(); iter.Valid(); iter.Next() {
		k := iter.Key()[1:]
		v, err := iter.ValueAndErr()
		if err != nil {
			return 0, nil, sessiond.Internal(err)
		}
		match, sess, err := m.match(k, v)
		if err != nil {
			return 0, nil, err
		}
		if !match {
			continue
		}
		total++
		if keep == 0 || len(v) < offVar {
			continue
		}
		r := row{open: v[offOpen : offOpen+timeLen], id: k, v: v, sess: sess}
		if len(h) < keep {
			heap.Push(&h, r.own())
		} else if r.before(h[0]) {
			h[0] = r.own()
			heap.Fix(&h, 0)
		}
	}
	if err := iter.Error(); err != nil {
		return 0, nil, sessiond.Internal(err)
	}
	// Pop worst first, fill from the back.
	rows := make([]row, len(h))
	for i := len(rows) - 1; i >= 0; i-- {
		rows[i] = heap.Pop(&h).(row)
	}
	page := []*sessiond.Session{}
	for _, r := range rows[min(skip, len(rows)):] {
		if r.sess == nil {
			sess, err := decodeSession(string(r.id), r.v)
			if err != nil {
				return 0, nil, sessiond.Internal(err)
			}
			r.sess = sess
		}
		page = append(page, r.sess)
	}
	return total, page, nil
}

// row is one match held by listScan.
type row struct {
	open, id, v []byte // open is the encoded open_time, within v
	sess        *sessiond.Session
}

// own returns r with its own copies of the iterator's bytes, which are
// valid only until the iterator moves.
func (r row) own() row {
	v := bytes.Clone(r.v)
	return row{open: v[offOpen : offOpen+timeLen], id: bytes.Clone(r.id), v: v, sess: r.sess}
}

// before reports whether r comes before o in List order: newer open_time
// first, then smaller id.
func (r row) before(o row) bool {
	if c := bytes.Compare(r.open, o.open); c != 0 {
		return c > 0
	}
	return bytes.Compare(r.id, o.id) < 0
}

// rowHeap keeps the last row in List order on top.
type rowHeap []row

func (h rowHeap) Len() int           { return len(h) }
func (h rowHeap) Less(i, j int) bool { return h[j].before(h[i]) }
func (h rowHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *rowHeap) Push(x any)        { *h = append(*h, x.(row)) }
func (h *rowHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}
