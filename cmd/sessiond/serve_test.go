package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessiond/internal/testcert"
)

// runCLI runs the command line in-process and returns its exit code and
// output.
func runCLI(t *testing.T, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, environ)
	return code, stdout.String(), stderr.String()
}

func TestCLIHelpAndUsageErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring of stdout; "" means stdout must be empty
		stderr     string // substring of stderr; "" means stderr must be empty
		stderrMax  int    // most lines on stderr
		notInHelps bool   // serve's help names every store engine
	}{
		{"serve --help", []string{"serve", "--help"}, 0, "Usage: sessiond serve", "", 0, true},
		{"serve -h", []string{"serve", "-h"}, 0, "--internal-listen", "", 0, true},
		{"--help", []string{"--help"}, 0, "usage: sessiond", "", 0, true},
		{"apikey --help", []string{"apikey", "--help"}, 0, "Usage: sessiond apikey", "", 0, true},
		{"version --help", []string{"version", "--help"}, 0, "Usage: sessiond version", "", 0, false},
		{"serve bad flag", []string{"serve", "--nope"}, 2, "", "sessiond serve: flag provided but not defined: -nope\nRun 'sessiond serve --help' for usage.\n", 2, false},
		{"serve flag without value", []string{"serve", "--listen"}, 2, "", "flag needs an argument: -listen", 2, false},
		{"serve stray argument", []string{"serve", "now"}, 2, "", `unexpected argument "now"`, 2, false},
		{"serve bad values", []string{"serve", "--idle-timeout", "soon", "--body-limit", "1e6"}, 2, "",
			"sessiond serve: --idle-timeout: invalid value \"soon\" (want a duration such as 90s, 15m or 24h)\nsessiond serve: --body-limit: invalid size \"1e6\"", 3, false},
		{"apikey bad flag", []string{"apikey", "--nope"}, 2, "", "Run 'sessiond apikey --help' for usage.", 2, false},
		{"version bad flag", []string{"version", "--nope"}, 2, "", "Run 'sessiond version --help' for usage.", 2, false},
		{"unknown command", []string{"frobnicate"}, 2, "", "Run 'sessiond --help' for usage.", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if (tt.stdout == "") != (stdout == "") || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout %q, want it to hold %q", stdout, tt.stdout)
			}
			if (tt.stderr == "") != (stderr == "") || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to hold %q", stderr, tt.stderr)
			}
			if n := strings.Count(stderr, "\n"); n > tt.stderrMax {
				t.Errorf("%d lines on stderr, want at most %d:\n%s", n, tt.stderrMax, stderr)
			}
			if tt.notInHelps && tt.args[0] == "serve" {
				for _, engine := range []string{"postgres://", "redis://", "redis+cluster://"} {
					if !strings.Contains(stdout, engine) {
						t.Errorf("serve's help does not say how to name a %s store:\n%s", engine, stdout)
					}
				}
			}
		})
	}
}

func TestVersionJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, nil, "version", "--json")
	var v struct{ Version, Go string }
	if err := json.Unmarshal([]byte(stdout), &v); code != 0 || err != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go") {
		t.Fatalf("exit %d, stdout %q (%v), stderr %q", code, stdout, err, stderr)
	}
}

// TestServeReportsEveryProblem: problems of the file, the environment and
// the flags come out together, before anything is created.
func TestServeReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte("max-take: many\nbody-limit: 1MiB\ngateway: [\"/a/=ftp://x\"]\n"), 0o600)
	dataDir := filepath.Join(dir, "data")
	code, stdout, stderr := runCLI(t, []string{"SESSIOND_IDLE_TIMOUT=1h", "SESSIOND_ADMIN_PASSWORD=x", "PATH=/bin"},
		"serve", "--config", file, "--data-dir", dataDir, "--quota-files", "some")
	if code != 2 || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{"max-take", "SESSIOND_IDLE_TIMOUT: unknown variable", "--quota-files", "http:// or https://"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "body-limit") || strings.Contains(stderr, "SESSIOND_ADMIN_PASSWORD") {
		t.Errorf("a valid setting reported:\n%s", stderr)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data directory created: %v", err)
	}
}

// TestServeFailedStartCreatesNothing: a busy port or a refused exposure of
// the trusted APIs stops the start before the data directory or the admin
// password exist.
func TestServeFailedStartCreatesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name, listen, want string
	}{
		{"busy port", busy.Addr().String(), "address already in use"},
		{"trusted APIs on every interface", "0.0.0.0:0", "--internal-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			code, stdout, stderr := runCLI(t, nil, "serve", "--data-dir", dataDir, "--listen", tt.listen, "--admin-listen", "127.0.0.1:0")
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q: a password was printed", stdout)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("data directory created: %v", err)
			}
		})
	}
}

// waitLog waits until the child's log holds s.
func (d *child) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", s, d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSIGHUPReloads runs sessiond with a config file, changes the file's
// gateway route and log level and sends SIGHUP: the process stays up and
// the new route serves. A broken file then keeps the running configuration,
// with every problem logged.
func TestSIGHUPReloads(t *testing.T) {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "A") }))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "B") }))
	defer b.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "sessiond.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gateway:\n  - /api/=" + a.URL + "\nlog-level: info\n")
	crt, key := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	first := testcert.Write(t, crt, key, "first")
	d := startDaemon(t, filepath.Join(dir, "data"), "--config", file, "--admin-tls-cert", crt, "--admin-tls-key", key)
	admin := strings.Replace(d.admin, "http://", "https://", 1) + "/health/live"
	if _, got := testcert.Get(t, admin, first); got.Subject.CommonName != "first" {
		t.Fatalf("admin certificate %q, want first", got.Subject.CommonName)
	}

	var s struct {
		AccessToken string `json:"access_token"`
	}
	if code, err := command(context.Background(), http.DefaultClient, d.public, "open_session", map[string]any{"user_id": "u"}, &s); err != nil || code != 200 {
		t.Fatalf("open: %d %v", code, err)
	}
	through := func() string {
		t.Helper()
		req, _ := http.NewRequest("GET", d.public+"/api/x", nil)
		req.Header.Set("Xdata-Session-Token", s.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("gateway: %v\n%s", err, d.log())
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if got := through(); got != "A" {
		t.Fatalf("before reload: %q", got)
	}

	write("gateway:\n  - /api/=" + b.URL + "\nlog-level: debug\n")
	second := testcert.Write(t, crt, key, "second")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, `"msg":"configuration reloaded"`)
	if got := through(); got != "B" {
		t.Errorf("after reload: %q, want B", got)
	}
	if _, got := testcert.Get(t, admin, second); got.Subject.CommonName != "second" {
		t.Errorf("admin certificate after SIGHUP %q, want second", got.Subject.CommonName)
	}
	if !strings.Contains(d.log(), `"changed":["gateway","log-level"]`) {
		t.Errorf("changes not logged:\n%s", d.log())
	}

	write("gateway:\n  - /api/=ftp://nowhere\nmax-take: many\nno-such-key: 1\n")
	os.WriteFile(crt, []byte("broken"), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "keeping the old TLS certificate")
	d.waitLog(t, "no-such-key")
	for _, want := range []string{"max-take", "http:// or https://"} {
		if !strings.Contains(d.log(), want) {
			t.Errorf("problem %q not logged:\n%s", want, d.log())
		}
	}
	if got := through(); got != "B" {
		t.Errorf("after a broken file: %q, want B kept", got)
	}
	if _, got := testcert.Get(t, admin, second); got.Subject.CommonName != "second" {
		t.Errorf("admin certificate after a broken file %q, want second kept", got.Subject.CommonName)
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, d.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}
