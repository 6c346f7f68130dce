package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond"
)

// batchSize is how many sessions one script of the sweep or the purge
// changes.
const batchSize = 1000

// strayMargin: a group is forgotten from a user's stray list only when no
// session was placed there for that long (far more than a Create takes).
const strayMargin = 10 * time.Minute

// inFlight: a token pointer younger than this whose session is not (yet)
// there belongs to a Create under way, not to a lost one.
const inFlight = 30 * time.Second

func notFound(what, id string) error {
	return sessiond.Errorf(sessiond.ENOTFOUND, "%s %s not found", what, id)
}

func conflict(msg string) error { return &sessiond.Error{Code: sessiond.ECONFLICT, Message: msg} }

func (s *Store) Create(ctx context.Context, sess *sessiond.Session, userMin int) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	now := time.Now()
	at := s.expiry(sess, now)
	g := groupOf(sess.ID)
	if len(sess.TokenHash) > 0 {
		if err := s.claimToken(ctx, sess, pointerExpiry(at), now); err != nil {
			return false, err
		}
	}
	if err := s.placeStray(ctx, sess.UserID, g, now, at); err != nil {
		return false, err
	}
	// The first version is random, so that an Update that read a session
	// since deleted cannot store over a new one of the same id.
	args := append([]any{sess.ID, at, "v", rand.Int64N(1 << 50)}, sessionFields(sess)...)
	res, err := s.eval(ctx, lua.create, []string{s.base(g)}, args...).Result()
	if err != nil {
		return false, s.wrap(err)
	}
	counts, ok := res.([]any)
	if !ok {
		if len(sess.TokenHash) > 0 {
			s.eval(ctx, lua.dropToken, []string{s.tokenKey(sess.TokenHash)}, sess.ID)
		}
		return false, conflict("session " + sess.ID + " already exists")
	}
	if userMin <= 0 || sess.UserID == "" || !sess.Active {
		return false, nil
	}
	// The script counted the user's sessions in this group. That is all
	// of them when this is the user's home and it records no strays;
	// otherwise the Service must ask UserSessions.
	if g != homeOf(sess.UserID) || len(counts) != 3 {
		return true, nil
	}
	active, _ := counts[1].(int64)
	strays, _ := counts[2].(int64)
	return strays > 0 || active >= int64(userMin), nil
}

// claimToken writes the pointer of sess's token hash, before the session:
// ECONFLICT if another session holds the hash, or if another Create of it
// is under way. A pointer left by a Create that failed half-way, or whose
// session is gone, is taken over.
func (s *Store) claimToken(ctx context.Context, sess *sessiond.Session, pexp int64, now time.Time) error {
	key := s.tokenKey(sess.TokenHash)
	value := sess.ID + " " + strconv.FormatInt(now.UnixMilli(), 10)
	for range 3 {
		ok, err := s.rdb.SetArgs(ctx, key, value, goredis.SetArgs{Mode: "NX", ExpireAt: time.UnixMilli(pexp)}).Result()
		if err == nil && ok == "OK" {
			return nil
		}
		if err != nil && !errors.Is(err, goredis.Nil) {
			return s.wrap(err)
		}
		cur, err := s.rdb.Get(ctx, key).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		} else if err != nil {
			return s.wrap(err)
		}
		id, written, _ := strings.Cut(cur, " ")
		held, err := s.rdb.HGet(ctx, s.sessionKey(id), "t").Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return s.wrap(err)
		}
		ms, _ := strconv.ParseInt(written, 10, 64)
		if held == string(sess.TokenHash) || now.Sub(time.UnixMilli(ms)) < inFlight {
			return conflict("the token of session " + sess.ID + " already exists")
		}
		n, err := s.eval(ctx, lua.claimToken, []string{key}, value, pexp, cur).Int()
		if err != nil {
			return s.wrap(err)
		}
		if n == 1 {
			return nil
		}
	}
	return conflict("the token of session " + sess.ID + " already exists")
}

// placeStray records, in the user's home group, that group g holds one of
// the user's sessions, when g is not the home (ids the engine did not
// choose, or an Update that changed the user).
func (s *Store) placeStray(ctx context.Context, userID string, g int, now time.Time, at int64) error {
	if userID == "" || homeOf(userID) == g {
		return nil
	}
	return s.wrap(s.eval(ctx, lua.stray, []string{s.base(homeOf(userID))},
		userID, fmt.Sprintf("%02x", g), now.UnixMilli(), at).Err())
}

// read returns the session and its version; nil if there is none.
func (s *Store) read(ctx context.Context, id string) (*sessiond.Session, int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.sessionKey(id)).Result()
	if err != nil {
		return nil, 0, s.wrap(err)
	}
	sess, v, err := decodeSession(id, m)
	if err != nil {
		return nil, 0, sessiond.Internal(err)
	}
	return sess, v, nil
}

// GetMany returns the sessions of ids that exist, in one pipeline (the
// cache's background refresh, sessiond.MultiGetter).
func (s *Store) GetMany(ctx context.Context, ids []string) ([]*sessiond.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	all, err := s.readMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, sess := range all {
		if sess != nil {
			out = append(out, sess)
		}
	}
	return out, nil
}

func (s *Store) Get(ctx context.Context, id string) (*sessiond.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	sess, _, err := s.read(ctx, id)
	if err == nil && sess == nil {
		err = notFound("session", id)
	}
	return sess, err
}

func (s *Store) GetByTokenHash(ctx context.Context, hash []byte) (*sessiond.Session, error) {
	if len(hash) == 0 {
		return nil, sessiond.Errorf(sessiond.ENOTFOUND, "token not found")
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, err := s.rdb.Get(ctx, s.tokenKey(hash)).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, sessiond.Errorf(sessiond.ENOTFOUND, "token not found")
	} else if err != nil {
		return nil, s.wrap(err)
	}
	id, _, _ := strings.Cut(cur, " ")
	sess, _, err := s.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if sess == nil || string(sess.TokenHash) != string(hash) {
		return nil, sessiond.Errorf(sessiond.ENOTFOUND, "token not found")
	}
	return sess, nil
}

// Update is optimistic: it reads the session and its version, calls fn,
// and stores the result by a script that refuses it if the version moved
// (another write came in between); then it runs again, fn included.
func (s *Store) Update(ctx context.Context, id string, fn sessiond.UpdateFunc) (*sessiond.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	g := groupOf(id)
	for attempt := 0; ; attempt++ {
		cur, v, err := s.read(ctx, id)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, notFound("session", id)
		}
		next := cur.Clone()
		if err := fn(next); errors.Is(err, sessiond.ErrUnchanged) {
			return cur, nil
		} else if err != nil {
			return nil, err
		}
		next.ID, next.TokenHash = cur.ID, cur.TokenHash
		now := time.Now()
		at := s.expiry(next, now)
		if next.UserID != cur.UserID {
			if err := s.placeStray(ctx, next.UserID, g, now, at); err != nil {
				return nil, err
			}
		}
		args := append([]any{id, strconv.FormatInt(v, 10), at}, sessionFields(next)...)
		res, err := s.eval(ctx, lua.update, []string{s.base(g)}, args...).Slice()
		if err != nil {
			return nil, s.wrap(err)
		}
		switch res[0].(int64) {
		case 0:
			return nil, notFound("session", id)
		case 1:
			s.refreshPointers(ctx, res[1:])
			return next, nil
		}
		// Another write came in between: back off a little, at random,
		// so that writers of one session do not stay in step.
		select {
		case <-ctx.Done():
			return nil, s.wrap(ctx.Err())
		case <-time.After(time.Duration(rand.IntN(min(attempt+1, 20)*500+1)) * time.Microsecond):
		}
	}
}

// refreshPointers moves the expiry of token pointers (token, ms pairs
// from a script). A failure is harmless for a day (see pointerExpiry).
func (s *Store) refreshPointers(ctx context.Context, pairs []any) {
	if len(pairs) < 2 {
		return
	}
	pipe := s.rdb.Pipeline()
	for i := 0; i+1 < len(pairs); i += 2 {
		tok, _ := pairs[i].(string)
		at, _ := strconv.ParseInt(fmt.Sprint(pairs[i+1]), 10, 64)
		pipe.PExpireAt(ctx, s.tokenKey([]byte(tok)), time.UnixMilli(at))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Debug("redis store: moving token pointers' expiry", "err", err)
	}
}

func (s *Store) Delete(ctx context.Context, id string) (*sessiond.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.eval(ctx, lua.delete, []string{s.base(groupOf(id))}, id).StringSlice()
	if err != nil {
		return nil, s.wrap(err)
	}
	if len(res) == 0 {
		return nil, notFound("session", id)
	}
	m := make(map[string]string, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		m[res[i]] = res[i+1]
	}
	sess, _, err := decodeSession(id, m)
	if err != nil {
		return nil, sessiond.Internal(err)
	}
	if len(sess.TokenHash) > 0 {
		if err := s.eval(ctx, lua.dropToken, []string{s.tokenKey(sess.TokenHash)}, id).Err(); err != nil {
			// The session is gone; its pointer dangles until it expires
			// (lookups check the session, so it finds nothing).
			s.log.Debug("redis store: dropping a token pointer", "err", err)
		}
	}
	return sess, nil
}

// byGroup splits items by the group of their session id, in group order.
func byGroup[T any](items []T, id func(T) string) [][]T {
	var out [groups][]T
	for _, it := range items {
		g := groupOf(id(it))
		out[g] = append(out[g], it)
	}
	var res [][]T
	for _, v := range out {
		if len(v) > 0 {
			res = append(res, v)
		}
	}
	return res
}

func (s *Store) Touch(ctx context.Context, touches []sessiond.Touch) error {
	// Chunks, each bounded by the operation timeout on its own: a flush
	// of a busy second can hold hundreds of thousands of sessions, which
	// no single bound fits.
	for len(touches) > touchChunk {
		if err := s.touch(ctx, touches[:touchChunk]); err != nil {
			return err
		}
		touches = touches[touchChunk:]
	}
	return s.touch(ctx, touches)
}

// touchChunk is how many touches one round of scripts carries.
const touchChunk = 5000

func (s *Store) touch(ctx context.Context, touches []sessiond.Touch) error {
	if len(touches) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	now := time.Now().UnixMilli()
	var calls []call
	for _, part := range byGroup(touches, func(t sessiond.Touch) string { return t.ID }) {
		args := []any{now, s.idle.Microseconds(), s.keep.Milliseconds()}
		for _, t := range part {
			args = append(args, t.ID, micro(t.Time))
		}
		calls = append(calls, call{lua.touch, []string{s.base(groupOf(part[0].ID))}, args})
	}
	cmds, err := s.evalMany(ctx, calls)
	if err != nil {
		return s.wrap(err)
	}
	var refresh []any
	for _, cmd := range cmds {
		if v, err := cmd.Slice(); err == nil {
			refresh = append(refresh, v...)
		}
	}
	s.refreshPointers(ctx, refresh)
	return nil
}

func (s *Store) UserSessions(ctx context.Context, apiKeyID, userID string, min int) ([]sessiond.UserSession, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	set := func(g int) string {
		return s.base(g) + "ua:" + strconv.Itoa(len(apiKeyID)) + ":" + apiKeyID + ":" + userID
	}
	// The count first, from the sets alone: the home group's, with the
	// user's strays (both in the home's slot) in one round trip, as
	// every open asks; then the strays' in a second, if there are any.
	home := homeOf(userID)
	pipe := s.rdb.Pipeline()
	strays := pipe.ZRange(ctx, s.strayKey(home, userID), 0, -1)
	homeCount := pipe.SCard(ctx, set(home))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.wrap(err)
	}
	gs := withStrays(home, strays.Val())
	total := int(homeCount.Val())
	if len(gs) > 1 {
		pipe = s.rdb.Pipeline()
		counts := make([]*goredis.IntCmd, len(gs)-1)
		for i, g := range gs[1:] {
			counts[i] = pipe.SCard(ctx, set(g))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, s.wrap(err)
		}
		for _, c := range counts {
			total += int(c.Val())
		}
	}
	if total < min || total == 0 {
		return nil, nil
	}
	pipe = s.rdb.Pipeline()
	members := make([]*goredis.StringSliceCmd, len(gs))
	for i, g := range gs {
		members[i] = pipe.SMembers(ctx, set(g))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.wrap(err)
	}
	var ids []string
	for _, m := range members {
		ids = append(ids, m.Val()...)
	}
	pipe = s.rdb.Pipeline()
	fields := make([]*goredis.SliceCmd, len(ids))
	for i, id := range ids {
		fields[i] = pipe.HMGet(ctx, s.sessionKey(id), "a", "o", "r", "e", "u", "k")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.wrap(err)
	}
	out := make([]sessiond.UserSession, 0, len(ids))
	for i, id := range ids {
		v := fields[i].Val()
		str := func(j int) string { x, _ := v[j].(string); return x }
		// A session whose keys expired leaves its entry until the sweep.
		if str(0) != "1" || str(4) != userID || str(5) != apiKeyID {
			continue
		}
		u := sessiond.UserSession{ID: id}
		var e1, e2, e3 error
		u.OpenTime, e1 = parseMicro(str(1))
		u.RequestTime, e2 = parseMicro(str(2))
		u.ExpireTime, e3 = parseMicro(str(3))
		if err := errors.Join(e1, e2, e3); err != nil {
			return nil, sessiond.Internal(err)
		}
		out = append(out, u)
	}
	if len(out) < min {
		return nil, nil
	}
	return out, nil
}

// userGroups returns the groups that may hold sessions of the user: the
// home, then the strays recorded there.
func (s *Store) userGroups(ctx context.Context, userID string) ([]int, error) {
	home := homeOf(userID)
	strays, err := s.rdb.ZRange(ctx, s.strayKey(home, userID), 0, -1).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	return withStrays(home, strays), nil
}

// strayKey is the user's list of stray groups, in the home group.
func (s *Store) strayKey(home int, userID string) string { return s.base(home) + "x:" + userID }

// withStrays returns the home group, then the stray groups recorded (hex)
// other than the home.
func withStrays(home int, strays []string) []int {
	gs := []int{home}
	for _, x := range strays {
		if g, err := strconv.ParseUint(x, 16, 8); err == nil && int(g) != home {
			gs = append(gs, int(g))
		}
	}
	return gs
}

// CloseExpired runs the closing script on every group, pipelined, and
// again on the groups that had more than a batch.
func (s *Store) CloseExpired(ctx context.Context, now time.Time, idle time.Duration) ([]string, error) {
	idleBound := ceilMicro(now) - idle.Microseconds()
	nowBound := ceilMicro(now)
	nowMs := max(now.UnixMilli(), time.Now().UnixMilli())
	// Keys of a session closed at its deadline expire as Store.expiry says
	// with the configured idle timeout; the close itself uses idle.
	return s.sweep(ctx, func(g int) call {
		return call{lua.closeExpired, []string{s.base(g)},
			[]any{idleBound, nowBound, idle.Microseconds(), nowMs, s.keep.Milliseconds(), batchSize}}
	}, func(ctx context.Context, res []any) ([]string, bool) {
		ids := strs(res[0])
		refresh, _ := res[1].([]any)
		s.refreshPointers(ctx, refresh)
		return ids, res[2].(int64) == 1
	})
}

// Purge deletes closed sessions group by group, then their token
// pointers, and forgets stray groups that hold no session of their user.
func (s *Store) Purge(ctx context.Context, closedBefore time.Time) ([]string, error) {
	cutoff := ceilMicro(closedBefore)
	ids, err := s.sweep(ctx, func(g int) call {
		return call{lua.purge, []string{s.base(g)}, []any{cutoff, batchSize}}
	}, func(ctx context.Context, res []any) ([]string, bool) {
		ids, toks := strs(res[0]), strs(res[1])
		var calls []call
		for i, tok := range toks {
			if tok != "" {
				calls = append(calls, call{lua.dropToken, []string{s.tokenKey([]byte(tok))}, []any{ids[i]}})
			}
		}
		if len(calls) > 0 {
			if _, err := s.evalMany(ctx, calls); err != nil {
				s.log.Debug("redis store: dropping token pointers", "err", err)
			}
		}
		return ids, res[2].(int64) == 1
	})
	if err != nil {
		return ids, err
	}
	return ids, s.forgetStrays(ctx)
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// sweep runs mk's script on every group, pipelined, then again on the
// groups whose result says there is more, each round bounded by the
// OpTimeout. The ids done before a failure are returned with it.
func (s *Store) sweep(ctx context.Context, mk func(g int) call, done func(context.Context, []any) ([]string, bool)) ([]string, error) {
	todo := make([]int, groups)
	for g := range todo {
		todo[g] = g
	}
	var ids []string
	for len(todo) > 0 {
		// sweepWindow groups at a time, each window bounded by the
		// operation timeout on its own: a window is at most
		// sweepWindow × batchSize sessions, whatever the backlog (a
		// million due sessions took longer than one bound in one round).
		window := todo[:min(len(todo), sweepWindow)]
		todo = todo[len(window):]
		err := func() error {
			ctx, cancel := s.op(ctx)
			defer cancel()
			calls := make([]call, len(window))
			for i, g := range window {
				calls[i] = mk(g)
			}
			cmds, err := s.evalMany(ctx, calls)
			for i, cmd := range cmds {
				res, cerr := cmd.Slice()
				if cerr != nil {
					continue
				}
				got, more := done(ctx, res)
				ids = append(ids, got...)
				if more {
					todo = append(todo, window[i])
				}
			}
			return err
		}()
		if err != nil {
			return ids, s.wrap(err)
		}
	}
	return ids, nil
}

// sweepWindow is how many groups one round of the sweep or the purge
// sends at once.
const sweepWindow = 16

// forgetStrays drops, from every home group, the stray groups that were
// not used for strayMargin and hold no session of their user any more.
func (s *Store) forgetStrays(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	pipe := s.rdb.Pipeline()
	users := make([]*goredis.StringSliceCmd, groups)
	for g := range groups {
		users[g] = pipe.SMembers(ctx, s.base(g)+"xs")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return s.wrap(err)
	}
	type stray struct {
		home, g int
		user    string
		score   float64
	}
	var cands []stray
	old := float64(time.Now().Add(-s.strayMargin).UnixMilli())
	for home, cmd := range users {
		for _, u := range cmd.Val() {
			zs, err := s.rdb.ZRangeWithScores(ctx, s.base(home)+"x:"+u, 0, -1).Result()
			if err != nil {
				return s.wrap(err)
			}
			if len(zs) == 0 {
				s.eval(ctx, lua.unstray, []string{s.base(home)}, u, "", "0")
			}
			for _, z := range zs {
				g, err := strconv.ParseUint(z.Member.(string), 16, 8)
				if err == nil && z.Score < old {
					cands = append(cands, stray{home, int(g), u, z.Score})
				}
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	pipe = s.rdb.Pipeline()
	counts := make([]*goredis.IntCmd, len(cands))
	for i, c := range cands {
		counts[i] = pipe.ZCard(ctx, s.base(c.g)+"u:"+c.user)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return s.wrap(err)
	}
	var calls []call
	for i, c := range cands {
		if counts[i].Val() == 0 {
			calls = append(calls, call{lua.unstray, []string{s.base(c.home)},
				[]any{c.user, fmt.Sprintf("%02x", c.g), strconv.FormatFloat(c.score, 'f', -1, 64)}})
		}
	}
	if len(calls) > 0 {
		_, err := s.evalMany(ctx, calls)
		return s.wrap(err)
	}
	return nil
}

func (s *Store) AddConnStats(ctx context.Context, deltas []sessiond.ConnDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var calls []call
	for _, part := range byGroup(deltas, func(d sessiond.ConnDelta) string { return d.SessionID }) {
		var args []any
		for _, d := range part {
			args = append(args, d.SessionID, d.Service, d.Requests, d.Reads, d.Writes, d.Errors, micro(d.LastUsed))
		}
		calls = append(calls, call{lua.stats, []string{s.base(groupOf(part[0].SessionID))}, args})
	}
	_, err := s.evalMany(ctx, calls)
	return s.wrap(err)
}

func (s *Store) ConnStats(ctx context.Context, sessionID string) ([]sessiond.ConnStat, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, s.base(groupOf(sessionID))+"c:"+sessionID).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	byService := map[string]*sessiond.ConnStat{}
	for f, v := range m {
		svc, what, ok := strings.Cut(f, "\x00")
		if !ok {
			continue
		}
		c := byService[svc]
		if c == nil {
			c = &sessiond.ConnStat{Service: svc}
			byService[svc] = c
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch what {
		case "q":
			c.Requests = n
		case "R":
			c.Reads = n
		case "w":
			c.Writes = n
		case "e":
			c.Errors = n
		case "l":
			if c.LastUsed, err = parseMicro(v); err != nil {
				return nil, sessiond.Internal(err)
			}
		}
	}
	out := make([]sessiond.ConnStat, 0, len(byService))
	for _, c := range byService {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b sessiond.ConnStat) int { return strings.Compare(a.Service, b.Service) })
	return out, nil
}

func (s *Store) CreateAPIKey(ctx context.Context, k *sessiond.APIKey) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.eval(ctx, lua.createKey, []string{s.keysBase()}, k.ID, micro(k.Created), k.Name, string(k.SecretHash), k.Created.UnixMicro()).Int()
	if err != nil {
		return s.wrap(err)
	}
	if n == 0 {
		return conflict("api key " + k.ID + " already exists")
	}
	return nil
}

func (s *Store) GetAPIKey(ctx context.Context, id string) (*sessiond.APIKey, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, s.keysBase()+"key:"+id).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	if len(m) == 0 {
		return nil, notFound("api key", id)
	}
	return decodeKey(id, m)
}

func decodeKey(id string, m map[string]string) (*sessiond.APIKey, error) {
	created, err := parseMicro(m["c"])
	if err != nil {
		return nil, sessiond.Internal(err)
	}
	return &sessiond.APIKey{ID: id, Name: m["n"], SecretHash: []byte(m["s"]), Created: created}, nil
}

func (s *Store) ListAPIKeys(ctx context.Context) ([]*sessiond.APIKey, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	ids, err := s.rdb.ZRange(ctx, s.keysBase()+"keys", 0, -1).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.keysBase()+"key:"+id)
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, s.wrap(err)
		}
	}
	out := []*sessiond.APIKey{}
	for i, id := range ids {
		if len(cmds[i].Val()) == 0 {
			continue
		}
		k, err := decodeKey(id, cmds[i].Val())
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.eval(ctx, lua.deleteKey, []string{s.keysBase()}, id).Int()
	if err != nil {
		return s.wrap(err)
	}
	if n == 0 {
		return notFound("api key", id)
	}
	return nil
}
