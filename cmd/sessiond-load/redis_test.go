package main

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
	"sessiond/config"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// The baseline's open writes the keys and fields that the engine's Create
// writes for the same session; its get and verify find the engine's
// sessions by id and by token; the prefixes' keys are deleted at the end.
// On the shared server and on a private cluster.
func TestBareRedis(t *testing.T) {
	t.Run("standalone", func(t *testing.T) { testBareRedis(t, redistest.BaseURL()) })
	t.Run("cluster", func(t *testing.T) { testBareRedis(t, redistest.StartCluster(t).URL()) })
}

func testBareRedis(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	prefixes, err := newRedisPrefixes(url)
	if err != nil {
		t.Fatal(err)
	}
	defer prefixes.rdb.Close()
	t.Cleanup(prefixes.deleteAll)
	enginePrefix, engineURL := prefixes.create()
	barePrefix, _ := prefixes.create()

	cfg := config.Default()
	st, err := redis.Open(ctx, engineURL, redis.Options{IdleTimeout: cfg.IdleTimeout, Retention: cfg.Retention})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := &bareRedis{rdb: prefixes.rdb, prefix: enginePrefix, openPrefix: barePrefix,
		idle: cfg.IdleTimeout, keep: cfg.Retention + time.Hour}

	token := sessiond.NewSecret()
	now := time.Now()
	sess := &sessiond.Session{ID: st.NewSessionID("", "u7"), UserID: "u7", UserName: "Load", Active: true,
		OpenTime: now, RequestTime: now, Address: "127.0.0.1", Client: "load", Data: []byte(`{"n":1}`),
		TokenHash: sessiond.HashSecret(token)}
	if newSessionID("u7")[:2] != sess.ID[:2] {
		t.Errorf("newSessionID places u7 in group %s, the engine in %s", newSessionID("u7")[:2], sess.ID[:2])
	}
	if _, err := st.Create(ctx, sess, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.create(ctx, sess, now); err != nil {
		t.Fatal(err)
	}

	// The same keys under each prefix (the stream's aside), the same
	// session hash but its random first version.
	keys := func(prefix string) []string {
		all, err := redistest.Keys(ctx, url, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range all {
			if k = strings.TrimPrefix(k, prefix); !strings.HasPrefix(k, "{ev") {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	if e, o := keys(enginePrefix), keys(barePrefix); !slices.Equal(e, o) {
		t.Errorf("keys: engine %q, bare %q", e, o)
	}
	hash := func(prefix string) map[string]string {
		m, err := prefixes.rdb.HGetAll(ctx, b.sessionKey(prefix, sess.ID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		delete(m, "v")
		return m
	}
	if e, o := hash(enginePrefix), hash(barePrefix); !maps.Equal(e, o) {
		t.Errorf("session hash: engine %q, bare %q", e, o)
	}

	fixed := []byte(`{}`)
	serve := func(h http.Handler, body string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "POST", "/", strings.NewReader(body)))
		return w.Code
	}
	for _, c := range []struct {
		name string
		h    http.Handler
		body string
		want int
	}{
		{"get", b.get(fixed), `{"session_id":"` + sess.ID + `"}`, http.StatusOK},
		{"get unknown", b.get(fixed), `{"session_id":"` + sessiond.NewID() + `"}`, http.StatusNotFound},
		{"verify", b.verify(fixed), `{"token":"` + token + `"}`, http.StatusOK},
		{"verify unknown", b.verify(fixed), `{"token":"` + sessiond.NewSecret() + `"}`, http.StatusNotFound},
		{"open", b.open(fixed), `{"user_id":"u8","user_name":"Load"}`, http.StatusOK},
	} {
		if got := serve(c.h, c.body); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}

	st.Close()
	prefixes.deleteAll()
	for _, p := range []string{enginePrefix, barePrefix} {
		if left := keys(p); len(left) > 0 {
			t.Errorf("keys left under %s: %q", p, left)
		}
	}
}

// -redis-cluster's cluster serves a ClusterClient on every master, and
// Stop stops its nodes and removes their directory.
func TestPrivateCluster(t *testing.T) {
	c, err := startCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	rdb, err := redisClient(c.URL() + "?prefix=x:")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var masters atomic.Int64
	if err := eachMaster(ctx, rdb, func(ctx context.Context, m *goredis.Client) error {
		masters.Add(1)
		return m.Ping(ctx).Err()
	}); err != nil || masters.Load() != 3 {
		t.Fatalf("masters: %d, %v; want 3", masters.Load(), err)
	}
	if used, err := usedMemory(ctx, rdb); err != nil || used <= 0 {
		t.Errorf("used_memory: %d, %v", used, err)
	}
	if pids := serverPIDs(ctx, rdb); len(pids) != 3 {
		t.Errorf("server pids: %v, want 3", pids)
	}
	c.Stop()
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory after Stop: %v", err)
	}
}
