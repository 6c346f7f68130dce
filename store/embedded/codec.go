package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"sessiond"
)

// Records are stored in a small hand-written binary encoding: it is several
// times faster than encoding/json, allocates three times per decoded
// session, and lets Touch rewrite request_time in place.
//
// Session record, version 1 (the session id is in the key, not stored):
//
//	[0]      version (1)
//	[1]      flags: active, user present, data present, token hash present
//	[2:14]   open_time     \
//	[14:26]  request_time   | each 12 bytes: seconds since the Unix epoch as a
//	[26:38]  close_time     | sign-flipped big-endian int64, then nanoseconds
//	[38:50]  expire_time   /  as a big-endian uint32 (zero time included)
//	then, each as uvarint length + bytes:
//	         user_id, user_name, close_reason, address, client, api_key_id,
//	         token_hash, user, data
//
// The strings come first so that decoding copies them with one allocation
// and the byte fields with another.
const (
	recordV1 = 1

	flagActive = 1 << 0
	flagUser   = 1 << 1
	flagData   = 1 << 2
	flagToken  = 1 << 3

	timeLen    = 12
	offOpen    = 2
	offRequest = offOpen + timeLen
	offClose   = offRequest + timeLen
	offExpire  = offClose + timeLen
	offVar     = offExpire + timeLen
)

// API key record, version 1 (the id is in the key):
//
//	[0] version (1), [1] flags (secret hash present), [2:14] created,
//	then uvarint length + bytes: name, secret_hash.
const (
	keyRecordV1 = 1
	flagSecret  = 1
	keyOffVar   = 2 + timeLen
)

var errCorrupt = errors.New("corrupt record")

// putTime writes t into b[:timeLen] so that byte order is time order.
func putTime(b []byte, t time.Time) {
	binary.BigEndian.PutUint64(b, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
}

// getTime reads a time written by putTime, in UTC. The zero time comes back
// as the zero time.Time.
func getTime(b []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	nsec := int64(binary.BigEndian.Uint32(b[8:]))
	return time.Unix(sec, nsec).UTC()
}

// appendTime appends the timeLen bytes of t.
func appendTime(dst []byte, t time.Time) []byte {
	var b [timeLen]byte
	putTime(b[:], t)
	return append(dst, b[:]...)
}

func appendField[T ~string | ~[]byte](dst []byte, v T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

// encodeSession appends the record of s to dst.
func encodeSession(dst []byte, s *sessiond.Session) []byte {
	var hdr [offVar]byte
	hdr[0] = recordV1
	if s.Active {
		hdr[1] |= flagActive
	}
	if s.User != nil {
		hdr[1] |= flagUser
	}
	if s.Data != nil {
		hdr[1] |= flagData
	}
	if s.TokenHash != nil {
		hdr[1] |= flagToken
	}
	putTime(hdr[offOpen:], s.OpenTime)
	putTime(hdr[offRequest:], s.RequestTime)
	putTime(hdr[offClose:], s.CloseTime)
	putTime(hdr[offExpire:], s.ExpireTime)
	dst = append(dst, hdr[:]...)
	for _, f := range [...]string{s.UserID, s.UserName, s.CloseReason, s.Address, s.Client, s.APIKeyID} {
		dst = appendField(dst, f)
	}
	for _, f := range [...][]byte{s.TokenHash, s.User, s.Data} {
		dst = appendField(dst, f)
	}
	return dst
}

// sessionSize returns an upper bound of the encoded size of s.
func sessionSize(s *sessiond.Session) int {
	return offVar + 9*binary.MaxVarintLen32 + len(s.UserID) + len(s.UserName) + len(s.CloseReason) +
		len(s.Address) + len(s.Client) + len(s.APIKeyID) + len(s.TokenHash) + len(s.User) + len(s.Data)
}

// fieldReader walks the length-prefixed fields of a record.
type fieldReader struct {
	b   []byte
	off int
	err error
}

// next returns the bounds of the next field within b.
func (r *fieldReader) next() (start, end int) {
	if r.err != nil {
		return r.off, r.off
	}
	n, w := binary.Uvarint(r.b[r.off:])
	if w <= 0 || n > uint64(len(r.b)-r.off-w) {
		r.err = errCorrupt
		return r.off, r.off
	}
	start = r.off + w
	end = start + int(n)
	r.off = end
	return start, end
}

// decodeSession decodes the record v of the session id. v may be memory
// owned by the database: nothing in the result refers to it.
func decodeSession(id string, v []byte) (*sessiond.Session, error) {
	if len(v) < offVar {
		return nil, fmt.Errorf("session %s: %w: %d bytes", id, errCorrupt, len(v))
	}
	if v[0] != recordV1 {
		return nil, fmt.Errorf("session %s: unsupported record version %d", id, v[0])
	}
	flags := v[1]
	s := &sessiond.Session{
		ID:          id,
		Active:      flags&flagActive != 0,
		OpenTime:    getTime(v[offOpen:]),
		RequestTime: getTime(v[offRequest:]),
		CloseTime:   getTime(v[offClose:]),
		ExpireTime:  getTime(v[offExpire:]),
	}

	r := fieldReader{b: v, off: offVar}
	var strs [6][2]int
	for i := range strs {
		strs[i][0], strs[i][1] = r.next()
	}
	strEnd := r.off
	var bs [3][2]int
	for i := range bs {
		bs[i][0], bs[i][1] = r.next()
	}
	if r.err != nil || r.off != len(v) {
		return nil, fmt.Errorf("session %s: %w", id, errCorrupt)
	}

	// One allocation for every string, one for every byte field.
	all := string(v[offVar:strEnd])
	str := func(i int) string { return all[strs[i][0]-offVar : strs[i][1]-offVar] }
	s.UserID, s.UserName, s.CloseReason = str(0), str(1), str(2)
	s.Address, s.Client, s.APIKeyID = str(3), str(4), str(5)

	var raw []byte
	if flags&(flagToken|flagUser|flagData) != 0 {
		raw = append(make([]byte, 0, len(v)-strEnd), v[strEnd:]...)
	}
	field := func(i int, flag byte) []byte {
		if flags&flag == 0 {
			return nil
		}
		lo, hi := bs[i][0]-strEnd, bs[i][1]-strEnd
		return raw[lo:hi:hi]
	}
	s.TokenHash = field(0, flagToken)
	s.User = field(1, flagUser)
	s.Data = field(2, flagData)
	return s, nil
}

// encodeAPIKey appends the record of k to dst.
func encodeAPIKey(dst []byte, k *sessiond.APIKey) []byte {
	var flags byte
	if k.SecretHash != nil {
		flags |= flagSecret
	}
	dst = append(dst, keyRecordV1, flags)
	dst = appendTime(dst, k.Created)
	dst = appendField(dst, k.Name)
	return appendField(dst, k.SecretHash)
}

// decodeAPIKey decodes the record v of the API key id.
func decodeAPIKey(id string, v []byte) (*sessiond.APIKey, error) {
	if len(v) < keyOffVar {
		return nil, fmt.Errorf("api key %s: %w", id, errCorrupt)
	}
	if v[0] != keyRecordV1 {
		return nil, fmt.Errorf("api key %s: unsupported record version %d", id, v[0])
	}
	r := fieldReader{b: v, off: keyOffVar}
	ns, ne := r.next()
	ss, se := r.next()
	if r.err != nil || r.off != len(v) {
		return nil, fmt.Errorf("api key %s: %w", id, errCorrupt)
	}
	k := &sessiond.APIKey{ID: id, Name: string(v[ns:ne]), Created: getTime(v[2:])}
	if v[1]&flagSecret != 0 {
		k.SecretHash = append(make([]byte, 0, se-ss), v[ss:se]...)
	}
	return k, nil
}
