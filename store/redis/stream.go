package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
)

const (
	// shards is the number of event logs and channels.
	shards = 16
	// Reconnection backoff of a subscription.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// publish: KEYS[1] the shard's log; ARGV channel, events (JSON), MINID,
// origin, log expiry (ms). Appends to the log, then publishes "<entry id>
// <events>" on the shard's channel: in one script, so the channel's order
// is the log's.
const luaPublish = `
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], '*', 'o', ARGV[4], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SPUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
return id
`

// Stream is the store's sessiond.Stream: a LocalStream for this process,
// and, between instances, 16 shards each made of a Redis Stream (the log,
// for catching up) and a sharded pub/sub channel (for speed).
type Stream struct {
	local     *sessiond.LocalStream
	store     *Store
	log       *slog.Logger
	retention time.Duration
	ping      time.Duration

	deliverMu sync.Mutex // one batch at a time, Lost and Resumed in order
	lost      [shards]bool
	nLost     int

	batch     *sessiond.Batcher // telling events, sent in the background
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ sessiond.Stream = (*Stream)(nil)

func (s *Store) logKey(i int) string     { return fmt.Sprintf("%s{ev%x}:log", s.prefix, i) }
func (s *Store) channelKey(i int) string { return fmt.Sprintf("%s{ev%x}:ch", s.prefix, i) }

// shardOf places an event: a session's events by its group (so that the
// events of one session keep their order between instances), the events
// of an API key by its id.
func shardOf(e sessiond.Event) int {
	if e.SessionID != "" {
		return groupOf(e.SessionID) % shards
	}
	h := fnv.New32a()
	h.Write([]byte(e.APIKeyID))
	return int(h.Sum32() % shards)
}

// newStream reads where each log ends and starts the subscriptions.
func newStream(ctx context.Context, s *Store, opts Options) (*Stream, error) {
	st := &Stream{
		local: sessiond.NewLocalStream(opts.Origin), store: s, log: opts.Log,
		retention: opts.EventRetention, ping: opts.ListenPing,
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.XMessageSliceCmd, shards)
	for i := range shards {
		cmds[i] = pipe.XRevRangeN(octx, s.logKey(i), "+", "-", 1)
	}
	if _, err := pipe.Exec(octx); err != nil {
		return nil, s.wrap(err)
	}
	st.batch = sessiond.NewBatcher(func(ctx context.Context, evs []sessiond.Event) error {
		return st.send(ctx, evs)
	}, opts.Log)
	runCtx, stop := context.WithCancel(context.Background())
	st.cancel = stop
	for i := range shards {
		last := "0-0"
		if v := cmds[i].Val(); len(v) > 0 {
			last = v[0].ID
		}
		st.wg.Go(func() { st.run(runCtx, i, last) })
	}
	return st, nil
}

// Origin returns the name stamped on this instance's events.
func (st *Stream) Origin() string { return st.local.Origin() }

// Publish delivers evs to this process's subscribers, then appends them
// to their shards' logs and channels (one script per shard, pipelined).
func (st *Stream) Publish(ctx context.Context, evs ...sessiond.Event) error {
	if len(evs) == 0 {
		return nil
	}
	st.local.Stamp(evs)
	st.local.Deliver(evs)
	if !slices.ContainsFunc(evs, func(e sessiond.Event) bool { return !e.Telling() }) {
		// Nothing for other instances to drop: sent in the background,
		// batched with other opens (sessiond.Batcher).
		st.batch.Add(ctx, evs)
		return nil
	}
	return st.send(ctx, evs)
}

// send appends evs to their shards' logs and publishes them, one script
// per shard, pipelined.
func (st *Stream) send(ctx context.Context, evs []sessiond.Event) error {
	var parts [shards][]sessiond.Event
	for _, e := range evs {
		parts[shardOf(e)] = append(parts[shardOf(e)], e)
	}
	s := st.store
	now := time.Now()
	minID := strconv.FormatInt(now.Add(-st.retention).UnixMilli(), 10) + "-0"
	var calls []call
	for i, part := range parts {
		if len(part) == 0 {
			continue
		}
		b, err := json.Marshal(part)
		if err != nil {
			return sessiond.Internal(err)
		}
		calls = append(calls, call{lua.publish, []string{s.logKey(i)},
			[]any{s.channelKey(i), b, minID, st.Origin(), st.retention.Milliseconds()}})
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.evalMany(ctx, calls)
	return s.wrap(err)
}

// Subscribe calls fn with every batch of events from now on.
func (st *Stream) Subscribe(fn func([]sessiond.Event)) func() { return st.local.Subscribe(fn) }

// Close stops the subscriptions and drops every subscriber.
func (st *Stream) Close() error {
	st.closeOnce.Do(func() {
		st.batch.Close()
		st.cancel()
		st.wg.Wait()
		st.local.Close()
	})
	return nil
}

// deliver hands events of other instances to the subscribers, one batch
// at a time.
func (st *Stream) deliver(evs []sessiond.Event) {
	out := evs[:0]
	for _, e := range evs {
		if e.Origin != st.Origin() {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return
	}
	st.deliverMu.Lock()
	defer st.deliverMu.Unlock()
	st.local.Deliver(out)
}

// setLost records that shard i lost (true) or got back (false) its
// channel: the first loss tells EventLost, the last return EventResumed.
func (st *Stream) setLost(i int, lost bool, err error) {
	st.deliverMu.Lock()
	defer st.deliverMu.Unlock()
	if st.lost[i] == lost {
		return
	}
	st.lost[i] = lost
	if lost {
		st.nLost++
		if st.nLost == 1 {
			st.log.Warn("redis stream: channel lost; reading through until caught up", "shard", i, "err", err)
			st.local.Deliver([]sessiond.Event{{Kind: sessiond.EventLost}})
		}
		return
	}
	st.nLost--
	if st.nLost == 0 {
		st.log.Info("redis stream: channels back and caught up")
		st.local.Deliver([]sessiond.Event{{Kind: sessiond.EventResumed}})
	}
}

// run keeps shard i's subscription: subscribe, catch up from the log since
// the last entry seen, then deliver messages until the connection breaks;
// then tell the loss, and again with backoff.
func (st *Stream) run(ctx context.Context, i int, last string) {
	backoff := minBackoff
	for {
		err := st.session(ctx, i, &last, &backoff)
		if ctx.Err() != nil {
			return
		}
		st.setLost(i, true, err)
		if c, ok := st.store.rdb.(*goredis.ClusterClient); ok {
			rctx, cancel := st.store.op(ctx)
			c.ReloadState(rctx)
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// session is one subscription of shard i, until it fails.
func (st *Stream) session(ctx context.Context, i int, last *string, backoff *time.Duration) error {
	s := st.store
	ps := s.rdb.SSubscribe(ctx)
	defer ps.Close()
	// Closing the subscription ends a receive under way when the stream
	// closes.
	defer context.AfterFunc(ctx, func() { ps.Close() })()
	sctx, cancel := s.op(ctx)
	err := ps.SSubscribe(sctx, s.channelKey(i))
	if err == nil {
		// Wait for the confirmation: from then on nothing published is missed.
		var msg any
		msg, err = ps.ReceiveTimeout(sctx, s.timeout)
		if _, ok := msg.(*goredis.Subscription); err == nil && !ok {
			err = fmt.Errorf("unexpected %T before the subscription", msg)
		}
	}
	cancel()
	if err == nil {
		err = st.catchUp(ctx, i, last)
	}
	if err != nil {
		return err
	}
	*backoff = minBackoff
	st.setLost(i, false, nil)
	quiet := 0
	for {
		msg, err := ps.ReceiveTimeout(ctx, st.ping)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if !isTimeout(err) || quiet > 0 {
				return err
			}
			// Quiet for a while: ping; no answer by the next turn is a loss.
			quiet++
			pctx, cancel := s.op(ctx)
			err = ps.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		quiet = 0
		switch m := msg.(type) {
		case *goredis.Message:
			id, payload, _ := strings.Cut(m.Payload, " ")
			if !after(id, *last) {
				continue
			}
			*last = id
			var evs []sessiond.Event
			if err := json.Unmarshal([]byte(payload), &evs); err != nil {
				st.log.Warn("redis stream: bad message", "err", err)
				continue
			}
			st.deliver(evs)
		case *goredis.Subscription:
			if m.Kind == "sunsubscribe" {
				// The slot moved (resharding, failover): subscribe again.
				return fmt.Errorf("unsubscribed from %s by the server", m.Channel)
			}
		}
	}
}

func isTimeout(err error) bool {
	type timeout interface{ Timeout() bool }
	t, ok := err.(timeout)
	return ok && t.Timeout()
}

// after reports whether the stream entry id a comes after b.
func after(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		return x > y
	}
	x, _ = strconv.ParseUint(as, 10, 64)
	y, _ = strconv.ParseUint(bs, 10, 64)
	return x > y
}

// catchUp delivers the log's entries after last.
func (st *Stream) catchUp(ctx context.Context, i int, last *string) error {
	s := st.store
	for {
		cctx, cancel := s.op(ctx)
		msgs, err := s.rdb.XRangeN(cctx, s.logKey(i), "("+*last, "+", 1000).Result()
		cancel()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			*last = m.ID
			payload, _ := m.Values["e"].(string)
			var evs []sessiond.Event
			if err := json.Unmarshal([]byte(payload), &evs); err != nil {
				st.log.Warn("redis stream: bad log entry", "err", err)
				continue
			}
			st.deliver(evs)
		}
		if len(msgs) < 1000 {
			return nil
		}
	}
}
