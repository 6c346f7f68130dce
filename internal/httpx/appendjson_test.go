package httpx

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	tests := []string{"", "plain", `q"uote`, `back\slash`, "ctl\x00\x01\x1f", "nl\n\r\t", "bs\b ff\f", "<a>&b", "é ü 日本", "bad\xffutf8", "line\u2028sep\u2029", "\x7f"}
	for _, s := range tests {
		got := string(AppendString(nil, s))
		want, _ := json.Marshal(s)
		if got != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello")
	f.Add("\xff<>&\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		want, _ := json.Marshal(s)
		if string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAppendTime(t *testing.T) {
	if got := string(AppendTime(nil, time.Time{})); got != "null" {
		t.Errorf("zero time: got %s, want null", got)
	}
	tm := time.Date(2026, 11, 22, 11, 0, 0, 123456789, time.FixedZone("x", 3600))
	if got, want := string(AppendTime(nil, tm)), `"2026-11-22T10:00:00.123Z"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
