package embedded

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/memory"
)

// TestListMatchesMemory compares List with the memory engine's (which
// runs Filter.Match on every session) over a varied data set and every
// tier of matcher: index only, raw records, and decoded sessions.
func TestListMatchesMemory(t *testing.T) {
	ctx := t.Context()
	emb := openTest(t, Options{})
	mem := memory.New()
	now, idle := t0.Add(100*time.Hour+17*time.Second), 2*time.Hour
	longUser := strings.Repeat("u", 300) // longer than format 3 kept in its keys
	users := []string{"", "alice", "al", "bob", longUser, longUser + "x"}
	addrs := []string{"10.0.0.1", "10.0.0.2", ""}
	clients := []string{"web", "Web", "cli"}
	keys := []string{"", "k1", "k2"}
	reasons := []string{sessiond.ReasonClosed, sessiond.ReasonExpired, sessiond.ReasonForced, sessiond.ReasonRevoked}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		open := t0.Add(time.Duration(rng.IntN(100)) * time.Hour) // many ties
		s := &sessiond.Session{
			ID:          fmt.Sprintf("s-%03d", rng.IntN(1000)) + fmt.Sprint(i),
			UserID:      users[rng.IntN(len(users))],
			UserName:    fmt.Sprintf("Name %d", i%7),
			Active:      true,
			OpenTime:    open,
			RequestTime: open.Add(time.Duration(rng.IntN(200)) * time.Minute),
			Address:     addrs[rng.IntN(len(addrs))],
			Client:      clients[rng.IntN(len(clients))],
			APIKeyID:    keys[rng.IntN(len(keys))],
		}
		if rng.IntN(3) == 0 {
			s.ExpireTime = now.Add(time.Duration(rng.IntN(240)-120) * time.Minute)
		}
		if rng.IntN(3) == 0 {
			sessiond.ApplyClose(s, s.RequestTime, reasons[rng.IntN(len(reasons))])
		}
		for _, st := range []sessiond.Store{emb, mem} {
			if _, err := st.Create(ctx, s, 0); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
	}

	// One user with more sessions than walkUser takes from the index at a
	// time, with ties in open_time across its pages.
	for i := range 3*userPage + 17 {
		open := t0.Add(time.Duration(rng.IntN(40)) * time.Hour)
		s := &sessiond.Session{ID: fmt.Sprintf("b-%04d", rng.IntN(10000)) + fmt.Sprint(i), UserID: "bob",
			Active: true, OpenTime: open, RequestTime: open, Client: clients[rng.IntN(len(clients))]}
		for _, st := range []sessiond.Store{emb, mem} {
			if _, err := st.Create(ctx, s, 0); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
	}

	tr, fa := true, false
	k1, none := "k1", ""
	filters := []sessiond.Filter{
		{},
		{UserID: "alice"},
		{UserID: "al"},
		{UserID: longUser},
		{FromTime: t0.Add(20 * time.Hour), ToTime: t0.Add(60 * time.Hour)},
		{UserID: "bob", FromTime: t0.Add(50 * time.Hour)},
		{UserID: "bob"},
		{UserID: "bob", FromTime: t0.Add(10 * time.Hour), ToTime: t0.Add(30 * time.Hour)},
		{UserID: "bob", Client: "web"},
		{Address: "10.0.0.1"},
		{Client: "web"},
		{APIKeyID: &k1},
		{APIKeyID: &none},
		{Active: &tr},
		{Active: &fa},
		{State: sessiond.StateActive},
		{State: sessiond.StateClosed},
		{State: sessiond.StateExpired},
		{UserID: "alice", Active: &tr},
		{UserID: longUser + "x", State: sessiond.StateExpired},
		{Client: "Web", APIKeyID: &k1, Active: &fa, ToTime: t0.Add(70 * time.Hour)},
		{Search: "NAME 3"},
		{Search: "s-1", Active: &tr},
		{Search: "alice", UserID: "alice"},
	}
	pagings := []sessiond.Paging{
		{Take: 1000, Total: true},
		{Skip: 3, Take: 5, Total: true},
		{Take: 2},
		{Skip: 40, Take: 10, Total: true},
		{Skip: 1000, Take: 10, Total: true},
		{Skip: userPage - 3, Take: 7, Total: true},
		{Skip: 2*userPage + 1, Take: userPage + 5},
		{Take: 0, Total: true},
	}
	for i, f := range filters {
		f.Now, f.IdleTimeout = now, idle
		for _, p := range pagings {
			want, err := mem.List(ctx, f, p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := emb.List(ctx, f, p)
			if err != nil {
				t.Fatalf("filter %d, paging %+v: %v", i, p, err)
			}
			if g, w := sessionIDs(got.Data), sessionIDs(want.Data); !slices.Equal(g, w) {
				t.Errorf("filter %d %+v, paging %+v: ids %v, want %v", i, f, p, g, w)
			}
			if (got.Total == nil) != (want.Total == nil) || got.Total != nil && *got.Total != *want.Total {
				t.Errorf("filter %d, paging %+v: total %v, want %v", i, p, deref(got.Total), deref(want.Total))
			}
		}
	}
}

func sessionIDs(ss []*sessiond.Session) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestMatcherTiers(t *testing.T) {
	tr := true
	key := "k"
	tests := []struct {
		name         string
		f            sessiond.Filter
		keyOnly, raw bool
	}{
		{"empty", sessiond.Filter{}, true, true},
		{"times", sessiond.Filter{FromTime: t0, ToTime: t0, Now: t0, IdleTimeout: time.Hour}, true, true},
		{"user and times", sessiond.Filter{UserID: "u", FromTime: t0, ToTime: t0, Now: t0, IdleTimeout: time.Hour}, false, true},
		{"long user", sessiond.Filter{UserID: strings.Repeat("u", 5000)}, false, true},
		{"active", sessiond.Filter{Active: &tr}, false, true},
		{"state, address, client, key", sessiond.Filter{State: "closed", Address: "a", Client: "c", APIKeyID: &key}, false, true},
		{"search", sessiond.Filter{Search: "x"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMatcher(&tt.f)
			if m.keyOnly != tt.keyOnly || m.raw != tt.raw {
				t.Errorf("keyOnly, raw = %v, %v; want %v, %v", m.keyOnly, m.raw, tt.keyOnly, tt.raw)
			}
		})
	}
}
