package files

import (
	"path/filepath"
	"strings"
	"testing"

	"sessiond/sessiondir"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
		wantDir  bool
		wantErr  bool
	}{
		{"root", "", ".", true, false},
		{"file", "a.txt", "a.txt", false, false},
		{"nested", "a/b/c.txt", "a/b/c.txt", false, false},
		{"directory", "a/b/", "a/b", true, false},
		{"escaped space", "run%201/x", "run 1/x", false, false},
		{"escaped letters", "%61%62", "ab", false, false},
		{"utf-8", "caf%C3%A9", "café", false, false},
		{"plus stays", "a+b", "a+b", false, false},
		{"dots inside names", "a..b/.hidden/c.", "a..b/.hidden/c.", false, false},
		{"dot dot", "..", "", false, true},
		{"dot dot element", "a/../b", "", false, true},
		{"encoded dot dot", "%2e%2E", "", false, true},
		{"dot", ".", "", false, true},
		{"dot element", "a/./b", "", false, true},
		{"absolute", "/etc", "", false, true},
		{"encoded slash", "a%2fb", "", false, true},
		{"encoded backslash", "a%5Cb", "", false, true},
		{"backslash", `a\b`, "", false, true},
		{"NUL", "a%00", "", false, true},
		{"raw NUL", "a\x00", "", false, true},
		{"DEL", "a%7F", "", false, true},
		{"empty element", "a//b", "", false, true},
		{"bad escape", "%g0", "", false, true},
		{"short escape", "%4", "", false, true},
		{"bad UTF-8", "%C3", "", false, true},
		{"reserved", "a/" + sessiondir.TempPrefix + "1", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dir, err := cleanPath(tt.in)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("cleanPath(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && (got != tt.want || dir != tt.wantDir) {
				t.Errorf("cleanPath(%q): got %q dir=%v, want %q dir=%v", tt.in, got, dir, tt.want, tt.wantDir)
			}
		})
	}
}

// FuzzFilesPath checks that whatever a URL holds, cleanPath never panics
// and never accepts a path that could leave the session directory.
func FuzzFilesPath(f *testing.F) {
	for _, s := range []string{
		"", "a", "a/b/", "../x", "%2e%2e/x", "%2E%2e%2F", "a%2Fb", "/etc/passwd", "a%00b",
		`a\b`, "a//b", "./a", "%", "%zz", "caf%C3%A9", "a/%2e%2e/%2e%2e", ".%2e", "%2e.",
	} {
		f.Add(s)
	}
	const root = "/srv/sessiond/sessions/0123456789abcdef0123456789abcdef"
	f.Fuzz(func(t *testing.T, escaped string) {
		rel, dir, err := cleanPath(escaped)
		if err != nil {
			if rel != "" {
				t.Fatalf("cleanPath(%q): error %v with a path %q", escaped, err, rel)
			}
			return
		}
		if rel == "." {
			if !dir {
				t.Fatalf("cleanPath(%q): the root must be a directory", escaped)
			}
			return
		}
		if !filepath.IsLocal(rel) || filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") {
			t.Fatalf("cleanPath(%q) = %q: not a local path", escaped, rel)
		}
		if strings.ContainsAny(rel, "\x00\\") {
			t.Fatalf("cleanPath(%q) = %q: NUL or backslash", escaped, rel)
		}
		for _, elem := range strings.Split(rel, "/") {
			if elem == "" || elem == "." || elem == ".." {
				t.Fatalf("cleanPath(%q) = %q: element %q", escaped, rel, elem)
			}
		}
		if j := filepath.Join(root, rel); !strings.HasPrefix(j, root+"/") {
			t.Fatalf("cleanPath(%q) = %q: joins to %q, outside the root", escaped, rel, j)
		}
		if filepath.Clean(rel) != rel {
			t.Fatalf("cleanPath(%q) = %q: not clean", escaped, rel)
		}
	})
}
