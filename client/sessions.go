package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Session is a session as the admin API shows it (SPEC section 7).
type Session struct {
	ID          string          `json:"id"`
	State       string          `json:"state"`
	User        string          `json:"user"`
	UserName    string          `json:"user_name"`
	Client      string          `json:"client"`
	Remote      string          `json:"remote"`
	Connected   time.Time       `json:"connected"`
	LastRequest time.Time       `json:"last_request"`
	Expires     *time.Time      `json:"expires"` // nil: only the idle timeout applies
	Idle        float64         `json:"idle"`    // seconds since the last request
	IOActivity  int             `json:"io_activity"`
	Connections []Connection    `json:"connections"`
	APIKey      string          `json:"api_key"`
	Data        json.RawMessage `json:"data"`
	UserData    json.RawMessage `json:"user_data"`
	// Services are the gateway routes the session used.
	Services []string `json:"services"`
}

// Connection is a session's use of one gateway upstream service.
type Connection struct {
	Server     string `json:"server"`
	State      string `json:"state"`
	Statistics struct {
		Requests int64      `json:"requests"`
		Reads    int64      `json:"reads"`
		Writes   int64      `json:"writes"`
		Errors   int64      `json:"errors"`
		LastUsed *time.Time `json:"last_used"`
	} `json:"statistics"`
}

// SessionFilter selects sessions by equality; empty fields are not set,
// except APIKey, which filters on sessions without a key when APIKeySet.
type SessionFilter struct {
	User, State, Client, Remote string
	APIKey                      string
	APIKeySet                   bool
}

// empty reports whether no filter is set.
func (f SessionFilter) empty() bool {
	return f.User == "" && f.State == "" && f.Client == "" && f.Remote == "" && !f.APIKeySet
}

// query adds the filter's parameters to q.
func (f SessionFilter) query(q url.Values) {
	for name, v := range map[string]string{"user": f.User, "state": f.State, "client": f.Client, "remote": f.Remote} {
		if v != "" {
			q.Set("filter["+name+"]", v)
		}
	}
	if f.APIKeySet {
		q.Set("filter[api_key]", f.APIKey)
	}
}

// SessionPage is one page of a listing.
type SessionPage struct {
	Sessions []Session
	Total    int64 // every match, on every page
	Size     int   // the page size the server used
	Number   int   // the page, from 0
	HasNext  bool
}

// sessionResource is a session as the admin API encodes it.
type sessionResource struct {
	ID            string  `json:"id"`
	Attributes    Session `json:"attributes"`
	Relationships struct {
		Services struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		} `json:"services"`
	} `json:"relationships"`
}

func (r *sessionResource) session() Session {
	s := r.Attributes
	s.ID = r.ID
	s.Services = []string{}
	for _, svc := range r.Relationships.Services.Data {
		s.Services = append(s.Services, svc.ID)
	}
	if s.Connections == nil {
		s.Connections = []Connection{}
	}
	return s
}

// ListSessions returns page number (from 0) of size (0: the server's
// default) of the sessions matching f, newest first, with the total.
func (c *Client) ListSessions(ctx context.Context, f SessionFilter, size, number int) (SessionPage, error) {
	q := url.Values{}
	f.query(q)
	if size > 0 {
		q.Set("page[size]", strconv.Itoa(size))
	}
	q.Set("page[number]", strconv.Itoa(number))
	var doc struct {
		Links struct {
			First, Next string
		} `json:"links"`
		Data []sessionResource `json:"data"`
		Meta struct {
			Total int64 `json:"total"`
		} `json:"meta"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/sessions?"+q.Encode(), nil, &doc); err != nil {
		return SessionPage{}, err
	}
	p := SessionPage{Sessions: make([]Session, 0, len(doc.Data)), Total: doc.Meta.Total, Number: number, Size: size, HasNext: doc.Links.Next != ""}
	if u, err := url.Parse(doc.Links.First); err == nil && p.Size == 0 { // the server's default
		p.Size, _ = strconv.Atoi(u.Query().Get("page[size]"))
	}
	for i := range doc.Data {
		p.Sessions = append(p.Sessions, doc.Data[i].session())
	}
	return p, nil
}

// GetSession returns one session. An unknown id is an *APIError with
// status 404.
func (c *Client) GetSession(ctx context.Context, id string) (Session, error) {
	if id == "" {
		return Session{}, errors.New("a session id is required")
	}
	var doc struct{ Data sessionResource }
	if err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, &doc); err != nil {
		return Session{}, err
	}
	return doc.Data.session(), nil
}

// CloseSession force-closes a session: at once when ttl is 0, else ttl
// from now. Closing a closed session is not an error; an unknown id is an
// *APIError with status 404.
func (c *Client) CloseSession(ctx context.Context, id string, ttl time.Duration) error {
	if id == "" {
		return errors.New("a session id is required")
	}
	path := "/v1/sessions/" + url.PathEscape(id)
	if ttl > 0 {
		path += "?ttl=" + strconv.FormatInt(int64(ttl/time.Second), 10)
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// CloseSessions force-closes every open session matching f, which must
// set at least one filter, and returns how many it closed.
func (c *Client) CloseSessions(ctx context.Context, f SessionFilter) (int, error) {
	if f.empty() {
		return 0, errors.New("closing sessions in bulk needs at least one filter")
	}
	q := url.Values{}
	f.query(q)
	var doc struct {
		Meta struct {
			Closed int `json:"closed"`
		} `json:"meta"`
	}
	if err := c.do(ctx, http.MethodDelete, "/v1/sessions?"+q.Encode(), nil, &doc); err != nil {
		return 0, err
	}
	return doc.Meta.Closed, nil
}

// Instance describes the sessiond instance that answered (GET /v1/).
type Instance struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Store is the store engine's name: embedded, memory, postgres.
	Store string `json:"store"`
	// ActiveSessions counts the active sessions of every instance
	// sharing the store.
	ActiveSessions int64 `json:"active_sessions"`
}

// Instance returns the instance's version, start, store engine and count
// of active sessions.
func (c *Client) Instance(ctx context.Context) (Instance, error) {
	var doc struct {
		Data struct {
			ID         string `json:"id"`
			Attributes struct {
				Version  string    `json:"version"`
				Started  time.Time `json:"started"`
				Store    string    `json:"store"`
				Sessions struct {
					Active int64 `json:"active"`
				} `json:"sessions"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/", nil, &doc); err != nil {
		return Instance{}, err
	}
	a := doc.Data.Attributes
	return Instance{ID: doc.Data.ID, Version: a.Version, Started: a.Started, Store: a.Store, ActiveSessions: a.Sessions.Active}, nil
}
