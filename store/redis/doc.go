// Package redis is the Redis engine of sessiond: several sessiond
// instances share one standalone Redis (redis://, rediss://) or one Redis
// Cluster (redis+cluster://h1:p1,h2:p2,..., rediss+cluster:// over TLS).
// It needs Redis 7.0 or later (PEXPIRETIME, sharded pub/sub).
//
// # Key layout
//
// No operation ever touches two slots at once, sessions spread over the
// slots, and no key is hot. Sessions live in 256 groups; every key of
// group g carries the hash tag {gg} (two hex digits), so each group is
// one slot, and a Lua script (EVALSHA) changes a session and every index
// entry of it atomically. The group of a session is the first byte of its
// id: the engine chooses ids (sessiond.IDChooser) so that a session of a
// user lands in the user's home group (a hash of the user id, whatever
// the API key: a listing by user then reads one group) and a session
// without a user in a random group. Ids the engine did not choose (from
// tests, imports) take a hash of the id as their group.
//
// With P the prefix (Options.Prefix, default "sessiond:") and B = P{gg}:
//
//	B s:<id>            hash: the session, times in µs since the epoch
//	B c:<id>            hash: its gateway statistics (field <service>\0<counter>)
//	B order             zset: every session of the group, score -open_time
//	B k:<api key>       zset: the sessions of an API key, score -open_time
//	B u:<user>          zset: the sessions of a user id, score -open_time
//	B ua:<n>:<key>:<user>  set: the active sessions of a user and key
//	B req, B exp        zsets: active sessions by request_time, and by expire_time
//	B closed            zset: closed sessions by close_time
//	B ix                hash: id -> api key, user (to clean a session whose keys expired)
//	B x:<user>, B xs    in the user's home group: other groups that hold
//	                    sessions of the user (ids not chosen by the engine,
//	                    or an Update that changed user_id), and their users
//	P{hhhh}:t:<hash>    the token pointer: token hash -> "<id> <ms written>",
//	                    tagged by the hash's first two bytes (65,536 tags)
//	P{keys}:key:<id>, P{keys}:keys   API keys (hash each, zset by creation): few
//	P{evX}:log, P{evX}:ch   the stream's 16 shards, X a hex digit (log and channel)
//
// The score -open_time (µs) orders a zset as every listing is ordered:
// newest first, ties by id (members of equal score sort by their bytes).
//
// # Operations
//
// Create writes the token pointer first (SET NX), then the session and
// its indexes in one script; a second session with that token hash finds
// the pointer and is refused (ECONFLICT), as is one whose pointer belongs
// to a Create under way (written less than 30 s ago); a pointer whose
// session is gone, or holds another hash, is taken over. A lookup by
// token follows the pointer and checks that the session holds that hash,
// so a dangling pointer finds nothing. Delete and Purge remove the
// pointer after the session.
//
// Update is optimistic: it reads the session with its version field v,
// calls the UpdateFunc, and stores the result with a script that refuses
// it if v moved (Touch, the sweep and every write add one); it then runs
// again from the read, the function included (sessiond.UpdateFunc may be
// retried). Concurrent writers lose nothing; a writer may wait for
// others, never for a lock that a dead client holds.
//
// Touch sends one script per group, pipelined, raising request_time of
// active sessions only. AddConnStats likewise adds to the statistics
// hashes of sessions that exist.
//
// The per-user limit: the create script also counts, after its write, the
// user's ua set in the group and the strays the group records, so a
// session in its user's home group, of a user without strays, is answered
// there (Create's crowded); anything else is reported crowded. Then
// UserSessions counts the user's ua sets (SCARD, home and strays) and
// reads sessions only when there are at least min.
//
// List merges the groups' sorted sets in their order: the user's u sets
// for a filter by user (the home group and its strays), every group's k
// set for a filter by API key, every group's order set otherwise; the
// sets are read from the window's score bounds (FromTime, ToTime), each a
// chunk at a time: the first chunks, in one pipeline with the totals'
// ZCOUNT, hold what an even spread of the window over the sets needs, and
// a set that runs out reads twice as much each time, up to skip+take (at
// most 1000). With no other filter, the skipped entries are passed over
// unread and only the page's sessions are read. Any other
// filter (address, client, search, state, active, a key together with a
// user) is applied to the sessions read while merging: such a page costs
// the sessions read until it is full, and such a total reads every
// candidate (all sessions of the user or key, or of the store), except
// the total of a filter on liveness alone (state active, active true),
// which a script per group counts from the req and exp sets: ZCOUNT of
// req from the idle bound, less those past their expire time (unless the
// sweep is more than a batch behind, when it is counted by reading).
//
// CloseExpired and Purge run a script on every group, pipelined, each
// taking at most 1000 due ids from the group's req and exp (or closed)
// sets and closing (as sessiond.ApplyClose at the deadline) or deleting
// them with every index entry; groups with more run again. A script
// decides each id once, atomically, so every instance may sweep at once.
//
// # Expiry
//
// The keys of a session (session, statistics) expire Retention plus an
// hour after its deadline for the configured IdleTimeout (Options; the
// service's values) or after it closed, and never sooner than that from
// the last write: every write and every Touch moves the expiry. So dead
// sessions cost nothing even if no instance sweeps. A token pointer
// expires at the end of the day after its session's keys, and is moved
// (one more write) when the session's expiry crosses into a later day.
// No rule depends on expiry notifications: the sweep and the purge clean
// the index entries of sessions whose keys expired (from ix), and a
// listing skips them.
// TestSweepLeavesNothing opens 1,000,000 sessions (with users, keys,
// statistics and touches), lets them die, sweeps and purges them, and
// finds with SCAN no key of the store left but the stream's logs.
//
// # Stream
//
// Stream carries session events between instances. Publish delivers to
// this process's subscribers first (sessiond.LocalStream), then, per
// shard (a session's events go to the shard of its group, so they keep
// their order; API key events by the key's id), runs a script that
// appends the batch to the shard's log (a Redis Stream, XADD MINID ~ now -
// EventRetention, the key expiring EventRetention after its last event)
// and publishes "<entry id> <events>" on the shard's channel with
// SPUBLISH (sharded pub/sub, also on a standalone server): one script, so
// a channel's order is its log's. Each instance holds one subscription
// per shard (SSUBSCRIBE, on the shard's master) and delivers the events
// of other origins, one batch at a time. When a subscription breaks (a
// lost connection, a server gone, a silent one found by a PING after
// ListenPing without a message, or the server unsubscribing it as its
// slot moves in a failover or resharding), subscribers receive EventLost
// at once; the subscription is made again with backoff (100ms to 2s,
// after reloading the cluster's slots), reads the log from the last entry
// it saw (nothing missed, since it subscribed first), delivers those
// events, and when every shard is back tells EventResumed. A loss longer
// than EventRetention (an hour) is not caught up in full.
//
// # Durability
//
// An acknowledged write is as durable as the server makes it: Redis
// acknowledges from memory and writes its append-only file as appendfsync
// says. Run Redis for sessiond with appendonly yes and
//
//	appendfsync always    every write is on disk before it is
//	                      acknowledged: nothing acknowledged is lost in a
//	                      crash, at the cost of a disk sync per write
//	                      (throughput bounded by the disk);
//	appendfsync everysec  the file is synced each second: a crash of the
//	                      server (not of sessiond) loses up to about a
//	                      second of acknowledged writes; far faster.
//
// Without appendonly (snapshots only, or nothing) a restart of the server
// loses what came after the last snapshot. Replicas do not add
// durability: replication is asynchronous, so a failover may lose the
// last writes the master acknowledged (WAIT is not used). Keep
// maxmemory-policy noeviction: an evicted index or session would be
// inconsistent until the sweep.
//
// # Outage
//
// Every operation is bounded by Options.OpTimeout (default 5s): dial,
// reads and writes of the client, and the operation's context. A server
// that cannot be reached or does not answer in time, or that cannot serve
// now (LOADING, CLUSTERDOWN, TRYAGAIN, MASTERDOWN, READONLY during a
// failover), gives sessiond.Error with code EUNAVAILABLE; Ping fails
// (every master of a cluster is pinged). The client's pool dials again
// when used, so the same Store works once the server is back.
//
// # What the cluster trades
//
// A listing of all sessions or of an API key reads all 256 groups (one
// pipelined round trip per chunk, spread over the masters); a listing by
// user reads one group. Order between the events of different sessions,
// published by different instances, holds within a shard only. All of a
// user's sessions share a slot: a user with very many sessions makes that
// slot heavier (sessions without a user spread at random). API keys share
// one slot: they are few and cached by every instance.
package redis
