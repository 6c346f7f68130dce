package sessiond_test

import (
	"testing"
	"time"

	"sessiond"
	"sessiond/internal/clock"
	"sessiond/store/memory"
)

// IOActivity counts a session's gateway requests of the last 30 seconds:
// requests leave the count as they age out of the window.
func TestIOActivity(t *testing.T) {
	clk := clock.NewFake(t0)
	svc := sessiond.NewService(memory.New(), clk, sessiond.Config{}, nil)
	count := func(id string, want int) {
		t.Helper()
		if got := svc.IOActivity(id); got != want {
			t.Errorf("IOActivity(%s) at +%v: got %d, want %d", id, clk.Now().Sub(t0), got, want)
		}
	}
	count("a", 0)
	svc.RecordConnection("a", "/x/", 1, 1, false)
	svc.RecordConnection("a", "/y/", 1, 1, true)
	clk.Add(10 * time.Second)
	svc.RecordConnection("a", "/x/", 1, 1, false)
	svc.RecordConnection("b", "/x/", 1, 1, false)
	count("a", 3)
	count("b", 1)
	clk.Add(20 * time.Second) // the first two are 30 s old: out
	count("a", 1)
	clk.Add(9 * time.Second)
	count("a", 1)
	clk.Add(time.Second)
	count("a", 0)
	clk.Add(time.Hour) // far ahead: the ring is cleared, not misread
	svc.RecordConnection("a", "/x/", 1, 1, false)
	count("a", 1)
	count("b", 0)
}
