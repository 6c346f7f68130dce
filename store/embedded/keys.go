package embedded

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"sessiond"
)

// Keys. Each starts with one byte that names its kind, so that every kind
// is one contiguous range:
//
//	m format                                  -> formatVersion
//	s id                                      -> session record
//	u userKey(user_id) revTime(open_time) id  -> empty, sessions with a user_id
//	k id                                      -> API key record
//
// A Create writes at most two keys (s, u): keys per write are what pebble's
// CPU cost grows with. The order of all sessions, the data the sweeps need
// and the map from token hashes to sessions are kept in memory instead (see
// memIndex).
const (
	kindMeta    = 'm'
	kindSession = 's'
	kindUser    = 'u'
	kindAPIKey  = 'k'

	// kindLegacyToken keys (t token_hash -> id) were the token index of
	// format 2; Open deletes them when it upgrades a store to format 3.
	kindLegacyToken = 't'
)

var keyFormat = []byte{kindMeta, 'f', 'o', 'r', 'm', 'a', 't'}

// formatVersion is the layout of keys and records described above.
// Version 1 was the bbolt engine's single file; version 2 had a token index
// in pebble (kindLegacyToken), which Open upgrades from. Older binaries
// refuse version 3: without the token index they would miss a token whose
// 64-bit hash collides with another's.
const (
	formatVersion       = 3
	formatVersionTokens = 2
)

// maxInlineUser is the longest user_id kept verbatim in user index keys;
// longer ones are replaced by their SHA-256 so that keys stay short. List
// compares the real user_id anyway, so a collision could only cost a wasted
// read.
const maxInlineUser = 256

// maxIDLen bounds session and API key ids.
const maxIDLen = 1024

// maxTokenHashLen bounds token hashes.
const maxTokenHashLen = 1024

// sessionKey returns the record key of session id.
func sessionKey(id string) []byte {
	return append(append(make([]byte, 0, 1+len(id)), kindSession), id...)
}

// apiKeyKey returns the record key of API key id.
func apiKeyKey(id string) []byte {
	return append(append(make([]byte, 0, 1+len(id)), kindAPIKey), id...)
}

// userPrefix returns the prefix of the user index keys of user: the kind,
// then the uvarint length and the user_id, so that no user's prefix is a
// prefix of another's ("al" and "alice").
func userPrefix(user string) []byte {
	dst := make([]byte, 0, 1+binary.MaxVarintLen64+min(len(user), maxInlineUser+sha256.Size)+timeLen+64)
	dst = append(dst, kindUser)
	dst = binary.AppendUvarint(dst, uint64(len(user)))
	if len(user) > maxInlineUser {
		h := sha256.Sum256([]byte(user))
		return append(dst, h[:]...)
	}
	return append(dst, user...)
}

// userIndexKey returns the user index key of s, or nil if s has no user_id.
// Within one user, keys sort newest open_time first, then by id: the order
// of sessiond.Store.List.
func userIndexKey(s *sessiond.Session) []byte {
	if s == nil || s.UserID == "" {
		return nil
	}
	return append(appendRevTime(userPrefix(s.UserID), s.OpenTime), s.ID...)
}

// appendRevTime appends the time key of t with every bit inverted, so that
// byte order is reverse time order.
func appendRevTime(dst []byte, t time.Time) []byte {
	n := len(dst)
	dst = appendTime(dst, t)
	for i := n; i < len(dst); i++ {
		dst[i] = ^dst[i]
	}
	return dst
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
