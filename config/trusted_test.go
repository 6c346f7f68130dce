package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadTrustedProxies(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("trusted-proxies: [\"192.0.2.1\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"file", []string{"--config", file}, nil, []string{"192.0.2.1"}},
		{"env replaces file", []string{"--config", file}, map[string]string{"SESSIOND_TRUSTED_PROXIES": "10.0.0.0/8,::1"}, []string{"10.0.0.0/8", "::1"}},
		{"flags replace env", []string{"--trusted-proxies", "10.0.0.1", "--trusted-proxies=fd00::/8"},
			map[string]string{"SESSIOND_TRUSTED_PROXIES": "10.0.0.0/8"}, []string{"10.0.0.1", "fd00::/8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.TrustedProxies, tt.want) {
				t.Errorf("got %q, want %q", got.TrustedProxies, tt.want)
			}
		})
	}
	_, err := Load([]string{"--trusted-proxies", "10.0.0.0/8,proxy.example"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "trusted-proxies") || !strings.Contains(err.Error(), "proxy.example") {
		t.Errorf("got %v, want the bad entry refused", err)
	}
}
