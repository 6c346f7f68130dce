package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sessiond"
	"sessiond/admin"
	"sessiond/client"
	"sessiond/internal/clock"
	"sessiond/store/memory"
)

const (
	adminUser     = "admin"
	adminPassword = "s3cret-admin-password"
)

var epoch = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// newServer runs the real admin API over a memory store.
func newServer(t *testing.T) (*httptest.Server, *sessiond.Service) {
	t.Helper()
	srv, svc, _ := newServerClock(t)
	return srv, svc
}

// newServerClock is newServer that also returns the service's clock.
func newServerClock(t *testing.T) (*httptest.Server, *sessiond.Service, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(epoch)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{}, nil)
	h, err := admin.New(svc, admin.Options{Users: map[string]string{adminUser: adminPassword}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, svc, clk
}

func TestClientAPIKeys(t *testing.T) {
	ctx := context.Background()
	srv, svc := newServer(t)
	c := client.New(srv.URL+"/", adminUser, adminPassword) // a trailing slash is fine

	keys, err := c.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	if len(keys) != 0 {
		t.Fatalf("ListAPIKeys on an empty store: got %v, want none", keys)
	}

	k, err := c.CreateAPIKey(ctx, "billing")
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if k.ID == "" || k.Secret == "" || k.Name != "billing" || !k.Created.Equal(epoch) {
		t.Errorf("CreateAPIKey: got %+v, want an id, a secret, name billing, created %v", k, epoch)
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{APIKey: k.ID, Secret: k.Secret}); err != nil {
		t.Errorf("the created key does not authenticate: %v", err)
	}

	keys, err = c.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	if len(keys) != 1 || keys[0].ID != k.ID || keys[0].Name != "billing" || keys[0].Secret != "" {
		t.Errorf("ListAPIKeys: got %+v, want the one key without its secret", keys)
	}

	got, err := c.GetAPIKey(ctx, k.ID)
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	if got.ID != k.ID || got.Secret != "" || !got.Created.Equal(epoch) {
		t.Errorf("GetAPIKey: got %+v, want the key without its secret", got)
	}

	if err := c.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{APIKey: k.ID, Secret: k.Secret}); sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
		t.Errorf("the revoked key: got %v, want %s", err, sessiond.EUNAUTHORIZED)
	}
	err = c.RevokeAPIKey(ctx, k.ID)
	if !client.IsNotFound(err) {
		t.Errorf("revoking twice: got %v, want a 404 APIError", err)
	}
	if _, err := c.GetAPIKey(ctx, k.ID); !client.IsNotFound(err) {
		t.Errorf("GetAPIKey after revoke: got %v, want a 404 APIError", err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	srv, _ := newServer(t)
	tests := []struct {
		name       string
		password   string
		call       func(c *client.Client) error
		wantStatus int
		wantTitle  string
	}{
		{"wrong password", "wrong", func(c *client.Client) error { _, err := c.ListAPIKeys(ctx); return err }, http.StatusUnauthorized, "Unauthorized"},
		{"unknown key", adminPassword, func(c *client.Client) error { return c.RevokeAPIKey(ctx, "0000") }, http.StatusNotFound, "Not Found"},
		{"name too long", adminPassword, func(c *client.Client) error {
			_, err := c.CreateAPIKey(ctx, string(make([]byte, 300)))
			return err
		}, http.StatusBadRequest, "Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(client.New(srv.URL, adminUser, tt.password))
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("got %v (%T), want an *APIError", err, err)
			}
			if apiErr.Status != tt.wantStatus || apiErr.Title != tt.wantTitle || apiErr.Detail == "" {
				t.Errorf("got %+v, want status %d, title %q and a detail", apiErr, tt.wantStatus, tt.wantTitle)
			}
		})
	}
}

func TestClientNonJSONAPIError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := client.New(srv.URL, "a", "b").ListAPIKeys(context.Background())
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("got %v, want an *APIError", err)
	}
	if got, want := *apiErr, (client.APIError{Status: 502, Title: "Bad Gateway", Detail: "<html>bad gateway</html>"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestClientRefusesEmptyID(t *testing.T) {
	c := client.New("http://127.0.0.1:1", "a", "b") // never reached
	if err := c.RevokeAPIKey(context.Background(), ""); err == nil {
		t.Error("RevokeAPIKey(\"\"): got no error, want one")
	}
	if _, err := c.GetAPIKey(context.Background(), ""); err == nil {
		t.Error("GetAPIKey(\"\"): got no error, want one")
	}
}
