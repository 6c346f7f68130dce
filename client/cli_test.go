package client_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sessiond"
	"sessiond/client"
)

// cli runs `sessiond apikey args...` with the given environment.
func cli(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = client.RunAPIKey(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

// adminEnv is the environment that points the CLI at srv.
func adminEnv(url string) map[string]string {
	return map[string]string{"SESSIOND_ADMIN_URL": url, "SESSIOND_ADMIN_PASSWORD": adminPassword}
}

func TestCLICreateListRevoke(t *testing.T) {
	ctx := context.Background()
	srv, svc := newServer(t)
	env := adminEnv(srv.URL)

	code, out, errOut := cli(t, env, "create", "--name", "billing")
	if code != 0 {
		t.Fatalf("create: exit %d, stderr %q", code, errOut)
	}
	keys, err := svc.ListAPIKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys after create: got %v, %v, want one", keys, err)
	}
	id := keys[0].ID
	secret := field(t, out, "SECRET")
	for _, want := range []string{"ID       " + id, "NAME     billing", "CREATED  2026-11-22T10:00:00.000Z", "shown only this once"} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{APIKey: id, Secret: secret}); err != nil {
		t.Errorf("the printed secret does not authenticate: %v", err)
	}

	code, out, errOut = cli(t, env, "list")
	if code != 0 {
		t.Fatalf("list: exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "NAME") ||
		!strings.HasPrefix(lines[1], id+"  billing  2026-11-22T10:00:00.000Z") {
		t.Errorf("list output:\n%s\nwant a header and the key's row", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("list shows the secret:\n%s", out)
	}

	code, out, errOut = cli(t, env, "revoke", id)
	if code != 0 {
		t.Fatalf("revoke: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "Revoked API key "+id) {
		t.Errorf("revoke output: %q", out)
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{APIKey: id, Secret: secret}); sessiond.ErrorCode(err) != sessiond.EUNAUTHORIZED {
		t.Errorf("the revoked secret: got %v, want %s", err, sessiond.EUNAUTHORIZED)
	}

	code, out, _ = cli(t, env, "list")
	if code != 0 || strings.TrimSpace(out) != "No API keys." {
		t.Errorf("list after revoke: exit %d, output %q", code, out)
	}
}

// field returns the value of a "NAME  value" line of out.
func field(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("no %s line in:\n%s", name, out)
	return ""
}

func TestCLIJSON(t *testing.T) {
	ctx := context.Background()
	srv, svc := newServer(t)
	env := adminEnv(srv.URL)

	code, out, errOut := cli(t, env, "create", "--json", "--name=ci")
	if code != 0 {
		t.Fatalf("create: exit %d, stderr %q", code, errOut)
	}
	var created struct{ ID, Name, Secret, Created string }
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create --json output %q: %v", out, err)
	}
	if created.Name != "ci" || created.Created != "2026-11-22T10:00:00.000Z" {
		t.Errorf("create --json: got %+v", created)
	}
	if _, err := svc.Authenticate(ctx, sessiond.Credentials{APIKey: created.ID, Secret: created.Secret}); err != nil {
		t.Errorf("the printed secret does not authenticate: %v", err)
	}
	if !strings.Contains(errOut, "shown only this once") {
		t.Errorf("create --json: the once-only note should go to stderr, got %q", errOut)
	}

	code, out, errOut = cli(t, env, "list", "--json")
	if code != 0 {
		t.Fatalf("list: exit %d, stderr %q", code, errOut)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json output %q: %v", out, err)
	}
	if len(list) != 1 || list[0]["id"] != created.ID || list[0]["secret"] != nil {
		t.Errorf("list --json: got %v, want the key without its secret", list)
	}

	code, out, _ = cli(t, env, "--json", "revoke", created.ID)
	var revoked struct {
		ID      string
		Revoked bool
	}
	if err := json.Unmarshal([]byte(out), &revoked); code != 0 || err != nil || revoked.ID != created.ID || !revoked.Revoked {
		t.Errorf("revoke --json: exit %d, output %q (%v)", code, out, err)
	}

	code, out, _ = cli(t, env, "list", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("list --json when empty: exit %d, output %q, want []", code, out)
	}
}

func TestCLICredentials(t *testing.T) {
	srv, _ := newServer(t)
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, client.PasswordFile), []byte(adminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(wrongDir, client.PasswordFile), []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"password from env", map[string]string{"SESSIOND_ADMIN_PASSWORD": adminPassword}, nil, 0, ""},
		{"password flag", nil, []string{"--password", adminPassword}, 0, ""},
		{"flag beats env", map[string]string{"SESSIOND_ADMIN_PASSWORD": "wrong"}, []string{"--password", adminPassword}, 0, ""},
		{"env beats file", map[string]string{"SESSIOND_ADMIN_PASSWORD": adminPassword, "SESSIOND_DATA_DIR": wrongDir}, nil, 0, ""},
		{"password file via --data-dir", nil, []string{"--data-dir", dataDir}, 0, ""},
		{"password file via env", map[string]string{"SESSIOND_DATA_DIR": dataDir}, nil, 0, ""},
		{"user from env", map[string]string{"SESSIOND_ADMIN_USER": "root", "SESSIOND_ADMIN_PASSWORD": adminPassword}, nil, 1, "401 Unauthorized"},
		{"wrong password", map[string]string{"SESSIOND_ADMIN_PASSWORD": "wrong"}, nil, 1, "check --user and --password"},
		{"no password anywhere", map[string]string{"SESSIOND_DATA_DIR": filepath.Join(t.TempDir(), "none")}, nil, 2, "no admin password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"SESSIOND_ADMIN_URL": srv.URL}
			for k, v := range tt.env {
				env[k] = v
			}
			code, _, errOut := cli(t, env, append([]string{"list"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit: got %d, want %d; stderr %q", code, tt.wantCode, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errOut, tt.wantErr)
			}
		})
	}
}

func TestCLIUsage(t *testing.T) {
	srv, svc := newServer(t)
	env := adminEnv(srv.URL)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"help", []string{"--help"}, 0, "Usage: sessiond apikey", ""},
		{"help command", []string{"help"}, 0, "Usage: sessiond apikey", ""},
		{"help after command", []string{"create", "-h"}, 0, "Usage: sessiond apikey", ""},
		{"no command", nil, 2, "", "a command is required"},
		{"unknown command", []string{"rotate"}, 2, "", `unknown command "rotate"`},
		{"unknown flag", []string{"list", "--verbose"}, 2, "", "flag provided but not defined: -verbose"},
		{"flag without value", []string{"create", "--name"}, 2, "", "flag needs an argument"},
		{"revoke without id", []string{"revoke"}, 2, "", "exactly one API key id"},
		{"revoke with two ids", []string{"revoke", "a", "b"}, 2, "", "exactly one API key id"},
		{"list with an argument", []string{"list", "all"}, 2, "", "takes no arguments"},
		{"bad admin URL", []string{"list", "--admin", "127.0.0.1:8989"}, 2, "", "is not an http:// or https:// URL"},
		{"unknown key", []string{"revoke", "0000"}, 1, "", "404 Not Found"},
		{"unreachable daemon", []string{"list", "--admin", "http://127.0.0.1:1"}, 1, "", "cannot reach the admin API at http://127.0.0.1:1"},
		{"name too long", []string{"create", "--name", strings.Repeat("n", 201)}, 1, "", "400 Bad Request: name is longer than 200 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, env, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit: got %d, want %d; stdout %q, stderr %q", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout: got %q, want it to contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errOut, tt.wantErr)
			}
			if code == 2 && !strings.Contains(errOut, "sessiond apikey --help") {
				t.Errorf("a usage error should point at --help: %q", errOut)
			}
		})
	}
	if keys, _ := svc.ListAPIKeys(context.Background()); len(keys) != 0 {
		t.Errorf("keys after failed commands: got %d, want 0", len(keys))
	}
}

func TestCLIFlagPositions(t *testing.T) {
	srv, svc := newServer(t)
	tests := []struct {
		name string
		args []string
	}{
		{"flags before the command", []string{"--admin", srv.URL, "--password", adminPassword, "create", "--name", "a"}},
		{"flags after the command", []string{"create", "--name", "a", "--admin", srv.URL, "--password", adminPassword}},
		{"mixed", []string{"--admin", srv.URL, "create", "--password=" + adminPassword, "--name=a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := svc.ListAPIKeys(context.Background())
			code, _, errOut := cli(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			after, _ := svc.ListAPIKeys(context.Background())
			if len(after) != len(before)+1 {
				t.Errorf("keys: got %d, want %d", len(after), len(before)+1)
			}
		})
	}

	// revoke ID --json: a flag after the positional id.
	k, _, err := svc.CreateAPIKey(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, adminEnv(srv.URL), "revoke", k.ID, "--json")
	if code != 0 || !strings.Contains(out, `"revoked": true`) {
		t.Errorf("revoke ID --json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// After "--" everything is an argument, even what looks like a flag.
	code, _, errOut = cli(t, adminEnv(srv.URL), "revoke", "--", "--json")
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("revoke -- --json: exit %d, stderr %q, want a 404 for the id \"--json\"", code, errOut)
	}
}
