package redis_test

import (
	"net"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// Open refuses bad URLs and prefixes (EINVALID), and a server that cannot
// be reached (EUNAVAILABLE), at once when it refuses the connection.
func TestOpenErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, tt := range []struct {
		url, prefix, code string
	}{
		{"http://127.0.0.1:6379", "", sessiond.EINVALID},
		{"127.0.0.1:6379", "", sessiond.EINVALID},
		{"redis+cluster://a:1,b", "", sessiond.EINVALID},
		{redistest.BaseURL(), "bad{prefix}:", sessiond.EINVALID},
		// TLS files: only with TLS, readable, PEM, a certificate with its key.
		{"redis://127.0.0.1:6379/0?sslrootcert=/dev/null", "", sessiond.EINVALID},
		{"rediss://127.0.0.1:6379/0?sslrootcert=/nonexistent/ca.pem", "", sessiond.EINVALID},
		{"rediss://127.0.0.1:6379/0?sslrootcert=/dev/null", "", sessiond.EINVALID},
		{"rediss://127.0.0.1:6379/0?sslcert=/nonexistent/c.pem", "", sessiond.EINVALID},
		{"rediss://127.0.0.1:6379/0?sslcert=/dev/null&sslkey=/dev/null", "", sessiond.EINVALID},
		{"rediss+cluster://127.0.0.1:6379?sslkey=/nonexistent/c.key", "", sessiond.EINVALID},
		{"redis://" + addr + "/0", "", sessiond.EUNAVAILABLE},
		{"redis+cluster://" + addr, "", sessiond.EUNAVAILABLE},
	} {
		start := time.Now()
		s, err := redis.Open(t.Context(), tt.url, redis.Options{Prefix: tt.prefix, OpTimeout: 2 * time.Second})
		if err == nil {
			s.Close()
		}
		if code := sessiond.ErrorCode(err); code != tt.code {
			t.Errorf("Open(%q, prefix %q) = %v, want code %s", tt.url, tt.prefix, err, tt.code)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Open(%q) took %v", tt.url, took)
		}
	}
}

// Every key of a session expires (the backstop when no instance
// sweeps): the session, its statistics and its token pointer, after the
// deadline plus the retention; Touch moves it.
func TestKeysExpire(t *testing.T) {
	url := redistest.BaseURL()
	prefix := redistest.Prefix(t, url)
	s := open(t, url, redis.Options{Prefix: prefix, IdleTimeout: time.Hour, Retention: 24 * time.Hour})
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sess := &sessiond.Session{ID: s.NewSessionID("", "u"), UserID: "u", Active: true, OpenTime: now, RequestTime: now,
		TokenHash: []byte("token-expire")}
	if _, err := s.Create(ctx, sess, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddConnStats(ctx, []sessiond.ConnDelta{{SessionID: sess.ID, Service: "/s/", Requests: 1}}); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")})
	defer c.Close()
	keys, err := redistest.Keys(ctx, url, prefix)
	if err != nil {
		t.Fatal(err)
	}
	expiry := func(part string) time.Time {
		t.Helper()
		for _, k := range keys {
			if strings.Contains(k, part) {
				ms, err := c.PExpireTime(ctx, k).Result()
				if err != nil || ms <= 0 {
					t.Fatalf("key %s: expiry %v, %v", k, ms, err)
				}
				return time.UnixMilli(int64(ms / time.Millisecond))
			}
		}
		t.Fatalf("no key with %q among %q", part, keys)
		return time.Time{}
	}
	want := now.Add(time.Hour + 24*time.Hour + time.Hour) // deadline, retention, margin
	for _, part := range []string{":s:", ":c:"} {
		if got := expiry(part); got.Sub(want).Abs() > time.Minute {
			t.Errorf("%s expires at %v, want about %v", part, got, want)
		}
	}
	if got := expiry(":t:"); !got.After(want) {
		t.Errorf("the token pointer expires at %v, before its session (%v)", got, want)
	}
	later := now.Add(30 * time.Hour)
	if err := s.Touch(ctx, []sessiond.Touch{{ID: sess.ID, Time: later}}); err != nil {
		t.Fatal(err)
	}
	want = later.Add(26 * time.Hour)
	for _, part := range []string{":s:", ":c:"} {
		if got := expiry(part); got.Sub(want).Abs() > time.Minute {
			t.Errorf("after Touch, %s expires at %v, want about %v", part, got, want)
		}
	}
	if got := expiry(":t:"); !got.After(want) {
		t.Errorf("after Touch, the token pointer expires at %v, before its session (%v)", got, want)
	}
}

// Sessions of a user outside the user's home group (ids the engine did
// not choose, or a changed user_id) are listed and counted with the
// user's; once none is left there, the purge forgets the group.
func TestStrayGroups(t *testing.T) {
	url := redistest.BaseURL()
	prefix := redistest.Prefix(t, url)
	s := open(t, url, redis.Options{Prefix: prefix})
	redis.SetStrayMargin(s, 0)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(id, user string) *sessiond.Session {
		return &sessiond.Session{ID: id, UserID: user, APIKeyID: "k", Active: true, OpenTime: now, RequestTime: now,
			TokenHash: []byte("tok-" + id)}
	}
	home := mk(s.NewSessionID("k", "alice"), "alice")
	var stray []*sessiond.Session
	for i := range 20 {
		stray = append(stray, mk("foreign-"+string(rune('a'+i)), "alice"))
	}
	moved := mk(s.NewSessionID("k", "bob"), "bob")
	for _, sess := range append([]*sessiond.Session{home, moved}, stray...) {
		if _, err := s.Create(ctx, sess, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(ctx, moved.ID, func(sess *sessiond.Session) error { sess.UserID = "alice"; return nil }); err != nil {
		t.Fatal(err)
	}
	const all = 22
	page, err := s.List(ctx, sessiond.Filter{UserID: "alice"}, sessiond.Paging{Take: 100, Total: true})
	if err != nil || len(page.Data) != all || *page.Total != all {
		t.Fatalf("List(alice) = %d sessions, total %v, %v; want %d", len(page.Data), page.Total, err, all)
	}
	us, err := s.UserSessions(ctx, "k", "alice", all)
	if err != nil || len(us) != all {
		t.Fatalf("UserSessions(alice) = %d, %v; want %d", len(us), err, all)
	}
	strayKeys := func() int {
		t.Helper()
		keys, err := redistest.Keys(ctx, url, prefix)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, k := range keys {
			if strings.HasSuffix(k, ":x:alice") || strings.HasSuffix(k, ":xs") {
				n++
			}
		}
		return n
	}
	if _, err := s.Purge(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := strayKeys(); n != 2 {
		t.Errorf("%d stray keys while the strays hold sessions, want 2", n)
	}
	for _, sess := range append(stray, moved) {
		if _, err := s.Delete(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Purge(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := strayKeys(); n != 0 {
		t.Errorf("%d stray keys after their sessions went, want 0", n)
	}
	page, err = s.List(ctx, sessiond.Filter{UserID: "alice"}, sessiond.Paging{Take: 100, Total: true})
	if err != nil || len(page.Data) != 1 || *page.Total != 1 {
		t.Errorf("List(alice) after = %d sessions, total %v, %v; want 1", len(page.Data), page.Total, err)
	}
}

// A prefix in the URL names the store when Options.Prefix is empty.
func TestOpenURLPrefix(t *testing.T) {
	base := redistest.BaseURL()
	url := redistest.PrefixURL(t, base)
	_, prefix, _ := strings.Cut(url, "prefix=")
	s := open(t, url, redis.Options{})
	if err := s.CreateAPIKey(t.Context(), &sessiond.APIKey{ID: "k", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	keys, err := redistest.Keys(t.Context(), base, prefix)
	if err != nil || len(keys) == 0 {
		t.Errorf("keys under the URL's prefix %q: %q, %v", prefix, keys, err)
	}
}
