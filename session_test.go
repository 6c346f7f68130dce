package sessiond_test

import (
	"encoding/json"
	"testing"
	"time"

	"sessiond"
)

func TestSessionDeadline(t *testing.T) {
	tests := []struct {
		name   string
		expire time.Time
		want   time.Time
	}{
		{name: "idle timeout only", want: t0.Add(time.Hour)},
		{name: "expire_time earlier", expire: t0.Add(30 * time.Minute), want: t0.Add(30 * time.Minute)},
		{name: "expire_time later", expire: t0.Add(2 * time.Hour), want: t0.Add(time.Hour)},
		{name: "expire_time equal", expire: t0.Add(time.Hour), want: t0.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sessiond.Session{Active: true, RequestTime: t0, ExpireTime: tt.expire}
			if got := s.Deadline(time.Hour); !got.Equal(tt.want) {
				t.Errorf("Deadline = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSessionAlive(t *testing.T) {
	tests := []struct {
		name   string
		active bool
		expire time.Time
		now    time.Time
		want   bool
	}{
		{name: "just opened", active: true, now: t0, want: true},
		{name: "exactly at idle deadline", active: true, now: t0.Add(time.Hour), want: true},
		{name: "1ms past idle deadline", active: true, now: t0.Add(time.Hour + time.Millisecond), want: false},
		{name: "exactly at expire_time", active: true, expire: t0.Add(time.Minute), now: t0.Add(time.Minute), want: true},
		{name: "1ms past expire_time", active: true, expire: t0.Add(time.Minute), now: t0.Add(time.Minute + time.Millisecond), want: false},
		{name: "closed", active: false, now: t0, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sessiond.Session{Active: tt.active, RequestTime: t0, ExpireTime: tt.expire}
			if got := s.Alive(tt.now, time.Hour); got != tt.want {
				t.Errorf("Alive = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSessionState(t *testing.T) {
	alive := t0.Add(time.Minute)
	dead := t0.Add(2 * time.Hour)
	tests := []struct {
		name   string
		active bool
		reason string
		now    time.Time
		want   string
	}{
		{name: "alive", active: true, now: alive, want: sessiond.StateActive},
		{name: "active but dead, not yet swept", active: true, now: dead, want: sessiond.StateExpired},
		{name: "closed by client", reason: sessiond.ReasonClosed, now: alive, want: sessiond.StateClosed},
		{name: "closed by sweep", reason: sessiond.ReasonExpired, now: alive, want: sessiond.StateExpired},
		{name: "force-closed", reason: sessiond.ReasonForced, now: alive, want: sessiond.StateClosed},
		{name: "revoked", reason: sessiond.ReasonRevoked, now: alive, want: sessiond.StateClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sessiond.Session{Active: tt.active, RequestTime: t0, CloseReason: tt.reason}
			if got := s.State(tt.now, time.Hour); got != tt.want {
				t.Errorf("State = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSessionClone(t *testing.T) {
	s := &sessiond.Session{
		ID:        "a",
		User:      json.RawMessage(`{"n":1}`),
		Data:      json.RawMessage(`[1]`),
		TokenHash: []byte{1, 2, 3},
	}
	c := s.Clone()
	c.User[0], c.Data[0], c.TokenHash[0] = 'x', 'x', 9
	if string(s.User) != `{"n":1}` || string(s.Data) != `[1]` || s.TokenHash[0] != 1 {
		t.Errorf("changing the clone changed the original: %+v", s)
	}
	if got := (*sessiond.Session)(nil).Clone(); got != nil {
		t.Errorf("nil.Clone() = %v, want nil", got)
	}
	if got := (&sessiond.Session{}).Clone(); got.User != nil || got.Data != nil || got.TokenHash != nil {
		t.Errorf("Clone of nil slices = %+v, want nil slices kept nil", got)
	}
}

func TestFilterMatch(t *testing.T) {
	sess := &sessiond.Session{
		ID:          "0123456789abcdef0123456789abcdef",
		UserID:      "u-42",
		UserName:    "Alice Smith",
		Active:      true,
		OpenTime:    t0,
		RequestTime: t0,
		Address:     "192.168.1.20",
		Client:      "DataBrowser",
		APIKeyID:    "key-a",
	}
	keyA, keyB, noKey := "key-a", "key-b", ""
	yes, no := true, false
	alive, dead := t0.Add(time.Minute), t0.Add(2*time.Hour)

	tests := []struct {
		name   string
		filter sessiond.Filter
		want   bool
	}{
		{name: "empty filter", filter: sessiond.Filter{}, want: true},

		{name: "user_id equal", filter: sessiond.Filter{UserID: "u-42"}, want: true},
		{name: "user_id differs", filter: sessiond.Filter{UserID: "u-4"}, want: false},
		{name: "address equal", filter: sessiond.Filter{Address: "192.168.1.20"}, want: true},
		{name: "address differs", filter: sessiond.Filter{Address: "192.168.1.2"}, want: false},
		{name: "client equal", filter: sessiond.Filter{Client: "DataBrowser"}, want: true},
		{name: "client is case-sensitive", filter: sessiond.Filter{Client: "databrowser"}, want: false},
		{name: "api key equal", filter: sessiond.Filter{APIKeyID: &keyA}, want: true},
		{name: "api key differs", filter: sessiond.Filter{APIKeyID: &keyB}, want: false},
		{name: "api key empty selects internal sessions only", filter: sessiond.Filter{APIKeyID: &noKey}, want: false},

		{name: "search id", filter: sessiond.Filter{Search: "89ABCDEF0123"}, want: true},
		{name: "search user_id", filter: sessiond.Filter{Search: "U-4"}, want: true},
		{name: "search user_name", filter: sessiond.Filter{Search: "alice"}, want: true},
		{name: "search address", filter: sessiond.Filter{Search: "168.1"}, want: true},
		{name: "search client", filter: sessiond.Filter{Search: "BROWSER"}, want: true},
		{name: "search no field", filter: sessiond.Filter{Search: "bob"}, want: false},
		{name: "search does not look at api key", filter: sessiond.Filter{Search: "key-a"}, want: false},

		{name: "active wanted, alive", filter: sessiond.Filter{Active: &yes, Now: alive, IdleTimeout: time.Hour}, want: true},
		{name: "active wanted, dead", filter: sessiond.Filter{Active: &yes, Now: dead, IdleTimeout: time.Hour}, want: false},
		{name: "inactive wanted, alive", filter: sessiond.Filter{Active: &no, Now: alive, IdleTimeout: time.Hour}, want: false},
		{name: "inactive wanted, dead", filter: sessiond.Filter{Active: &no, Now: dead, IdleTimeout: time.Hour}, want: true},

		{name: "state active, alive", filter: sessiond.Filter{State: sessiond.StateActive, Now: alive, IdleTimeout: time.Hour}, want: true},
		{name: "state expired, alive", filter: sessiond.Filter{State: sessiond.StateExpired, Now: alive, IdleTimeout: time.Hour}, want: false},
		{name: "state expired, dead", filter: sessiond.Filter{State: sessiond.StateExpired, Now: dead, IdleTimeout: time.Hour}, want: true},
		{name: "state closed, dead", filter: sessiond.Filter{State: sessiond.StateClosed, Now: dead, IdleTimeout: time.Hour}, want: false},

		{name: "from_time equal is inclusive", filter: sessiond.Filter{FromTime: t0}, want: true},
		{name: "from_time after open", filter: sessiond.Filter{FromTime: t0.Add(time.Millisecond)}, want: false},
		{name: "to_time equal is inclusive", filter: sessiond.Filter{ToTime: t0}, want: true},
		{name: "to_time before open", filter: sessiond.Filter{ToTime: t0.Add(-time.Millisecond)}, want: false},
		{name: "time window around open", filter: sessiond.Filter{FromTime: t0.Add(-time.Hour), ToTime: t0.Add(time.Hour)}, want: true},

		{name: "all fields match", filter: sessiond.Filter{UserID: "u-42", Address: "192.168.1.20", Client: "DataBrowser", APIKeyID: &keyA, Search: "smith", Active: &yes, Now: alive, IdleTimeout: time.Hour}, want: true},
		{name: "one field of many differs", filter: sessiond.Filter{UserID: "u-42", Address: "192.168.1.20", Client: "Other", Search: "smith"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.Match(sess); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterMatchClosedStates(t *testing.T) {
	now := t0.Add(time.Minute)
	tests := []struct {
		name   string
		reason string
		state  string
		want   bool
	}{
		{name: "closed is closed", reason: sessiond.ReasonClosed, state: sessiond.StateClosed, want: true},
		{name: "forced is closed", reason: sessiond.ReasonForced, state: sessiond.StateClosed, want: true},
		{name: "revoked is closed", reason: sessiond.ReasonRevoked, state: sessiond.StateClosed, want: true},
		{name: "expired is expired", reason: sessiond.ReasonExpired, state: sessiond.StateExpired, want: true},
		{name: "expired is not closed", reason: sessiond.ReasonExpired, state: sessiond.StateClosed, want: false},
		{name: "closed is not active", reason: sessiond.ReasonClosed, state: sessiond.StateActive, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sessiond.Session{ID: "x", OpenTime: t0, RequestTime: t0, CloseTime: t0, CloseReason: tt.reason}
			f := sessiond.Filter{State: tt.state, Now: now, IdleTimeout: time.Hour}
			if got := f.Match(s); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterLiveness(t *testing.T) {
	yes, no := true, false
	for _, tt := range []struct {
		name      string
		f         sessiond.Filter
		alive, ok bool
	}{
		{"none", sessiond.Filter{}, false, false},
		{"active", sessiond.Filter{Active: &yes}, true, true},
		{"not active", sessiond.Filter{Active: &no}, false, true},
		{"state active", sessiond.Filter{State: sessiond.StateActive}, true, true},
		{"state active and active", sessiond.Filter{State: sessiond.StateActive, Active: &yes}, true, true},
		{"state active but not active", sessiond.Filter{State: sessiond.StateActive, Active: &no}, false, false},
		{"state closed", sessiond.Filter{State: sessiond.StateClosed}, false, false},
		{"active within times", sessiond.Filter{Active: &yes, FromTime: time.Unix(1, 0), ToTime: time.Unix(2, 0), Now: time.Unix(3, 0), IdleTimeout: time.Hour}, true, true},
		{"active of a user", sessiond.Filter{Active: &yes, UserID: "u"}, false, false},
		{"state active with a search", sessiond.Filter{State: sessiond.StateActive, Search: "x"}, false, false},
	} {
		if alive, ok := tt.f.Liveness(); alive != tt.alive || ok != tt.ok {
			t.Errorf("%s: Liveness() = %v, %v; want %v, %v", tt.name, alive, ok, tt.alive, tt.ok)
		}
	}
}
