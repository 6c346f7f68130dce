package client_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/client"
	"sessiond/internal/clock"
)

// sessionsCLI runs `sessiond sessions args...` with the given environment.
func sessionsCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = client.RunSessions(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

// openSessions opens sessions for the users, a second apart, and returns
// their ids and tokens as the listing orders them (newest first).
func openSessions(t *testing.T, svc *sessiond.Service, clk *clock.Fake, users ...string) (ids []string, tokens map[string]string) {
	t.Helper()
	tokens = map[string]string{}
	for _, u := range users {
		s, token, err := svc.Open(context.Background(), sessiond.OpenRequest{UserID: u, Client: "web", Address: "10.1.1.1", Data: json.RawMessage(`{"n":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		tokens[s.ID] = token
		clk.Add(time.Second)
	}
	page, err := svc.List(context.Background(), sessiond.Filter{}, sessiond.Paging{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range page.Data {
		ids = append(ids, s.ID)
	}
	return ids, tokens
}

func TestCLISessions(t *testing.T) {
	ctx := context.Background()
	srv, svc, clk := newServerClock(t)
	env := adminEnv(srv.URL)
	ids, tokens := openSessions(t, svc, clk, "u1", "u2", "u1")
	svc.RecordConnection(ids[0], "/api/", 5, 7, false)
	works := func(id string) bool {
		_, err := svc.Authenticate(ctx, sessiond.Credentials{Token: tokens[id]})
		return err == nil
	}

	code, out, errOut := sessionsCLI(t, env, "list")
	if code != 0 {
		t.Fatalf("list: exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "SERVICES") ||
		!strings.HasPrefix(lines[1], ids[0]+"  ") || !strings.Contains(lines[1], "/api/") || !strings.Contains(lines[1], "active") ||
		lines[5] != "Sessions 1-3 of 3 (page 0)." {
		t.Errorf("list output:\n%s", out)
	}

	code, out, _ = sessionsCLI(t, env, "list", "--user", "u1", "--page-size", "1", "--page", "1")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(lines[1], " u1 ") || lines[3] != "Sessions 2-2 of 2 (page 1)." {
		t.Errorf("list --user u1 page 1 of 1-session pages: exit %d\n%s", code, out)
	}
	code, out, _ = sessionsCLI(t, env, "list", "--page-size=1")
	if code != 0 || !strings.HasSuffix(out, "Sessions 1-1 of 3 (page 0). Next: --page 1.\n") {
		t.Errorf("list --page-size=1: exit %d\n%s", code, out)
	}
	code, out, _ = sessionsCLI(t, env, "list", "--user", "nobody")
	if code != 0 || out != "No sessions.\n" {
		t.Errorf("list of none: exit %d %q", code, out)
	}
	code, out, _ = sessionsCLI(t, env, "list", "--page", "5")
	if code != 0 || out != "No sessions on page 5: 3 in all.\n" {
		t.Errorf("list beyond the end: exit %d %q", code, out)
	}

	code, out, _ = sessionsCLI(t, env, "list", "--json", "--client", "web", "--remote", "10.1.1.1", "--state", "active", "--api-key", "")
	var listed struct {
		Total, Page int
		PageSize    int `json:"page_size"`
		Sessions    []map[string]any
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil || code != 0 || len(listed.Sessions) != 3 || listed.Sessions[0]["id"] != ids[0] ||
		listed.Total != 3 || listed.PageSize != 100 {
		t.Errorf("list --json: exit %d, %v\n%s", code, err, out)
	}

	code, out, _ = sessionsCLI(t, env, "show", ids[0])
	for _, want := range []string{"ID            " + ids[0], "STATE         active", "USER          u1", "DATA          {\"n\":1}",
		"SERVICES      /api/", "SERVICE  STATE   REQUESTS  READS  WRITES  ERRORS  LAST USED", "/api/    active  1         5      7       0       2026-11-22T10:00:03.000Z"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show lacks %q: exit %d\n%s", want, code, out)
		}
	}
	code, out, _ = sessionsCLI(t, env, "show", "--json", ids[1])
	var shown map[string]any
	if err := json.Unmarshal([]byte(out), &shown); err != nil || code != 0 || shown["id"] != ids[1] || shown["state"] != "active" {
		t.Errorf("show --json: exit %d, %v\n%s", code, err, out)
	}

	code, out, _ = sessionsCLI(t, env, "close", ids[0])
	if code != 0 || out != "Closed session "+ids[0]+": its token no longer works.\n" || works(ids[0]) {
		t.Errorf("close: exit %d %q, token works %v", code, out, works(ids[0]))
	}
	code, out, _ = sessionsCLI(t, env, "close", "--ttl", "30", ids[1])
	if s, _ := svc.Get(ctx, ids[1]); code != 0 || out != "Session "+ids[1]+" closes in 30 seconds.\n" || !s.ExpireTime.Equal(epoch.Add(33*time.Second)) {
		t.Errorf("close --ttl 30: exit %d %q, expires %v", code, out, s.ExpireTime)
	}
	code, out, _ = sessionsCLI(t, env, "close", "--user", "u1")
	if code != 0 || out != "Closed 1 session.\n" {
		t.Errorf("close --user u1: exit %d %q", code, out)
	}
	code, out, _ = sessionsCLI(t, env, "close", "--json", "--state", "active")
	if code != 0 || strings.Join(strings.Fields(out), "") != `{"closed":1}` {
		t.Errorf("close --json --state active: exit %d %q", code, out)
	}
	for _, id := range ids {
		if works(id) {
			t.Errorf("session %s still works after closing all", id)
		}
	}
	code, out, _ = sessionsCLI(t, env, "close", "--json", ids[2])
	if code != 0 || strings.Join(strings.Fields(out), "") != `{"closed":true,"id":"`+ids[2]+`","ttl":0}` {
		t.Errorf("close --json of a closed session: exit %d %q", code, out)
	}
}

func TestCLISessionsErrors(t *testing.T) {
	srv, svc, clk := newServerClock(t)
	env := adminEnv(srv.URL)
	ids, _ := openSessions(t, svc, clk, "u1")
	unknown := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", nil, 2, "a command is required"},
		{"unknown command", []string{"kill"}, 2, `unknown command "kill"`},
		{"show without id", []string{"show"}, 2, "exactly one session id"},
		{"show two ids", []string{"show", "a", "b"}, 2, "exactly one session id"},
		{"show unknown", []string{"show", unknown}, 1, "404 Not Found"},
		{"close unknown", []string{"close", unknown}, 1, "404 Not Found"},
		{"close without id or filter", []string{"close"}, 2, "at least one filter"},
		{"close with id and filter", []string{"close", ids[0], "--user", "u1"}, 2, "not both"},
		{"close many with ttl", []string{"close", "--user", "u1", "--ttl", "5"}, 2, "--ttl applies to one session"},
		{"close ttl too long", []string{"close", ids[0], "--ttl", "86401"}, 2, "--ttl must be"},
		{"close ttl not a number", []string{"close", ids[0], "--ttl", "x"}, 2, "-ttl: parse error"},
		{"list with argument", []string{"list", "u1"}, 2, "list takes no arguments"},
		{"list negative page", []string{"list", "--page", "-1"}, 2, "--page counts from 0"},
		{"list page size too big", []string{"list", "--page-size", "1001"}, 2, "--page-size"},
		{"list bad state", []string{"list", "--state", "open"}, 2, "--state"},
		{"list unknown flag", []string{"list", "--sort", "id"}, 2, "-sort"},
		{"wrong password", []string{"list", "--password", "wrong"}, 1, "--admin-user"},
		{"wrong admin user", []string{"list", "--admin-user", "root"}, 1, "401 Unauthorized"},
		{"unreachable", []string{"list", "--admin", "http://127.0.0.1:1"}, 1, "cannot reach the admin API"},
		{"bad admin URL", []string{"list", "--admin", "ftp://x"}, 2, "--admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := sessionsCLI(t, env, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q (stdout %q)", code, errOut, tt.code, tt.want, out)
			}
		})
	}
	if s, _ := svc.Get(context.Background(), ids[0]); !s.Active {
		t.Error("a refused command closed the session")
	}
	code, out, _ := sessionsCLI(t, env, "--help")
	if code != 0 || !strings.Contains(out, "Usage: sessiond sessions") {
		t.Errorf("--help: exit %d %q", code, out)
	}
	// Flags before the command carry over, and the environment's user.
	code, out, errOut := sessionsCLI(t, map[string]string{"SESSIOND_ADMIN_USER": "admin", "SESSIOND_ADMIN_PASSWORD": adminPassword}, "--admin", srv.URL, "--json", "show", ids[0])
	if code != 0 || !strings.Contains(out, `"id": "`+ids[0]+`"`) {
		t.Errorf("flags before the command: exit %d %q %q", code, out, errOut)
	}
}

func TestClientSessions(t *testing.T) {
	ctx := context.Background()
	srv, svc, clk := newServerClock(t)
	c := client.New(srv.URL, adminUser, adminPassword)
	ids, _ := openSessions(t, svc, clk, "b", "a")
	p, err := c.ListSessions(ctx, client.SessionFilter{User: "b"}, 0, 0)
	if err != nil || p.Total != 1 || len(p.Sessions) != 1 || p.Size != 100 || p.HasNext || p.Sessions[0].User != "b" {
		t.Fatalf("ListSessions: %+v, %v", p, err)
	}
	s, err := c.GetSession(ctx, ids[0])
	if err != nil || s.ID != ids[0] || s.State != "active" || !s.Connected.Equal(epoch.Add(time.Second)) || s.Expires != nil || string(s.Data) != `{"n":1}` {
		t.Errorf("GetSession: %+v, %v", s, err)
	}
	if _, err := c.GetSession(ctx, "0123456789abcdef0123456789abcdef"); !client.IsNotFound(err) {
		t.Errorf("GetSession of an unknown id: %v", err)
	}
	if _, err := c.ListSessions(ctx, client.SessionFilter{State: "open"}, 0, 0); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("ListSessions with a bad state: %v", err)
	}
	if _, err := c.CloseSessions(ctx, client.SessionFilter{}); err == nil {
		t.Error("CloseSessions without a filter sent the request")
	}
	if n, err := c.CloseSessions(ctx, client.SessionFilter{APIKeySet: true}); err != nil || n != 2 {
		t.Errorf("CloseSessions of sessions without a key: %d, %v", n, err)
	}
	if err := c.CloseSession(ctx, "", 0); err == nil {
		t.Error("CloseSession with no id sent the request")
	}
}
