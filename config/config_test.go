package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

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
	}{{"1024", 1024}, {"1KiB", 1024}, {"2MiB", 2 << 20}, {"1 GiB", 1 << 30}, {"10MB", 10_000_000}, {"5b", 5}}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseBytes("-1"); err == nil {
		t.Error("ParseBytes(-1): want error")
	}
}
