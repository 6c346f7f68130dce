package embedded

import (
	"time"

	"sessiond"
)

// matcher decides sessiond.Filter.Match for List without decoding rows it
// will not return, so that counting a large result (Paging.Total) and
// skipping to a far page stay cheap.
//
// It works in four tiers:
//   - keyOnly: every filter set is enforced exactly by the index walk
//     (the open_time range), so each key is a match;
//   - live: besides the range, the filter asks only whether a session is
//     alive (Active, or State active), which the index item's times
//     answer, so only the page's records are read;
//   - raw: every filter set is one matchRaw can evaluate on the encoded
//     record without allocating;
//   - otherwise each row is decoded and passed to Filter.Match.
//
// The tiers are chosen by zeroing the fields each understands and
// comparing the rest with the zero Filter, so that a field added to
// sessiond.Filter later falls back to the decoding tier by itself.
type matcher struct {
	f       *sessiond.Filter
	keyOnly bool
	raw     bool
	// live: alive sessions match (wantAlive), or dead ones
	// (Filter.Liveness). Alive is judged from the item as Session.Alive:
	// active, last >= idleBound, and no expire time or one >= nowBound.
	live, wantAlive     bool
	idleBound, nowBound stamp
	// Stand-ins for a mismatching value: the filter's value plus a byte,
	// so that they differ from it.
	notUserID, notAddress, notClient, notAPIKeyID string
}

func newMatcher(f *sessiond.Filter) *matcher {
	m := &matcher{f: f}
	// What the index walk enforces exactly: the open_time range. (A walk
	// of one user's sessions goes by the user_id's hash, which another's
	// may share.) Now and IdleTimeout are read only with Active or State.
	rest := *f
	rest.FromTime, rest.ToTime = time.Time{}, time.Time{}
	rest.Now, rest.IdleTimeout = time.Time{}, 0
	m.keyOnly = rest == sessiond.Filter{}
	// What the index items decide.
	if m.wantAlive, m.live = f.Liveness(); m.live {
		m.idleBound, m.nowBound = stampOf(f.Now.Add(-f.IdleTimeout)), stampOf(f.Now)
	}
	// What matchRaw evaluates.
	rest.UserID, rest.Address, rest.Client, rest.APIKeyID = "", "", "", nil
	rest.Active, rest.State = nil, ""
	m.raw = rest == sessiond.Filter{}

	m.notUserID = f.UserID + "\x00"
	m.notAddress = f.Address + "\x00"
	m.notClient = f.Client + "\x00"
	if f.APIKeyID != nil {
		m.notAPIKeyID = *f.APIKeyID + "\x00"
	}
	return m
}

// matchItem decides a live filter from the index item alone.
func (m *matcher) matchItem(it item) bool {
	alive := it.active && it.last.compare(m.idleBound) >= 0 &&
		(it.expire == noExpire || it.expire.compare(m.nowBound) >= 0)
	return alive == m.wantAlive
}

// noExpire is the item's expire time of a session without one.
var noExpire = stampOf(time.Time{})

// match reports whether the session id with record v matches. v is nil
// when keyOnly. The session comes back when it had to be decoded.
func (m *matcher) match(id, v []byte) (bool, *sessiond.Session, error) {
	if m.keyOnly {
		return true, nil, nil
	}
	if m.raw {
		if match, ok := m.matchRaw(v); ok {
			return match, nil, nil
		}
	}
	sess, err := decodeSession(string(id), v)
	if err != nil {
		return false, nil, sessiond.Internal(err)
	}
	return m.f.Match(sess), sess, nil
}

// pick returns want if b holds it, else not.
func pick(b []byte, want, not string) string {
	if string(b) == want {
		return want
	}
	return not
}

// matchRaw evaluates the filter on the encoded record v. ok is false when
// v cannot be read; the caller then decodes it to report the error.
//
// It fills a Session on the stack with the times and flags of v and, for
// each string the filter compares, either the filter's value (when v
// holds it) or a value that differs from it, then asks Filter.Match: the
// rules stay in one place.
func (m *matcher) matchRaw(v []byte) (match, ok bool) {
	if len(v) < offVar || v[0] != recordV1 {
		return false, false
	}
	r := fieldReader{b: v, off: offVar}
	var f [6][2]int // user_id, user_name, close_reason, address, client, api_key_id
	for i := range f {
		f[i][0], f[i][1] = r.next()
	}
	if r.err != nil {
		return false, false
	}
	field := func(i int) []byte { return v[f[i][0]:f[i][1]] }
	s := sessiond.Session{
		Active:      v[1]&flagActive != 0,
		OpenTime:    getTime(v[offOpen:]),
		RequestTime: getTime(v[offRequest:]),
		CloseTime:   getTime(v[offClose:]),
		ExpireTime:  getTime(v[offExpire:]),
		UserID:      pick(field(0), m.f.UserID, m.notUserID),
		CloseReason: pick(field(2), sessiond.ReasonExpired, ""),
		Address:     pick(field(3), m.f.Address, m.notAddress),
		Client:      pick(field(4), m.f.Client, m.notClient),
	}
	if m.f.APIKeyID != nil {
		s.APIKeyID = pick(field(5), *m.f.APIKeyID, m.notAPIKeyID)
	}
	return m.f.Match(&s), true
}
