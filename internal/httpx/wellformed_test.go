package httpx

import (
	"encoding/json"
	"strings"
	"testing"

	"sessiond"
)

// wellFormedSlow is what WellFormed replaces: the three checks it does in
// one pass.
func wellFormedSlow(b []byte) bool {
	return json.Valid(b) && sessiond.ValidText(b) && CheckDepth(b) == nil
}

// wellFormedCases cover every branch of WellFormed, on both sides of each
// rule; they also seed FuzzWellFormed.
var wellFormedCases = []struct {
	in   string
	want bool
}{
	{`{"jsonrpc":"2.0","id":1,"method":"session.verify_session_token","params":{"token":"ABC"}}`, true},
	{` [1, -2.5e+3, 0, 0.0, 1E9, -0, true, false, null, "s", {}, [], {"a":{"b":[]}}] `, true},
	{"\t\r\n{ \"a\" : 1 , \"b\" : [ ] }\n", true},
	{`"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00 é 日本 😀"`, true},
	{`""`, true},
	{`0`, true},
	{``, false},
	{`   `, false},
	{`{`, false},
	{`}`, false},
	{`[1,]`, false},
	{`{"a":1,}`, false},
	{`{"a" 1}`, false},
	{`{a:1}`, false},
	{`{"a":1 "b":2}`, false},
	{`[1 2]`, false},
	{`[1}`, false},
	{`{"a":1]`, false},
	{`1 2`, false},
	{`{} x`, false},
	{`01`, false},
	{`-`, false},
	{`1.`, false},
	{`.5`, false},
	{`1e`, false},
	{`1e+`, false},
	{`+1`, false},
	{`tru`, false},
	{`nul`, false},
	{`falsy`, false},
	{`True`, false},
	{`"abc`, false},
	{"\"a\x01b\"", false},
	{`"\x"`, false},
	{`"\u12"`, false},
	{`"\u12g4"`, false},
	{`"\`, false},
	{`"\uD800"`, false},         // a lone high surrogate
	{`"\uDC00"`, false},         // a lone low surrogate
	{`"\uD800\u0041"`, false},   // a high one followed by no low one
	{`"\uD800\\uDC00"`, false},  // ... nor by an escaped backslash
	{`"\uD800\uDBFF"`, false},   // ... nor by another high one
	{"\"\xff\"", false},         // invalid UTF-8
	{"\"\xed\xa0\x80\"", false}, // a surrogate encoded in UTF-8
	{"\"\xc3\"", false},         // a truncated sequence
	{"\xc3\xa9", false},         // UTF-8 outside a string
	{strings.Repeat("[", 64) + strings.Repeat("]", 64), true},
	{strings.Repeat("[", 65) + strings.Repeat("]", 65), false},
	{strings.Repeat(`{"a":`, 64) + "1" + strings.Repeat("}", 64), true},
	{strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), false},
	{`["[[[[", "{{{{"]`, true},
}

func TestWellFormed(t *testing.T) {
	for _, c := range wellFormedCases {
		if got := WellFormed([]byte(c.in)); got != c.want {
			t.Errorf("WellFormed(%q) = %v, want %v", c.in, got, c.want)
		}
		if slow := wellFormedSlow([]byte(c.in)); slow != c.want {
			t.Errorf("the three checks say %v for %q, the case %v", slow, c.in, c.want)
		}
	}
}

// FuzzWellFormed checks WellFormed against the three checks it replaces.
func FuzzWellFormed(f *testing.F) {
	for _, c := range wellFormedCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := WellFormed(b), wellFormedSlow(b); got != want {
			t.Fatalf("WellFormed(%q) = %v, the three checks say %v", b, got, want)
		}
	})
}

// BenchmarkWellFormed and BenchmarkWellFormedSlow compare the one pass
// with the three on a verify_session_token body (docs/benchmarks.md).
var verifyBody = []byte(`{"jsonrpc":"2.0","id":1,"method":"session.verify_session_token","params":{"token":"ULBPBJFOMKSTK5OLEHFJJ53PFW"}}`)

func BenchmarkWellFormed(b *testing.B) {
	for b.Loop() {
		if !WellFormed(verifyBody) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkWellFormedSlow(b *testing.B) {
	for b.Loop() {
		if !wellFormedSlow(verifyBody) {
			b.Fatal("refused")
		}
	}
}
