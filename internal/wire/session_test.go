package wire

import (
	"encoding/json"
	"testing"
	"time"

	"sessiond"
)

// TestAppendJSONMatchesEncodingJSON checks the hand-written encoder against
// encoding/json on the same document (through a type without the method).
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 5e6, time.UTC)
	sessions := []*sessiond.Session{
		{ID: "a", Active: true, OpenTime: at, RequestTime: at},
		{ID: "b\"<&>", UserID: "u\n1", UserName: "Zoë \u2028", Active: false, OpenTime: at, RequestTime: at.Add(time.Second),
			CloseTime: at.Add(time.Hour), ExpireTime: at.Add(2 * time.Hour), Address: "10.0.0.1", Client: "web",
			User: json.RawMessage(`{"name":"x"}`), Data: json.RawMessage(`[1,"two",null]`), APIKeyID: "k1"},
		{ID: "c", OpenTime: at, Data: json.RawMessage(`"just a string"`), User: json.RawMessage(`42`)},
	}
	type plain SessionV1 // same fields, no MarshalJSON
	for _, s := range sessions {
		v := NewSessionV1(s)
		got := v.AppendJSON(nil)
		want, err := json.Marshal((*plain)(v))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("session %q:\n got %s\nwant %s", s.ID, got, want)
		}
	}
}
