package commandable

import (
	"testing"

	"sessiond/internal/piperr"
)

// general decodes a session-id-only body the slow way.
func general(body []byte) (string, error) {
	var p sessionIDParams
	if err := piperr.DecodeObject(body, &p); err != nil {
		return "", err
	}
	return requireID(p.SessionID)
}

var fastIDSeeds = []string{
	`{"session_id":"0123456789abcdef0123456789abcdef"}`,
	" {\n\t\"session_id\" : \"a b\" \r\n} ",
	`{"session_id":""}`,
	`{"session_id":"x","data":1}`,
	`{"Session_ID":"x"}`,
	`{"session_id":"a\"b"}`,
	`{"session_id":"a\u0041"}`,
	"{\"session_id\":\"\xc3\xa9\"}",
	`{"session_id":5}`,
	`{"session_id":"x"}}`,
	`{"session_id":"x"`,
	`{"session_id":"x"} x`,
	`{"session_id" "x"}`,
	`[]`,
	``,
}

func TestFastIDAgreesWithDecoder(t *testing.T) {
	for _, s := range fastIDSeeds {
		checkFastID(t, []byte(s))
	}
	// The exact shapes clients send take the fast path.
	for _, s := range fastIDSeeds[:2] {
		if _, ok := fastID([]byte(s)); !ok {
			t.Errorf("fastID(%q) declined a body it is for", s)
		}
	}
}

func checkFastID(t *testing.T, body []byte) {
	t.Helper()
	id, ok := fastID(body)
	if !ok {
		return
	}
	want, err := general(body)
	if err != nil || id != want {
		t.Errorf("fastID(%q) = %q; the decoder gives %q, %v", body, id, want, err)
	}
}

// FuzzFastID checks that whatever fastID accepts, the general decoder
// reads the same way.
func FuzzFastID(f *testing.F) {
	for _, s := range fastIDSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkFastID(t, body) })
}
