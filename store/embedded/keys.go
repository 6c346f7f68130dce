package embedded

// Keys. Each starts with one byte that names its kind, so that every kind
// is one contiguous range:
//
//	m format  -> formatVersion
//	s id      -> session record
//	k id      -> API key record
//	c id 0 service -> gateway statistics (stats.go)
//
// A Create writes one key: keys per write are what pebble's CPU cost grows
// with (each is a skiplist insert of a random key into the memtable, a
// chain of cache misses, and is written again by every flush and
// compaction). The order of all sessions and of each user's sessions, the
// data the sweeps need and the map from token hashes to sessions are kept
// in memory instead (see memIndex), rebuilt at every start.
const (
	kindMeta    = 'm'
	kindSession = 's'
	kindAPIKey  = 'k'
	kindStats   = 'c'

	// kindLegacyToken keys (t token_hash -> id) were the token index of
	// format 2, and kindLegacyUser keys (u user revTime(open_time) id) the
	// user index of formats 2 and 3; Open deletes them when it upgrades a
	// store.
	kindLegacyToken = 't'
	kindLegacyUser  = 'u'
)

var keyFormat = []byte{kindMeta, 'f', 'o', 'r', 'm', 'a', 't'}

// formatVersion is the layout of keys and records described above.
// Version 1 was the bbolt engine's single file; version 2 had a token index
// and version 3 a user index in pebble (kindLegacyToken, kindLegacyUser),
// which Open upgrades from. Older binaries refuse version 4, whose
// sessions they would not find by user.
const (
	formatVersion       = 4
	formatVersionUsers  = 3
	formatVersionTokens = 2
)

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
