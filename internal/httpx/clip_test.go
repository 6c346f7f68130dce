package httpx

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("a", 12), 10, strings.Repeat("a", 10) + "..."},
		{"ab\u00e9cd", 3, "ab..."},           // not inside the two bytes of é
		{"a\xffb", 10, "a\uFFFDb"},           // invalid UTF-8 replaced
		{"\xff\xfe" + "xyz", 1, "\uFFFD..."}, // cut, then replaced
	} {
		got := Clip(c.in, c.n)
		if got != c.want || !utf8.ValidString(got) {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
