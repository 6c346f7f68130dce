package admin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sessiond/admin"
)

func TestLoadOrCreatePasswordGeneratesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // not yet created
	var out strings.Builder
	pw, err := admin.LoadOrCreatePassword(dir, "", &out)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	if len(pw) < 22 {
		t.Errorf("generated password %q is shorter than 128 bits of base32", pw)
	}
	if got := strings.Count(out.String(), pw); got != 1 {
		t.Errorf("the password was printed %d times, want once: %q", got, out.String())
	}

	path := filepath.Join(dir, admin.PasswordFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("file mode: got %v, want %v", got, want)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != pw {
		t.Errorf("file content: got %q, want %q", got, pw)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data directory holds %d entries, want only %s (no temporary file left)", len(entries), admin.PasswordFile)
	}

	// The second start reuses it and prints nothing.
	out.Reset()
	again, err := admin.LoadOrCreatePassword(dir, "", &out)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if again != pw {
		t.Errorf("second start: got %q, want the stored %q", again, pw)
	}
	if out.Len() != 0 {
		t.Errorf("second start printed %q, want nothing", out.String())
	}
}

func TestLoadOrCreatePassword(t *testing.T) {
	tests := []struct {
		name    string
		file    *string // content of admin-password, nil for none
		env     string
		noDir   bool
		want    string
		wantErr bool
	}{
		{name: "env wins over nothing", env: "from-env", want: "from-env"},
		{name: "env wins over the file", file: ptr("from-file\n"), env: "from-env", want: "from-env"},
		{name: "file is trimmed", file: ptr("  from-file \r\n"), want: "from-file"},
		{name: "empty file", file: ptr(" \n"), wantErr: true},
		{name: "env without a data dir", env: "from-env", noDir: true, want: "from-env"},
		{name: "nothing and no data dir", noDir: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, admin.PasswordFile)
			if tt.file != nil {
				if err := os.WriteFile(path, []byte(*tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.noDir {
				dir = ""
			}
			var out strings.Builder
			got, err := admin.LoadOrCreatePassword(dir, tt.env, &out)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("password: got %q, want %q", got, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q, want nothing", out.String())
			}
			if _, err := os.Stat(path); tt.file == nil && !os.IsNotExist(err) {
				t.Errorf("a password file was written although the env set one (stat: %v)", err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
