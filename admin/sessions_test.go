package admin_test

import (
	"net/http"
	"testing"
	"time"

	"sessiond"
)

// DELETE /v1/sessions/{id} force-closes; ?ttl=N ends the session N seconds
// later; bad ttl and unknown ids are JSON:API errors that change nothing.
func TestForceCloseSession(t *testing.T) {
	svc, clk := newService(t, nil)
	h := newHandler(t, svc)
	ctx := t.Context()
	open := func() (*sessiond.Session, string) {
		t.Helper()
		sess, token, err := svc.Open(ctx, sessiond.OpenRequest{UserID: "u", ExpiresIn: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return sess, token
	}
	tokenWorks := func(token string) bool {
		_, err := svc.Authenticate(ctx, sessiond.Credentials{Token: token})
		return err == nil
	}

	sess, token := open()
	for _, path := range []string{"/v1/sessions/" + sess.ID, "/sessions/" + sess.ID} {
		if w := serve(t, h, request{method: http.MethodDelete, path: path}); w.Code != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", path, w.Code, w.Body)
		}
	}
	got, err := svc.Get(ctx, sess.ID)
	if err != nil || got.Active || got.CloseReason != sessiond.ReasonForced {
		t.Errorf("after DELETE: %+v, %v; want closed, forced", got, err)
	}
	if tokenWorks(token) {
		t.Error("the token of a force-closed session still works")
	}

	sess, token = open()
	if w := serve(t, h, request{method: http.MethodDelete, path: "/v1/sessions/" + sess.ID + "?ttl=30"}); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE ?ttl=30: %d %s", w.Code, w.Body)
	}
	got, _ = svc.Get(ctx, sess.ID)
	if !got.Active || !got.ExpireTime.Equal(epoch.Add(30*time.Second)) {
		t.Errorf("after ?ttl=30: active %v, expire_time %v; want active until %v", got.Active, got.ExpireTime, epoch.Add(30*time.Second))
	}
	clk.Add(29 * time.Second)
	if !tokenWorks(token) {
		t.Error("the token stopped working before its ttl")
	}
	clk.Add(2 * time.Second)
	if tokenWorks(token) {
		t.Error("the token still works after its ttl")
	}

	sess, token = open()
	for _, q := range []string{"?ttl=-1", "?ttl=x", "?ttl=1.5", "?ttl=86401", "?ttl=1&ttl=2", "?ttl="} {
		checkError(t, serve(t, h, request{method: http.MethodDelete, path: "/v1/sessions/" + sess.ID + q}), http.StatusBadRequest)
	}
	if !tokenWorks(token) {
		t.Error("a refused DELETE changed the session")
	}
	checkError(t, serve(t, h, request{method: http.MethodDelete, path: "/v1/sessions/0123456789abcdef0123456789abcdef"}), http.StatusNotFound)
	checkError(t, serve(t, h, request{method: http.MethodDelete, path: "/v1/sessions/" + sess.ID, noAuth: true}), http.StatusUnauthorized)
	if !tokenWorks(token) {
		t.Error("an unauthenticated DELETE changed the session")
	}
}
