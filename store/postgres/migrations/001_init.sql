-- Version 1: sessions, API keys, gateway statistics and the event log.
-- Identifiers that are ordered (session ids, service names) use the "C"
-- collation: the contract orders them by bytes, as Go compares strings.

CREATE TABLE sessions (
	id           text COLLATE "C" PRIMARY KEY,
	user_id      text NOT NULL DEFAULT '',
	user_name    text NOT NULL DEFAULT '',
	active       boolean NOT NULL,
	open_time    timestamptz NOT NULL,
	request_time timestamptz NOT NULL,
	close_time   timestamptz,          -- NULL while active
	expire_time  timestamptz,          -- NULL: only the idle timeout applies
	close_reason text NOT NULL DEFAULT '',
	address      text NOT NULL DEFAULT '',
	client       text NOT NULL DEFAULT '',
	user_json    bytea,                -- the JSON bytes as given; NULL is JSON null
	data         bytea,
	api_key_id   text NOT NULL DEFAULT '',
	token_hash   bytea UNIQUE          -- NULL when the session has none
);

-- The order of every listing, and each equality filter followed by it, so
-- that a filtered page is read in order from one index.
CREATE INDEX sessions_order ON sessions (open_time DESC, id);
CREATE INDEX sessions_user ON sessions (user_id, open_time DESC, id);
CREATE INDEX sessions_address ON sessions (address, open_time DESC, id);
CREATE INDEX sessions_client ON sessions (client, open_time DESC, id);
CREATE INDEX sessions_key ON sessions (api_key_id, open_time DESC, id);
CREATE INDEX sessions_active ON sessions (active, open_time DESC, id);
-- The per-user limit (UserSessions), answered from the index alone.
CREATE INDEX sessions_user_active ON sessions (api_key_id, user_id)
	INCLUDE (id, open_time, request_time, expire_time) WHERE active;
-- The sweep: active sessions by idle deadline and by expire time; closed
-- sessions by close time for Purge.
CREATE INDEX sessions_sweep_idle ON sessions (request_time) WHERE active;
CREATE INDEX sessions_sweep_expire ON sessions (expire_time) WHERE active AND expire_time IS NOT NULL;
CREATE INDEX sessions_purge ON sessions (close_time) WHERE NOT active;

CREATE TABLE api_keys (
	id          text COLLATE "C" PRIMARY KEY,
	name        text NOT NULL DEFAULT '',
	secret_hash bytea,
	created     timestamptz NOT NULL
);
CREATE INDEX api_keys_created ON api_keys (created, id);

CREATE TABLE conn_stats (
	session_id text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	service    text COLLATE "C" NOT NULL,
	requests   bigint NOT NULL DEFAULT 0,
	reads      bigint NOT NULL DEFAULT 0,
	writes     bigint NOT NULL DEFAULT 0,
	errors     bigint NOT NULL DEFAULT 0,
	last_used  timestamptz,
	PRIMARY KEY (session_id, service)
);

-- The event log behind LISTEN/NOTIFY: a listener that lost its connection
-- catches up from here. Rows are pruned after an hour.
CREATE TABLE events (
	seq     bigserial PRIMARY KEY,
	at      timestamptz NOT NULL DEFAULT now(),
	origin  text NOT NULL,
	payload text NOT NULL       -- the JSON of one sessiond.Event
);
CREATE INDEX events_at ON events (at);
