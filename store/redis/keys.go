package redis

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"sessiond"
)

// groups is the number of session groups: each is one hash tag, so one
// slot of a cluster.
const groups = 256

// groupOf returns the group of a session id: its first byte for the ids
// the engine chooses (32 lowercase hex characters), a hash of it for any
// other id.
func groupOf(id string) int {
	if len(id) == 32 && isLowerHex(id) {
		v, _ := strconv.ParseUint(id[:2], 16, 8)
		return int(v)
	}
	return hashGroup("i\x00" + id)
}

// homeOf returns the home group of a user id: where the engine places
// the user's sessions, whatever their API key.
func homeOf(userID string) int { return hashGroup("u\x00" + userID) }

func hashGroup(s string) int {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int(h.Sum32() & 0xff)
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// NewSessionID places a session of a user in the user's home group, and
// one without a user in a random group (sessiond.IDChooser).
func (s *Store) NewSessionID(apiKeyID, userID string) string {
	var b [16]byte
	rand.Read(b[:])
	if userID != "" {
		b[0] = byte(homeOf(userID))
	}
	return hex.EncodeToString(b[:])
}

// base returns the prefix of every key of group g: prefix{gg}:.
func (s *Store) base(g int) string { return fmt.Sprintf("%s{%02x}:", s.prefix, g) }

func (s *Store) sessionKey(id string) string { return s.base(groupOf(id)) + "s:" + id }

// tokenKey is the pointer from a token hash to its session, tagged by the
// hash's first two bytes (65,536 tags, spread over every slot).
func (s *Store) tokenKey(hash []byte) string {
	h := hex.EncodeToString(hash)
	if len(h) < 4 {
		h += "0000"[len(h):]
	}
	return s.prefix + "{" + h[:4] + "}:t:" + hex.EncodeToString(hash)
}

// API keys live in one slot: they are few, and listed together.
func (s *Store) keysBase() string { return s.prefix + "{keys}:" }

// Times are kept as integer microseconds since the epoch (exact in the
// doubles of Lua and of sorted-set scores until the year 2255); the zero
// time as "".
func micro(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func parseMicro(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(n).UTC(), nil
}

// ceilMicro rounds t up to a microsecond: for a stored (whole-microsecond)
// value v, v >= t exactly when v >= ceilMicro(t), and v < t exactly when
// v < ceilMicro(t).
func ceilMicro(t time.Time) int64 {
	n := t.UnixMicro()
	if time.UnixMicro(n).Before(t) {
		n++
	}
	return n
}

// sessionFields encodes sess as the field-value pairs of its hash:
//
//	u user_id, n user_name, a active (1/0), o open, r request (µs), c
//	close, e expire (µs, or "" for the zero time), cr close_reason, ad address, cl client,
//	us user and d data (absent for nil), k api_key_id, t token hash,
//	v version (random at first; every write adds one).
func sessionFields(sess *sessiond.Session) []any {
	active := "0"
	if sess.Active {
		active = "1"
	}
	f := []any{
		"u", sess.UserID, "n", sess.UserName, "a", active,
		"o", sess.OpenTime.UnixMicro(), "r", sess.RequestTime.UnixMicro(), "c", micro(sess.CloseTime), "e", micro(sess.ExpireTime),
		"cr", sess.CloseReason, "ad", sess.Address, "cl", sess.Client, "k", sess.APIKeyID, "t", string(sess.TokenHash),
	}
	if sess.User != nil {
		f = append(f, "us", string(sess.User))
	}
	if sess.Data != nil {
		f = append(f, "d", string(sess.Data))
	}
	return f
}

// decodeSession reads a session hash (HGETALL); nil if it is empty.
func decodeSession(id string, m map[string]string) (*sessiond.Session, int64, error) {
	if len(m) == 0 {
		return nil, 0, nil
	}
	s := &sessiond.Session{
		ID: id, UserID: m["u"], UserName: m["n"], Active: m["a"] == "1", CloseReason: m["cr"],
		Address: m["ad"], Client: m["cl"], APIKeyID: m["k"],
	}
	var err error
	for _, t := range []struct {
		dst *time.Time
		f   string
	}{{&s.OpenTime, "o"}, {&s.RequestTime, "r"}, {&s.CloseTime, "c"}, {&s.ExpireTime, "e"}} {
		if *t.dst, err = parseMicro(m[t.f]); err != nil {
			return nil, 0, fmt.Errorf("session %s: field %s: %w", id, t.f, err)
		}
	}
	if v, ok := m["us"]; ok {
		s.User = []byte(v)
	}
	if v, ok := m["d"]; ok {
		s.Data = []byte(v)
	}
	if v := m["t"]; v != "" {
		s.TokenHash = []byte(v)
	}
	ver, _ := strconv.ParseInt(m["v"], 10, 64)
	return s, ver, nil
}

// expiry is when the keys of sess may expire: Retention plus a margin
// after its deadline (when it died or will die at the latest, for the
// configured idle timeout) or after it was closed, and never sooner than
// that long from now. The scripts compute the same (expiryLua).
func (s *Store) expiry(sess *sessiond.Session, now time.Time) int64 {
	var d time.Time
	switch {
	case sess.Active:
		d = sess.Deadline(s.idle)
	case !sess.CloseTime.IsZero():
		d = sess.CloseTime
	default:
		d = sess.RequestTime
	}
	if d.Before(now) {
		d = now
	}
	return d.Add(s.keep).UnixMilli()
}

// day is the step of the token pointers' expiry: a pointer expires at the
// end of the day after its session's keys, and is moved (one write more)
// only when the session's expiry crosses into a later day.
const day = 24 * 60 * 60 * 1000

func pointerExpiry(at int64) int64 { return (at/day + 2) * day }
