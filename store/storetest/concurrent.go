package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"sessiond"
)

const (
	writers   = 8
	perWriter = 25
)

// testConcurrentUpdates runs read-modify-write increments from several
// goroutines on one session: none may be lost, and each must see the
// result of the one before it.
func testConcurrentUpdates(t *testing.T, s sessiond.Store) {
	sess := active("counter", T0)
	sess.Data = json.RawMessage(`{"n":0}`)
	mustCreate(t, s, sess)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen []int
	)
	for range writers {
		wg.Go(func() {
			for range perWriter {
				got, err := s.Update(t.Context(), "counter", func(sess *sessiond.Session) error {
					var d struct{ N int }
					if err := json.Unmarshal(sess.Data, &d); err != nil {
						return err
					}
					sess.Data = json.RawMessage(fmt.Sprintf(`{"n":%d}`, d.N+1))
					return nil
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
				var d struct{ N int }
				if err := json.Unmarshal(got.Data, &d); err != nil {
					t.Errorf("Update returned data %s: %v", got.Data, err)
					return
				}
				mu.Lock()
				seen = append(seen, d.N)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	total := writers * perWriter
	if got, want := string(mustGet(t, s, "counter").Data), fmt.Sprintf(`{"n":%d}`, total); !sameJSON(json.RawMessage(got), json.RawMessage(want)) {
		t.Errorf("counter = %s, want %s", got, want)
	}
	slices.Sort(seen)
	for i, n := range seen {
		if n != i+1 {
			t.Errorf("Update results are not 1..%d: position %d holds %d", total, i, n)
			break
		}
	}
}

// testConcurrentCreates creates distinct sessions from several goroutines,
// then races goroutines creating one id and one token hash: exactly one of
// each race wins.
func testConcurrentCreates(t *testing.T, s sessiond.Store) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				sess := active(fmt.Sprintf("w%d-%02d", w, i), T0)
				if _, err := s.Create(t.Context(), sess, 0); err != nil {
					t.Errorf("Create(%s): %v", sess.ID, err)
				}
			}
		})
	}
	wg.Wait()
	page, err := s.List(t.Context(), sessiond.Filter{}, sessiond.Paging{Total: true})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkTotal(t, page, true, writers*perWriter)
	for w := range writers {
		for i := range perWriter {
			mustGet(t, s, fmt.Sprintf("w%d-%02d", w, i))
		}
	}

	race := func(name string, mk func(w int) *sessiond.Session) {
		var mu sync.Mutex
		won, lost := 0, 0
		for w := range writers {
			wg.Go(func() {
				_, err := s.Create(t.Context(), mk(w), 0)
				mu.Lock()
				defer mu.Unlock()
				switch sessiond.ErrorCode(err) {
				case "":
					won++
				case sessiond.ECONFLICT:
					lost++
				default:
					t.Errorf("%s: Create: %v", name, err)
				}
			})
		}
		wg.Wait()
		if won != 1 || lost != writers-1 {
			t.Errorf("%s: %d won and %d lost, want 1 and %d", name, won, lost, writers-1)
		}
	}
	race("same id", func(w int) *sessiond.Session {
		sess := active("same-id", T0)
		sess.TokenHash = tokenHash(fmt.Sprint("same-id", w))
		return sess
	})
	race("same token hash", func(w int) *sessiond.Session {
		sess := active(fmt.Sprint("same-token-", w), T0)
		sess.TokenHash = tokenHash("same-token")
		return sess
	})
}
