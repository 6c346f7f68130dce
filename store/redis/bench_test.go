package redis_test

import (
	"fmt"
	"testing"
	"time"

	"sessiond"
	"sessiond/store/redis"
	"sessiond/store/redis/redistest"
)

// benchStore opens a store under a fresh prefix holding n sessions of 100
// users.
func benchStore(b *testing.B, n int) (*redis.Store, []*sessiond.Session) {
	url := redistest.BaseURL()
	prefix := redistest.Prefix(b, url)
	ctx := b.Context()
	s, err := redis.Open(ctx, url, redis.Options{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Now().UTC().Truncate(time.Millisecond)
	var all []*sessiond.Session
	for i := range n {
		user := fmt.Sprint("user-", i%100)
		id := s.NewSessionID("", user)
		sess := &sessiond.Session{ID: id, UserID: user, Active: true, OpenTime: now.Add(time.Duration(i) * time.Millisecond),
			RequestTime: now, Address: "10.0.0.1", TokenHash: []byte("tok-" + id)}
		if _, err := s.Create(ctx, sess, 0); err != nil {
			b.Fatal(err)
		}
		all = append(all, sess)
	}
	return s, all
}

func BenchmarkCreate(b *testing.B) {
	s, _ := benchStore(b, 0)
	now := time.Now().UTC()
	for i := 0; b.Loop(); i++ {
		user := fmt.Sprint("user-", i%100)
		id := s.NewSessionID("", user)
		if _, err := s.Create(b.Context(), &sessiond.Session{ID: id, UserID: user, Active: true, OpenTime: now, RequestTime: now,
			TokenHash: []byte("tok-" + id)}, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetByTokenHash(b *testing.B) {
	s, all := benchStore(b, 1000)
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetByTokenHash(b.Context(), all[i%len(all)].TokenHash); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdate(b *testing.B) {
	s, all := benchStore(b, 1000)
	for i := 0; b.Loop(); i++ {
		if _, err := s.Update(b.Context(), all[i%len(all)].ID, func(s *sessiond.Session) error {
			s.Data = []byte(`{"n":1}`)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// A page of 20 with its total, of all sessions, of a user, and with a
// filter applied while merging.
func BenchmarkList(b *testing.B) {
	s, _ := benchStore(b, 5000)
	for _, bb := range []struct {
		name string
		f    sessiond.Filter
		p    sessiond.Paging
	}{
		{"all", sessiond.Filter{}, sessiond.Paging{Take: 20, Total: true}},
		{"all/skip1000", sessiond.Filter{}, sessiond.Paging{Skip: 1000, Take: 20}},
		{"user", sessiond.Filter{UserID: "user-7"}, sessiond.Paging{Take: 20, Total: true}},
		{"address", sessiond.Filter{Address: "10.0.0.1"}, sessiond.Paging{Take: 20}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.List(b.Context(), bb.f, bb.p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkListNoTotal(b *testing.B) {
	s, _ := benchStore(b, 5000)
	for b.Loop() {
		if _, err := s.List(b.Context(), sessiond.Filter{}, sessiond.Paging{Take: 20}); err != nil {
			b.Fatal(err)
		}
	}
}
