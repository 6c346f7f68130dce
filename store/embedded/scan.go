package embedded

import (
	"bytes"
	"container/heap"

	"sessiond"
)

// maxScanKeep bounds the rows listScan holds; deeper pages walk the index.
const maxScanKeep = 100_000

// useScan reports whether List should read the sessions bucket in file
// order rather than walk by_open: when it must visit every session anyway
// (a total, over filters no index narrows) and reads each record. A walk
// would look every record up at random; the scan reads them in order,
// several times faster.
func useScan(f *sessiond.Filter, m *matcher, p sessiond.Paging) bool {
	return p.Total && !m.keyOnly && f.UserID == "" && f.FromTime.IsZero() && f.ToTime.IsZero() &&
		max(p.Skip, 0)+max(p.Take, 0) <= maxScanKeep
}

// listScan reads every session, counts the matches and keeps the best
// skip+take of them (in List order) in a heap; it decodes only those.
func listScan(t *txn, m *matcher, skip, take int) (int64, []*sessiond.Session, error) {
	keep := skip + take
	var total int64
	var h rowHeap
	c := t.sessions.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
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
			heap.Push(&h, r)
		} else if r.before(h[0]) {
			h[0] = r
			heap.Fix(&h, 0)
		}
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

// row is one match held by listScan; its slices point into the
// transaction's pages.
type row struct {
	open, id, v []byte // open is the encoded open_time
	sess        *sessiond.Session
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
