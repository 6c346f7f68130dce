package main

import (
	"bytes"
	"strings"
	"testing"

	"net/http/httptest"

	"sessiond"
	"sessiond/admin"
	"sessiond/store/memory"
)

// TestHashPassword: the printed hash is accepted as an admin user's
// password and matches only the password it was made from.
func TestHashPassword(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runHashPassword(nil, strings.NewReader("s3cret pass\n"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	hash := strings.TrimSpace(out.String())
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("printed %q, want an argon2id PHC string", hash)
	}
	svc := sessiond.NewService(memory.New(), nil, sessiond.Config{}, nil)
	h, err := admin.New(svc, admin.Options{Users: map[string]string{"ops": hash}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("the printed hash is refused in admin-users: %v", err)
	}
	for _, c := range []struct {
		password string
		want     int
	}{{"s3cret pass", 200}, {"s3cret pas", 401}} {
		req := httptest.NewRequest("GET", "/v1/apikeys", nil)
		req.SetBasicAuth("ops", c.password)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != c.want {
			t.Errorf("password %q: %d, want %d", c.password, w.Code, c.want)
		}
	}
	if code := runHashPassword(nil, strings.NewReader("\n"), &out, &errb); code != 1 {
		t.Errorf("empty password: exit %d, want 1", code)
	}
	if code := runHashPassword([]string{"pw"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("password as an argument: exit %d, want 2", code)
	}
}
