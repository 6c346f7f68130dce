package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// environ is m in os.Environ's form.
func environ(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func TestLoadZeroFlagsIsDefault(t *testing.T) {
	got, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLoadLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sessiond.yaml")
	yml := "listen: 127.0.0.1:1111\nadmin-listen: 127.0.0.1:2222\nidle-timeout: 2h\ndata-dir: /from/yaml\n" +
		"gateway:\n  - /a/=http://127.0.0.1:9000\nadmin-users:\n  ops: pw\nbody-limit: 2048\n"
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{
		"SESSIOND_CONFIG":       file,
		"SESSIOND_ADMIN_LISTEN": "127.0.0.1:3333", // env beats YAML
		"SESSIOND_IDLE_TIMEOUT": "3h",
		"SESSIOND_QUOTA_BYTES":  "5MiB",
	})
	got, err := Load([]string{"--idle-timeout", "4h", "--gateway", "/b/=http://127.0.0.1:9001", "--gateway=/c/=http://127.0.0.1:9002"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen from yaml", got.Listen, "127.0.0.1:1111"},
		{"admin-listen from env", got.AdminListen, "127.0.0.1:3333"},
		{"idle-timeout from flag", got.IdleTimeout, 4 * time.Hour},
		{"data-dir from yaml", got.DataDir, "/from/yaml"},
		{"gateway from flags replaces yaml", got.Gateway, []string{"/b/=http://127.0.0.1:9001", "/c/=http://127.0.0.1:9002"}},
		{"admin users from yaml", got.AdminUsers, map[string]string{"ops": "pw"}},
		{"body-limit from yaml", got.BodyLimit, int64(2048)},
		{"quota-bytes from env", got.QuotaBytes, int64(5 << 20)},
		{"untouched default", got.Retention, 7 * 24 * time.Hour},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadEnvGatewayList(t *testing.T) {
	got, err := Load(nil, env(map[string]string{"SESSIOND_GATEWAY": "/a/=http://h:1, /b/=http://h:2"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/a/=http://h:1", "/b/=http://h:2"}; !reflect.DeepEqual(got.Gateway, want) {
		t.Fatalf("got %v, want %v", got.Gateway, want)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("listen: 127.0.0.1:1\nnot-a-key: 1\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"--nope"}, nil, "not defined"},
		{"bad duration flag", []string{"--idle-timeout", "soon"}, nil, "invalid value"},
		{"bad duration env", nil, map[string]string{"SESSIOND_IDLE_TIMEOUT": "soon"}, "SESSIOND_IDLE_TIMEOUT"},
		{"negative timeout", []string{"--idle-timeout", "-1s"}, nil, "idle-timeout"},
		{"bad listen", []string{"--listen", "nowhere"}, nil, "listen"},
		{"bad store", []string{"--store", "mysql://x"}, nil, "store"},
		{"bad gateway", []string{"--gateway", "api=http://x"}, nil, "gateway"},
		{"unknown yaml key", []string{"--config", unknown}, nil, "not-a-key"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, nil, "config file"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
		{"bad size", []string{"--body-limit", "lots"}, nil, "invalid size"},
		{"redis without a host", []string{"--store", "redis:///0"}, nil, "not a Redis URL"},
		{"postgres without a host", []string{"--store", "postgres:///test"}, nil, "not a PostgreSQL URL"},
		{"password not echoed", []string{"--store", "postgres://u:hunter2@/test"}, nil, "u:xxxxx@"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.args, env(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{{"1024", 1024}, {"1KiB", 1024}, {"2MiB", 2 << 20}, {"1 GiB", 1 << 30}, {"10MB", 10_000_000}, {"5b", 5},
		{" 64kib ", 64 << 10}, {"0", 0}, {"8191PiB", 0}, {"8388607TiB", 8388607 << 40}}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if tt.want == 0 && tt.in != "0" {
			if err == nil {
				t.Errorf("ParseBytes(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"-1", "+1", "1e6", "10 20", "1.5MiB", "lots", "", "MiB", "1 MiB extra",
		"9223372036854775808", "8388608TiB", "99999999999999999999"} {
		if got, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, got)
		}
	}
}

// TestLoadSizesEverywhere: a size with a unit reads the same from YAML,
// the environment and flags.
func TestLoadSizesEverywhere(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(file, []byte("body-limit: 1MiB\nquota-bytes: 5 MB\nmax-take: 20\nidle-timeout: 90m\n"), 0o600)
	got, err := Load([]string{"--config", file}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got.BodyLimit != 1<<20 || got.QuotaBytes != 5_000_000 || got.MaxTake != 20 || got.IdleTimeout != 90*time.Minute {
		t.Fatalf("from YAML: body-limit %d, quota-bytes %d, max-take %d, idle-timeout %s", got.BodyLimit, got.QuotaBytes, got.MaxTake, got.IdleTimeout)
	}
	got, err = Load(nil, env(map[string]string{"SESSIOND_BODY_LIMIT": "2KiB"}), io.Discard)
	if err != nil || got.BodyLimit != 2048 {
		t.Fatalf("from env: %d, %v", got.BodyLimit, err)
	}
	for _, bad := range []string{"1e6", "10 20", "9223372036854775808"} {
		os.WriteFile(file, []byte("body-limit: "+bad+"\n"), 0o600)
		if _, err := Load([]string{"--config", file}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "body-limit") {
			t.Errorf("YAML body-limit %s: got %v, want an error naming body-limit", bad, err)
		}
	}
}

// TestLoadReportsEveryProblem: problems in the file, the environment, the
// flags and the values are all reported by one Load.
func TestLoadReportsEveryProblem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	yml := "max-take: many\nnot-a-key: 1\nbody-limit: 1e6\nadmin-users: [a, b]\nsweep-interval: -1s\n"
	os.WriteFile(file, []byte(yml), 0o600)
	e := environ(map[string]string{
		"SESSIOND_IDLE_TIMEOUT":   "soon",
		"SESSIOND_IDLE_TIMOUT":    "1h", // misspelt
		"SESSIOND_ADMIN_PASSWORD": "pw", // read by the daemon, not a flag
		"SESSIOND_ADMIN_URL":      "http://127.0.0.1:8989",
		"SESSIOND_TEST_DAEMON":    "1",
		"HOME":                    "/root",
	})
	_, err := LoadEnviron([]string{"--config", file, "--quota-files", "x", "--gateway", "/a/=ftp://h", "--listen", "nowhere"}, e)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`line 1: max-take: invalid value "many" (want a whole number)`,
		`line 2: unknown key "not-a-key"`,
		`body-limit: invalid size "1e6"`,
		`line 4: cannot unmarshal !!seq into map[string]string`,
		"sweep-interval: must be positive",
		`SESSIOND_IDLE_TIMEOUT: invalid value "soon" (want a duration`,
		"SESSIOND_IDLE_TIMOUT: unknown variable",
		`--quota-files: invalid value "x"`,
		"http:// or https://",
		`listen: "nowhere" is not host:port`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	// A bad value is reported once, not again as the zero value it left.
	for _, notWant := range []string{"SESSIOND_ADMIN_PASSWORD", "SESSIOND_ADMIN_URL", "SESSIOND_TEST_DAEMON", "HOME",
		"max-take: must be positive", "idle-timeout: must be positive"} {
		if strings.Contains(msg, notWant) {
			t.Errorf("%s reported:\n%s", notWant, msg)
		}
	}
}

func TestLoadUsageErrors(t *testing.T) {
	if _, err := Load([]string{"--help"}, env(nil), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: got %v, want flag.ErrHelp", err)
	}
	var ue *UsageError
	for _, args := range [][]string{{"--nope"}, {"--listen"}, {"extra"}} {
		if _, err := Load(args, env(nil), io.Discard); !errors.As(err, &ue) {
			t.Errorf("%q: got %v, want a UsageError", args, err)
		}
	}
}

func TestLoadTrustedAndTLSSettings(t *testing.T) {
	got, err := Load([]string{"--internal-listen", "127.0.0.1:0", "--allow-public-trusted-apis", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got.InternalListen != "127.0.0.1:0" || !got.AllowPublicTrustedAPIs || got.TLSCert != "c.pem" || got.TLSKey != "k.pem" {
		t.Fatalf("got %+v", got)
	}
	if _, err := Load([]string{"--admin-tls-cert", "c.pem"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "give both") {
		t.Errorf("cert without key: got %v", err)
	}
}

// A shared store's URL (PostgreSQL, Redis, Redis Cluster) is accepted in every form:
// flag, environment, YAML.
func TestLoadSharedStoreURLs(t *testing.T) {
	for _, u := range []string{"postgres://sessiond:pw@db.example:5432/sessions?sslmode=disable",
		"redis://:pw@cache.example:6379/2", "rediss://u:pw@cache.example:6380/0", "redis+cluster://:pw@h1:7000,h2:7001,h3:7002"} {
		checkStoreURL(t, u)
	}
}

func checkStoreURL(t *testing.T, u string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("store: "+u+"\n"), 0o600)
	for name, tt := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"flag": {args: []string{"--store", u}},
		"env":  {env: map[string]string{"SESSIOND_STORE": u}},
		"yaml": {args: []string{"--config", file}},
	} {
		c, err := Load(tt.args, env(tt.env), io.Discard)
		if err != nil || c.Store != u {
			t.Errorf("%s: store %q, %v; want %q", name, c.Store, err, u)
		}
	}
	if got := Redact(u); strings.Contains(got, ":pw@") {
		t.Errorf("Redact(%q) = %q shows the password", u, got)
	}
}
