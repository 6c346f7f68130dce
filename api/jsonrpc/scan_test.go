package jsonrpc

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzScan checks the scanner against encoding/json: for any valid JSON
// object or array, newIter yields exactly the members or elements that
// encoding/json finds, as the same raw bytes, and decodeString agrees with
// json.Unmarshal on every key.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, ` [ 1 , "a" , {"b":[2]} , null , true , -1.5e3 ] `,
		`{"a":1,"b":"x\"y","c":{"d":[1,{"e":"]"}]},"\u0066":false}`,
		`{"a" : "\\" , "b" :[ ] }`, `["}", "]", "\\\"", {"":""}]`,
		"{\"\xff\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		i := skipSpace(b, 0)
		v := b[i:valueEnd(b, i)]
		if !bytes.Equal(bytes.TrimSpace(b), v) {
			t.Fatalf("valueEnd: got %q of %q", v, b)
		}
		switch v[0] {
		case '[':
			var want []json.RawMessage
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for it := newIter(v); it.next(); {
				got = append(got, it.val)
			}
			if len(got) != len(want) || count(v) != len(want) {
				t.Fatalf("%q: got %d elements (count %d), want %d", v, len(got), count(v), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%q: element %d is %q, want %q", v, i, got[i], want[i])
				}
			}
		case '{':
			var want map[string]json.RawMessage
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			got := map[string][]byte{}
			for it := newIter(v); it.next(); {
				var k string
				if err := json.Unmarshal(it.key, &k); err != nil {
					t.Fatalf("%q: key %q: %v", v, it.key, err)
				}
				if d := decodeString(it.key); d != k {
					t.Fatalf("decodeString(%q) = %q, want %q", it.key, d, k)
				}
				if !stringIs(it.key, k) {
					t.Fatalf("stringIs(%q, %q) is false", it.key, k)
				}
				got[k] = it.val // the last one wins, as in encoding/json
			}
			if len(got) != len(want) {
				t.Fatalf("%q: got %d members, want %d", v, len(got), len(want))
			}
			for k, w := range want {
				if !bytes.Equal(got[k], w) {
					t.Fatalf("%q: member %q is %q, want %q", v, k, got[k], w)
				}
			}
		}
	})
}
