package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"sessiond"
	"sessiond/internal/httpx"
)

// maxCloseTTL bounds DELETE /v1/sessions/{id}?ttl=N: a day.
const maxCloseTTL = 24 * 60 * 60

// closeSession answers DELETE /v1/sessions/{id}: it force-closes the
// session (its token stops working at once, on every instance), or with
// ?ttl=N (seconds) makes it end N seconds from now. 204 either way; an
// unknown id is a JSON:API 404, a closed session a 204 that changes
// nothing.
func (s *server) closeSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	var err error
	if v, ok := q["ttl"]; ok {
		n, perr := strconv.Atoi(v[0])
		if perr != nil || n < 0 || n > maxCloseTTL || len(v) > 1 {
			writeStatusError(w, r, http.StatusBadRequest, "ttl must be one whole number of seconds from 0 to "+strconv.Itoa(maxCloseTTL))
			return
		}
		_, err = s.svc.CloseAfter(r.Context(), id, time.Duration(n)*time.Second, sessiond.ReasonForced)
	} else {
		_, err = s.svc.CloseSession(r.Context(), id, sessiond.ReasonForced)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.Logger(r.Context()).Info("session force-closed", "session_id", id, "ttl", q.Get("ttl"))
	w.WriteHeader(http.StatusNoContent)
}

// sessionType is the JSON:API type of sessions; connectionType of a
// session's gateway connections; serviceType of the gateway routes.
const (
	sessionType    = "sessions"
	connectionType = "connections"
	serviceType    = "services"
)

// sessionFields are the attributes of a session, in the order they are
// written (SPEC section 7). memory is not in the SPEC's table: MaxGUI's
// sessions table renders attributes.memory.total and fails on a missing
// object (maxgui/src/components/SessionsTable/MemoryCell.vue, prop data
// required Object; maxctrl list.js reads attributes.memory.total too).
var sessionFields = []string{
	"state", "user", "user_name", "client", "remote", "connected", "last_request", "expires",
	"idle", "io_activity", "connections", "api_key", "data", "user_data", "memory",
}

// connectionAttributes are the attributes of one gateway connection:
// the session's use of one upstream service.
type connectionAttributes struct {
	Server     string              `json:"server"`
	State      string              `json:"state"`
	Statistics connectionStatistic `json:"statistics"`
}

type connectionStatistic struct {
	Requests int64      `json:"requests"`
	Reads    int64      `json:"reads"`
	Writes   int64      `json:"writes"`
	Errors   int64      `json:"errors"`
	LastUsed httpx.Time `json:"last_used"`
}

// connectionState is the state of a session's connections: "active"
// while the session may still use them, else "closed".
func connectionState(active bool) string {
	if active {
		return "active"
	}
	return "closed"
}

func connections(stats []sessiond.ConnStat, active bool) []connectionAttributes {
	out := make([]connectionAttributes, 0, len(stats))
	for _, c := range stats {
		out = append(out, connectionAttributes{
			Server: c.Service,
			State:  connectionState(active),
			Statistics: connectionStatistic{Requests: c.Requests, Reads: c.Reads, Writes: c.Writes,
				Errors: c.Errors, LastUsed: httpx.Time(c.LastUsed)},
		})
	}
	return out
}

// relationship is a to-many JSON:API relationship.
type relationship struct {
	Data []relRef `json:"data"`
}

type relRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// attrs is a JSON object whose members are written in order.
type attrs []attr

type attr struct {
	name  string
	value any
}

func (a attrs) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, m := range a {
		if i > 0 {
			b = append(b, ',')
		}
		b = httpx.AppendString(b, m.name)
		b = append(b, ':')
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

func sessionPath(id string) string { return "/sessions/" + url.PathEscape(id) }

// rawOrNull returns a JSON value as is; nil is null.
func rawOrNull(v json.RawMessage) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	return v
}

// sessionResource is the resource object of sess, with its gateway
// statistics, keeping only the attributes of fs.
func (s *server) sessionResource(r *http.Request, sess *sessiond.Session, stats []sessiond.ConnStat, fs *fieldSet) *resource {
	now := s.svc.Now()
	state := sess.State(now, s.svc.Config().IdleTimeout)
	services := relationship{Data: make([]relRef, 0, len(stats))}
	for _, c := range stats {
		services.Data = append(services.Data, relRef{ID: c.Service, Type: serviceType})
	}
	idle := max(now.Sub(sess.RequestTime), 0).Seconds()
	all := attrs{
		{"state", state},
		{"user", sess.UserID},
		{"user_name", sess.UserName},
		{"client", sess.Client},
		{"remote", sess.Address},
		{"connected", httpx.Time(sess.OpenTime)},
		{"last_request", httpx.Time(sess.RequestTime)},
		{"expires", httpx.Time(sess.ExpireTime)},
		{"idle", math.Round(idle*1000) / 1000},
		{"io_activity", s.svc.IOActivity(sess.ID)},
		{"connections", connections(stats, state == sessiond.StateActive)},
		{"api_key", sess.APIKeyID},
		{"data", rawOrNull(sess.Data)},
		{"user_data", rawOrNull(sess.User)},
		{"memory", map[string]int{"total": len(sess.Data) + len(sess.User)}},
	}
	kept := all
	if fs != nil {
		kept = make(attrs, 0, len(*fs))
		for _, a := range all {
			if fs.has(a.name) {
				kept = append(kept, a)
			}
		}
	}
	return &resource{
		ID:            sess.ID,
		Type:          sessionType,
		Attributes:    kept,
		Relationships: map[string]relationship{"services": services},
		Links:         &links{Self: selfURL(r, sessionPath(sess.ID))},
	}
}

// statsParallel bounds the concurrent reads of gateway statistics while
// a page is built.
const statsParallel = 8

// connStats reads the gateway statistics of each session, a few at once.
func (s *server) connStats(ctx context.Context, page []*sessiond.Session) ([][]sessiond.ConnStat, error) {
	out := make([][]sessiond.ConnStat, len(page))
	errs := make([]error, len(page))
	sem := make(chan struct{}, statsParallel)
	var wg sync.WaitGroup
	for i, sess := range page {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = s.svc.Connections(ctx, sess.ID)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// listSessions answers GET /v1/sessions: a page of sessions, newest first,
// with links to the other pages and meta.total.
func (s *server) listSessions(w http.ResponseWriter, r *http.Request) {
	lq, err := s.parseList(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The page is read in chunks and each is encoded before the next is
	// read, so that only the encoded page is held whole.
	var total int64
	var data bytes.Buffer
	data.WriteByte('[')
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false) // as writeDoc
	n := 0
	p := sessiond.Paging{Skip: lq.number * lq.size, Take: lq.size, Total: true}
	err = s.svc.ListChunks(r.Context(), lq.filter, p, func(page *sessiond.Page) error {
		if page.Total != nil {
			total = *page.Total
		}
		stats, err := s.connStats(r.Context(), page.Data)
		if err != nil {
			return err
		}
		for i, sess := range page.Data {
			if n > 0 {
				data.WriteByte(',')
			}
			if err := enc.Encode(s.sessionResource(r, sess, stats[i], lq.fields)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	data.WriteByte(']')
	writeDoc(w, r, http.StatusOK, &document{
		Links: pageLinks(r, "/sessions", lq.size, lq.number, total),
		Data:  json.RawMessage(data.Bytes()),
		Meta:  map[string]any{"total": total},
	})
}

// getSession answers GET /v1/sessions/{id}.
func (s *server) getSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := checkParams(q, "fields[sessions]"); err != nil {
		writeError(w, r, err)
		return
	}
	fs, err := parseFields(q, sessionType, sessionFields)
	if err != nil {
		writeError(w, r, err)
		return
	}
	sess, err := s.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	stats, err := s.svc.Connections(r.Context(), sess.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	res := s.sessionResource(r, sess, stats, fs)
	writeDoc(w, r, http.StatusOK, &document{Links: &links{Self: res.Links.Self}, Data: res})
}

// listConnections answers GET /v1/sessions/{id}/connections: the
// session's gateway connections, one per upstream service it used.
func (s *server) listConnections(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	sess, err := s.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	stats, err := s.svc.Connections(r.Context(), sess.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	active := sess.State(s.svc.Now(), s.svc.Config().IdleTimeout) == sessiond.StateActive
	data := make([]*resource, 0, len(stats))
	for _, c := range connections(stats, active) {
		data = append(data, &resource{ID: c.Server, Type: connectionType, Attributes: c})
	}
	writeDoc(w, r, http.StatusOK, &document{
		Links: &links{Self: selfURL(r, sessionPath(sess.ID)+"/connections")},
		Data:  data,
		Meta:  map[string]any{"total": len(data)},
	})
}

// closeChunk is how many sessions a bulk close reads at once.
const closeChunk = 500

// closeSessions answers DELETE /v1/sessions?filter[...]: it force-closes
// every open session matching the filters, opened before the request,
// reading them a chunk at a time, and answers how many it closed. At
// least one filter is required, so that no slip closes every session.
func (s *server) closeSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := checkParams(q, "filter[", "filter"); err != nil {
		writeError(w, r, err)
		return
	}
	var f sessiond.Filter
	has, err := parseFilter(q, &f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !has {
		writeError(w, r, sessiond.Errorf(sessiond.EINVALID,
			"closing sessions in bulk needs at least one filter (filter[user], filter[state], filter[client], filter[remote], filter[api_key]); to close one, DELETE /v1/sessions/{id}"))
		return
	}
	alive := true
	f.Active = &alive
	f.ToTime = s.svc.Now() // sessions opened meanwhile are not chased
	closed := 0
	for {
		page, err := s.svc.List(r.Context(), f, sessiond.Paging{Take: closeChunk})
		if err != nil {
			writeError(w, r, err)
			return
		}
		before := closed
		for _, sess := range page.Data {
			got, err := s.svc.CloseSession(r.Context(), sess.ID, sessiond.ReasonForced)
			switch {
			case sessiond.IsNotFound(err): // deleted meanwhile
			case err != nil:
				httpx.Logger(r.Context()).Info("sessions force-closed before an error", "closed", closed)
				writeError(w, r, err)
				return
			case got.CloseReason == sessiond.ReasonForced:
				closed++
			}
		}
		// Each session read is now closed, so it left the filter's
		// match: the next chunk is again the first page.
		// A full chunk of which none was closed (each died meanwhile, or
		// the store disagrees with the filter) ends the loop: it must
		// not spin.
		if len(page.Data) < closeChunk || closed == before {
			break
		}
	}
	httpx.Logger(r.Context()).Info("sessions force-closed in bulk", "closed", closed, "filter", r.URL.RawQuery)
	writeDoc(w, r, http.StatusOK, &document{Meta: map[string]any{"closed": closed}})
}
