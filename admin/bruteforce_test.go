package admin_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"sessiond/admin"
	"sessiond/internal/auth"
	"sessiond/internal/clock"
)

// basic sends GET /v1/apikeys with the given credentials from the given
// client address.
func basic(h http.Handler, remote, user, password string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/v1/apikeys", nil)
	r.RemoteAddr = remote
	r.SetBasicAuth(user, password)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// A burst of wrong passwords from one address is answered 429 with
// Retry-After, even for the right password, while another address still
// gets in.
func TestBruteForceSlowedDown(t *testing.T) {
	svc, _ := newService(t, nil)
	clk := clock.NewFake(epoch)
	lim := auth.NewLimiter(auth.LimiterOptions{Burst: 5, Interval: 3 * time.Second, Now: clk.Now, API: "admin"})
	h, err := admin.New(svc, admin.Options{Users: map[string]string{testUser: testPassword}, DataDir: t.TempDir(), Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	const attacker, operator = "192.0.2.66:5000", "198.51.100.7:6000"
	for i := range 5 {
		checkError(t, basic(h, attacker, testUser, "guess"+strconv.Itoa(i)), http.StatusUnauthorized)
	}
	for _, pw := range []string{"guess5", testPassword} {
		w := basic(h, attacker, testUser, pw)
		doc := checkError(t, w, http.StatusTooManyRequests)
		if got := doc.Errors[0].Code; got != "too_many" {
			t.Errorf("error code = %q, want too_many", got)
		}
		if got := w.Header().Get("Retry-After"); got != "3" {
			t.Errorf("Retry-After = %q, want 3", got)
		}
		if !strings.Contains(w.Body.String(), `"retry_after":3`) {
			t.Errorf("body has no meta.retry_after: %s", w.Body)
		}
	}
	if w := basic(h, operator, testUser, testPassword); w.Code != http.StatusOK {
		t.Errorf("the right password from another address: %d %s", w.Code, w.Body)
	}
	// Health probes need no credentials and are never slowed down.
	r := httptest.NewRequest(http.MethodGet, "/health/live", nil)
	r.RemoteAddr = attacker
	if w := httptest.NewRecorder(); func() int { h.ServeHTTP(w, r); return w.Code }() != http.StatusOK {
		t.Errorf("/health/live from the slowed-down address: %d", w.Code)
	}
	clk.Add(3 * time.Second)
	if w := basic(h, attacker, testUser, testPassword); w.Code != http.StatusOK {
		t.Errorf("the right password after Retry-After: %d %s", w.Code, w.Body)
	}
}

// 45 KB user names from many addresses make a small log.
func TestBruteForceLogBounded(t *testing.T) {
	svc, _ := newService(t, nil)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	h, err := admin.New(svc, admin.Options{Users: map[string]string{testUser: testPassword}, DataDir: t.TempDir(), Log: log,
		Limiter: auth.NewLimiter(auth.LimiterOptions{Log: log, API: "admin"})})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("N", 45<<10)
	const attempts = 3000
	for i := range attempts {
		w := basic(h, fmt.Sprintf("10.0.%d.%d:1234", i/250, i%250), name, "wrong")
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, w.Code)
		}
	}
	// Before, every attempt logged its 45 KB name: 135 MB.
	if buf.Len() > 64<<10 {
		t.Errorf("log of %d failures with 45 KB names: %d bytes, want at most 64 KiB", attempts, buf.Len())
	}
	if !strings.Contains(buf.String(), "authentication failed") {
		t.Errorf("no failure is logged: %q", buf.String())
	}
}

// Passwords may be configured as bcrypt or argon2id hashes; a plain one
// still works.
func TestHashedPasswords(t *testing.T) {
	svc, _ := newService(t, nil)
	bc, err := bcrypt.GenerateFromPassword([]byte("bcrypt pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := admin.HashPassword("argon pw")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ar, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("HashPassword = %q, want an argon2id PHC string", ar)
	}
	if again, _ := admin.HashPassword("argon pw"); again == ar {
		t.Errorf("HashPassword gave the same hash twice: no random salt")
	}
	users := map[string]string{
		"b":     string(bc),
		"b2y":   strings.Replace(string(bc), "$2a$", "$2y$", 1),
		"a":     ar,
		"plain": "plain pw",
	}
	h, err := admin.New(svc, admin.Options{Users: users, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, password string
		want           int
	}{
		{"b", "bcrypt pw", http.StatusOK},
		{"b2y", "bcrypt pw", http.StatusOK},
		{"a", "argon pw", http.StatusOK},
		{"a", "argon pw", http.StatusOK}, // remembered
		{"plain", "plain pw", http.StatusOK},
		{"b", "wrong", http.StatusUnauthorized},
		{"a", "wrong", http.StatusUnauthorized},
		{"a", "bcrypt pw", http.StatusUnauthorized},
		{"b", string(bc), http.StatusUnauthorized}, // the hash is not the password
		{"nobody", "argon pw", http.StatusUnauthorized},
	}
	for i, tt := range tests {
		// Each from its own address: this test is not about the limiter.
		w := basic(h, fmt.Sprintf("192.0.2.%d:1", i+1), tt.user, tt.password)
		if w.Code != tt.want {
			t.Errorf("%s / %q: %d, want %d (%s)", tt.user, tt.password, w.Code, tt.want, w.Body)
		}
	}
}

func TestHashedPasswordsRefused(t *testing.T) {
	svc, _ := newService(t, nil)
	good, _ := admin.HashPassword("pw")
	for _, pw := range []string{
		"$2b$10$tooshort",
		"$2a$99$" + strings.Repeat("a", 53),
		"$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=65536,t=0,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4,t=1,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=65536,t=3$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=65536,t=3,p=4$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$c2hvcnQ",
		strings.TrimSuffix(good, good[strings.LastIndex(good, "$"):]),
	} {
		if _, err := admin.New(svc, admin.Options{Users: map[string]string{"u": pw}, DataDir: t.TempDir()}); err == nil {
			t.Errorf("admin.New accepted the password %q", pw)
		}
	}
}

// SetUsers replaces the admin users at run time; a bad set keeps the old.
func TestSetUsers(t *testing.T) {
	svc, _ := newService(t, nil)
	old, _ := admin.HashPassword("old pw")
	h, err := admin.New(svc, admin.Options{Users: map[string]string{"u": old}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if w := basic(h, "192.0.2.1:1", "u", "old pw"); w.Code != http.StatusOK {
		t.Fatalf("old password: %d", w.Code)
	}
	if err := h.SetUsers(map[string]string{"u": "new pw", "v": "other"}); err != nil {
		t.Fatal(err)
	}
	// The old password was remembered as verified; it must not outlive
	// the users it belonged to.
	if w := basic(h, "192.0.2.2:1", "u", "old pw"); w.Code != http.StatusUnauthorized {
		t.Errorf("old password after SetUsers: %d, want 401", w.Code)
	}
	for _, c := range [][2]string{{"u", "new pw"}, {"v", "other"}} {
		if w := basic(h, "192.0.2.3:1", c[0], c[1]); w.Code != http.StatusOK {
			t.Errorf("%s after SetUsers: %d", c[0], w.Code)
		}
	}
	if err := h.SetUsers(map[string]string{"u": "$2b$bad"}); err == nil {
		t.Errorf("SetUsers accepted a bad hash")
	}
	if w := basic(h, "192.0.2.4:1", "u", "new pw"); w.Code != http.StatusOK {
		t.Errorf("after a refused SetUsers: %d, want the users before it", w.Code)
	}
}
