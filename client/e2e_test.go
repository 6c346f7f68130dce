package client_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"sessiond"
	"sessiond/client"
	"sessiond/config"
	"sessiond/daemon"
	"sessiond/store/postgres/pgtest"
	"sessiond/store/redis/redistest"
)

// A whole daemon on each engine, driven by `sessiond sessions` and the
// client: the store's name at GET /v1/ (never its URL), listing with a
// filter and the gateway services, showing and closing in bulk.
func TestSessionsEndToEnd(t *testing.T) {
	for _, engine := range []string{"memory", "embedded", "postgres", "redis"} {
		t.Run(engine, func(t *testing.T) {
			cfg := config.Default()
			cfg.Store = engine
			switch engine {
			case "postgres":
				cfg.Store = pgtest.Schema(t)
			case "redis":
				cfg.Store = redistest.PrefixURL(t, redistest.BaseURL())
			}
			cfg.DataDir = t.TempDir()
			cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
			m := &daemon.Main{Config: cfg, Stdout: io.Discard, AdminPassword: adminPassword}
			if err := m.Open(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			ctx := context.Background()
			var ids []string
			for _, u := range []string{"ann", "bob", "ann"} {
				s, _, err := m.Service.Open(ctx, sessiond.OpenRequest{UserID: u, Client: "web"})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, s.ID)
			}
			m.Service.RecordConnection(ids[1], "/api/", 3, 4, false)
			env := map[string]string{"SESSIOND_ADMIN_URL": "http://" + m.AdminAddr(), "SESSIOND_ADMIN_PASSWORD": adminPassword}

			code, out, errOut := sessionsCLI(t, env, "list", "--json", "--user", "ann")
			var listed struct {
				Total    int
				Sessions []struct{ ID, User string }
			}
			if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || listed.Total != 2 || len(listed.Sessions) != 2 || listed.Sessions[0].User != "ann" {
				t.Fatalf("list --user ann: exit %d %v %q %q", code, err, out, errOut)
			}
			code, out, errOut = sessionsCLI(t, env, "show", ids[1])
			if code != 0 || !strings.Contains(out, "SERVICES      /api/") || !strings.Contains(out, "IO ACTIVITY   1") {
				t.Errorf("show: exit %d\n%s%s", code, out, errOut)
			}

			c := client.New("http://"+m.AdminAddr(), client.DefaultUser, adminPassword)
			inst, err := c.Instance(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if inst.Store != engine || inst.ActiveSessions != 3 || inst.Version == "" || inst.Started.IsZero() {
				t.Errorf("GET /v1/: %+v", inst)
			}

			code, out, errOut = sessionsCLI(t, env, "close", "--user", "ann")
			if code != 0 || out != "Closed 2 sessions.\n" {
				t.Fatalf("close --user ann: exit %d %q %q", code, out, errOut)
			}
			if p, err := c.ListSessions(ctx, client.SessionFilter{State: "active"}, 0, 0); err != nil || p.Total != 1 || p.Sessions[0].ID != ids[1] {
				t.Errorf("active after the bulk close: %+v %v", p, err)
			}
		})
	}
}
