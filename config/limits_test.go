package config

import (
	"io"
	"strings"
	"testing"
)

func TestSessionLimits(t *testing.T) {
	d := Default()
	if d.DataLimit != 64<<10 || d.MaxUserSessions != 1000 {
		t.Errorf("defaults: data-limit %d, max-user-sessions %d; want 65536, 1000", d.DataLimit, d.MaxUserSessions)
	}
	got, err := Load([]string{"--data-limit", "1KiB", "--max-user-sessions", "5"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got.DataLimit != 1024 || got.MaxUserSessions != 5 {
		t.Errorf("from flags: data-limit %d, max-user-sessions %d; want 1024, 5", got.DataLimit, got.MaxUserSessions)
	}
	for _, args := range [][]string{{"--data-limit", "0"}, {"--max-user-sessions", "0"}} {
		if _, err := Load(args, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("Load(%v): err = %v, want one naming %s", args, err, args[0])
		}
	}
}
