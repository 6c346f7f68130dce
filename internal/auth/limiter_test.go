package auth_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/auth"
	"sessiond/internal/clock"
	"sessiond/store/memory"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// from returns a request from the given client address.
func from(addr string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/session/jsonrpc", nil)
	r.RemoteAddr = addr
	return r
}

func retryAfter(t *testing.T, err error) int {
	t.Helper()
	if sessiond.ErrorCode(err) != sessiond.ETOOMANY {
		t.Fatalf("error = %v, want code %q", err, sessiond.ETOOMANY)
	}
	secs, ok := sessiond.ErrorDetails(err)["retry_after"].(int)
	if !ok || secs < 1 {
		t.Fatalf("retry_after = %v, want whole seconds >= 1", sessiond.ErrorDetails(err)["retry_after"])
	}
	return secs
}

func TestLimiterBurst(t *testing.T) {
	clk := clock.NewFake(t0)
	l := auth.NewLimiter(auth.LimiterOptions{Burst: 5, Interval: 2 * time.Second, Now: clk.Now})
	bad, good := from("192.0.2.7:4000"), from("198.51.100.1:5000")

	for i := range 5 {
		if err := l.Check(bad); err != nil {
			t.Fatalf("failure %d refused: %v", i+1, err)
		}
		l.Failed(bad, "root")
	}
	if got := retryAfter(t, l.Check(bad)); got != 2 {
		t.Errorf("retry_after = %d, want 2", got)
	}
	// Another port of the same host is the same source; another host is not.
	if err := l.Check(from("192.0.2.7:4001")); sessiond.ErrorCode(err) != sessiond.ETOOMANY {
		t.Errorf("same host, other port: %v, want refused", err)
	}
	if err := l.Check(good); err != nil {
		t.Errorf("another source refused: %v", err)
	}

	clk.Add(1500 * time.Millisecond)
	if got := retryAfter(t, l.Check(bad)); got != 1 {
		t.Errorf("retry_after after 1.5 s = %d, want 1 (rounded up)", got)
	}
	clk.Add(500 * time.Millisecond)
	if err := l.Check(bad); err != nil {
		t.Fatalf("refused after the interval: %v", err)
	}
	l.Failed(bad, "root") // one more failure: refused again for one interval
	if got := retryAfter(t, l.Check(bad)); got != 2 {
		t.Errorf("retry_after = %d, want 2", got)
	}

	// Once the debt is paid, the source is heard again, and forgotten by
	// the next failures.
	clk.Add(time.Minute)
	if err := l.Check(bad); err != nil {
		t.Errorf("refused a minute later: %v", err)
	}
	for i := range 100 {
		l.Failed(from(fmt.Sprintf("203.0.113.%d:1", i)), "")
	}
	if got := l.Len(); got != 100 {
		t.Errorf("Len = %d, want 100: the paid-up source forgotten", got)
	}
}

func TestLimiterIPv6Per64(t *testing.T) {
	clk := clock.NewFake(t0)
	l := auth.NewLimiter(auth.LimiterOptions{Burst: 3, Now: clk.Now})
	for i := range 3 {
		l.Failed(from(fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1)), "")
	}
	if err := l.Check(from("[2001:db8:1:2:ffff::1]:443")); sessiond.ErrorCode(err) != sessiond.ETOOMANY {
		t.Errorf("same /64: %v, want refused", err)
	}
	if err := l.Check(from("[2001:db8:1:3::1]:443")); err != nil {
		t.Errorf("another /64: %v", err)
	}
	// An IPv4 address in IPv6 form is the IPv4 source.
	for range 3 {
		l.Failed(from("203.0.113.9:1"), "")
	}
	if err := l.Check(from("[::ffff:203.0.113.9]:1")); sessiond.ErrorCode(err) != sessiond.ETOOMANY {
		t.Errorf("IPv4-mapped form: %v, want refused", err)
	}
}

// However many sources fail, the table holds at most Capacity of them.
func TestLimiterBoundedMemory(t *testing.T) {
	clk := clock.NewFake(t0)
	const capacity = 256
	l := auth.NewLimiter(auth.LimiterOptions{Capacity: capacity, Now: clk.Now})
	for i := range 100000 {
		l.Failed(from(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255)), "u")
		if i%1000 == 0 {
			clk.Add(time.Millisecond)
		}
	}
	if got := l.Len(); got > capacity || got < capacity/2 {
		t.Errorf("Len = %d, want at most %d (and not far below)", got, capacity)
	}
	// The sources that failed last are still remembered and refused.
	last := from("10.1.134.159:1") // i = 99999
	for range 20 {
		l.Failed(last, "u")
	}
	if err := l.Check(last); sessiond.ErrorCode(err) != sessiond.ETOOMANY {
		t.Errorf("recent source: %v, want refused", err)
	}
	// Sources that are no IP address (a custom Source) count by text.
	l2 := auth.NewLimiter(auth.LimiterOptions{Capacity: capacity, Now: clk.Now,
		Source: func(r *http.Request) string { return r.Header.Get("X-Src") }})
	for i := range 10000 {
		r := from("192.0.2.1:1")
		r.Header.Set("X-Src", fmt.Sprintf("%d-%s", i, strings.Repeat("x", 1000)))
		l2.Failed(r, "")
	}
	if got := l2.Len(); got > capacity {
		t.Errorf("Len with text sources = %d, want at most %d", got, capacity)
	}
}

// Failure lines are bounded in number and length: 45 KB user names at a
// high rate make a small log, with a line counting what was left out.
func TestLimiterLogBounded(t *testing.T) {
	clk := clock.NewFake(t0)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := auth.NewLimiter(auth.LimiterOptions{Burst: 1 << 20, Now: clk.Now, Log: log, LogRate: 5, API: "admin"})
	name := strings.Repeat("A", 45<<10) + "\n\x1b[31m"
	const attempts = 10000
	for i := range attempts {
		l.Failed(from(fmt.Sprintf("192.0.2.%d:1", i%200)), name)
		if i%1000 == 999 {
			clk.Add(time.Second) // 1000 failures a second for 10 s
		}
	}
	l.Failed(from("192.0.2.1:1"), "x\n\x1b[31m=\"") // reports the last second's suppressed lines
	out := buf.String()
	if !strings.Contains(out, `user="x\n\x1b[31m=\""`) {
		t.Errorf("a name with control characters is not quoted: %s", out[strings.LastIndex(out[:len(out)-1], "\n")+1:])
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(out) > 16<<10 {
		t.Errorf("log of %d failures with 45 KB names is %d bytes, want at most 16 KiB", attempts, len(out))
	}
	if len(lines) > 11*6 {
		t.Errorf("log has %d lines, want at most 5 a second plus one summary a second (11 s)", len(lines))
	}
	failed, suppressed := 0, 0
	for _, line := range lines {
		switch {
		case strings.Contains(line, "msg=\"authentication failed\""):
			failed++
			if strings.Contains(line, "AAA") && (!strings.Contains(line, fmt.Sprintf("user_bytes=%d", len(name))) || len(line) > 400) {
				t.Errorf("failure line not clipped and quoted: %q", line)
			}
		case strings.Contains(line, "suppressed"):
			var n int
			fmt.Sscanf(line[strings.Index(line, "suppressed=")+len("suppressed="):], "%d", &n)
			suppressed += n
		}
	}
	if failed+suppressed != attempts+1 {
		t.Errorf("lines %d + suppressed %d = %d, want every failure accounted for (%d)", failed, suppressed, failed+suppressed, attempts+1)
	}
}

// Authenticate counts guesses (wrong secret, unknown key or token) and
// only those, and refuses an over-budget source without asking the
// service.
func TestLimiterAuthenticate(t *testing.T) {
	clk := clock.NewFake(t0)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{}, nil)
	key, secret, err := svc.CreateAPIKey(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	l := auth.NewLimiter(auth.LimiterOptions{Burst: 3, Now: clk.Now})
	r := from("192.0.2.7:1")

	// Missing credentials are not guesses.
	for range 10 {
		if _, err := l.Authenticate(r, svc, sessiond.Credentials{}); sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
			t.Fatalf("no credentials: %v", err)
		}
	}
	if l.Len() != 0 {
		t.Fatalf("missing credentials were counted: Len = %d", l.Len())
	}
	wrong := []sessiond.Credentials{
		{APIKey: key.ID, Secret: "wrong"},
		{APIKey: "0123456789abcdef0123456789abcdef", Secret: secret},
		{Token: "not-a-token"},
	}
	for _, c := range wrong {
		if _, err := l.Authenticate(r, svc, c); sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
			t.Fatalf("%+v: %v, want unauthorized", c, err)
		}
	}
	if _, err := l.Authenticate(r, svc, sessiond.Credentials{APIKey: key.ID, Secret: secret}); sessiond.ErrorCode(err) != sessiond.ETOOMANY {
		t.Errorf("right secret from a source over budget: %v, want too many", err)
	}
	if c, err := l.Authenticate(from("192.0.2.8:1"), svc, sessiond.Credentials{APIKey: key.ID, Secret: secret}); err != nil || c.APIKeyID != key.ID {
		t.Errorf("right secret from another source: %v, %v", c, err)
	}
}

// A nil Limiter limits nothing.
func TestLimiterNil(t *testing.T) {
	var l *auth.Limiter
	r := from("192.0.2.7:1")
	l.Failed(r, "x")
	if err := l.Check(r); err != nil || l.Len() != 0 {
		t.Errorf("nil limiter: Check = %v, Len = %d", err, l.Len())
	}
}

// Checks and failures from many goroutines at once keep the table
// consistent (run with -race).
func TestLimiterConcurrent(t *testing.T) {
	l := auth.NewLimiter(auth.LimiterOptions{Capacity: 64, Burst: 3})
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				r := from(fmt.Sprintf("10.%d.%d.1:1", g, i%100))
				if l.Check(r) == nil && i%2 == 0 {
					l.Failed(r, "u")
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	if got := l.Len(); got < 1 || got > 64 {
		t.Errorf("Len = %d, want 1 to 64", got)
	}
}
