package embedded

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"sessiond"
)

// Buckets. Index buckets hold keys only (empty values); every index key
// ends with the session id, so an index walk yields ids in key order.
var (
	bucketMeta     = []byte("meta")       // "format" -> formatVersion
	bucketSessions = []byte("sessions")   // id -> session record
	bucketTokens   = []byte("tokens")     // token hash -> id
	bucketByUser   = []byte("by_user")    // userKey(user_id) + time(open_time) + id, sessions with a user_id
	bucketByOpen   = []byte("by_open")    // time(open_time) + id, every session
	bucketByReq    = []byte("by_request") // time(request_time to the minute) + time(open_time) + id, active sessions
	bucketByExpire = []byte("by_expire")  // time(expire_time) + id, active sessions with an expire_time
	bucketByClose  = []byte("by_close")   // time(close_time) + id, inactive sessions
	bucketAPIKeys  = []byte("api_keys")   // id -> API key record

	allBuckets = [][]byte{bucketMeta, bucketSessions, bucketTokens, bucketByUser, bucketByOpen,
		bucketByReq, bucketByExpire, bucketByClose, bucketAPIKeys}

	keyFormat = []byte("format")
	empty     = []byte{}
)

// formatVersion is the layout of buckets and records described above.
const formatVersion = 1

// maxInlineUser is the longest user_id kept verbatim in by_user keys;
// longer ones are replaced by their SHA-256 so that no key exceeds bbolt's
// limit. List compares the real user_id anyway, so a collision could only
// cost a wasted read.
const maxInlineUser = 256

// maxIDLen bounds session and API key ids (keys in several buckets).
const maxIDLen = 1024

// maxTokenHashLen bounds token hashes (keys of the tokens bucket).
const maxTokenHashLen = 1024

// userKey appends the prefix-free by_user prefix of user.
func userKey(dst []byte, user string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(user)))
	if len(user) > maxInlineUser {
		h := sha256.Sum256([]byte(user))
		return append(dst, h[:]...)
	}
	return append(dst, user...)
}

// requestGrain coarsens request_time in by_request keys, so that a session
// used every second moves in that index at most once a minute (each move
// is a random delete and insert), not at every Touch. Within one grain,
// keys are ordered by open_time, so new sessions append at the end. The
// sweep reads the grain that holds its exact bound in full and checks
// each session's real deadline.
const requestGrain = time.Minute

// requestKeyTime is the time of s in by_request keys.
func requestKeyTime(t time.Time) time.Time { return t.Truncate(requestGrain) }

// Index numbers, positions in sessionIndexes.
const (
	ixUser = iota
	ixOpen
	ixRequest
	ixExpire
	ixClose
	numIndexes
)

var indexBuckets = [numIndexes][]byte{bucketByUser, bucketByOpen, bucketByReq, bucketByExpire, bucketByClose}

// sessionIndexes returns the index keys of s, nil where s has no entry.
// The keys share one freshly allocated buffer.
func sessionIndexes(s *sessiond.Session) [numIndexes][]byte {
	var keys [numIndexes][]byte
	if s == nil {
		return keys
	}
	n := len(s.ID) + timeLen
	buf := make([]byte, 0, 5*n+timeLen+binary.MaxVarintLen64+min(len(s.UserID), maxInlineUser+sha256.Size))
	add := func(prefix []byte, times ...time.Time) []byte {
		start := len(buf)
		buf = append(buf, prefix...)
		for _, t := range times {
			buf = appendTime(buf, t)
		}
		buf = append(buf, s.ID...)
		return buf[start:len(buf):len(buf)]
	}
	if s.UserID != "" {
		keys[ixUser] = add(userKey(nil, s.UserID), s.OpenTime)
	}
	keys[ixOpen] = add(nil, s.OpenTime)
	if s.Active {
		keys[ixRequest] = add(nil, requestKeyTime(s.RequestTime), s.OpenTime)
		if !s.ExpireTime.IsZero() {
			keys[ixExpire] = add(nil, s.ExpireTime)
		}
	} else {
		keys[ixClose] = add(nil, s.CloseTime)
	}
	return keys
}

// minTime and maxTime are the smallest and largest time keys.
var (
	minTimeKey = make([]byte, timeLen)
	maxTimeKey = bytes.Repeat([]byte{0xff}, timeLen)
)

// timeKey returns the time key of t, or def when t is zero.
func timeKey(t time.Time, def []byte) []byte {
	if t.IsZero() {
		return def
	}
	return appendTime(nil, t)
}

// successor returns the smallest key greater than every key that starts
// with prefix, or nil if there is none.
func successor(prefix []byte) []byte {
	s := bytes.Clone(prefix)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}

// walkDesc calls fn with the id of every key of c that starts with prefix
// and whose time lies in [lo, hi] (inclusive time keys), newest time
// first and, among equal times, by id ascending: the order of
// sessiond.Store.List. It stops when fn returns false or an error.
func walkDesc(c *bolt.Cursor, prefix, lo, hi []byte, fn func(id []byte) (bool, error)) error {
	upper := successor(append(append([]byte(nil), prefix...), hi...))
	var k []byte
	if upper == nil {
		k, _ = c.Last()
	} else if k, _ = c.Seek(upper); k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	inRange := func(k []byte) bool {
		return k != nil && len(k) >= len(prefix)+timeLen && bytes.HasPrefix(k, prefix) &&
			bytes.Compare(k[len(prefix):len(prefix)+timeLen], lo) >= 0
	}
	// Keys of one time come out by id descending; gather each such group
	// and hand it over reversed.
	var group [][]byte
	for inRange(k) {
		t := k[len(prefix) : len(prefix)+timeLen]
		group = append(group[:0], k[len(prefix)+timeLen:])
		for k, _ = c.Prev(); inRange(k) && bytes.Equal(k[len(prefix):len(prefix)+timeLen], t); k, _ = c.Prev() {
			group = append(group, k[len(prefix)+timeLen:])
		}
		for i := len(group) - 1; i >= 0; i-- {
			if ok, err := fn(group[i]); !ok || err != nil {
				return err
			}
		}
	}
	return nil
}
