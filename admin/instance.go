package admin

import (
	"fmt"
	"net/http"
	"strings"

	"sessiond"
	"sessiond/internal/httpx"
)

// instanceType is the JSON:API type of the instance resource.
const instanceType = "instances"

// instanceAttributes describe this sessiond instance.
type instanceAttributes struct {
	Version  string           `json:"version"`
	Started  httpx.Time       `json:"started"`
	Store    string           `json:"store"`
	Sessions instanceSessions `json:"sessions"`
}

type instanceSessions struct {
	Active int64 `json:"active"`
}

// storeEngine names an engine from its Go type: *embedded.Store is
// "embedded". Only a fallback: the daemon passes Options.Store.
func storeEngine(st sessiond.Store) string {
	name := strings.TrimPrefix(fmt.Sprintf("%T", st), "*")
	pkg, _, _ := strings.Cut(name, ".")
	return pkg
}

// instance answers GET /v1/: the version, start time and store engine of
// this instance and the count of active sessions (of every instance
// sharing the store), counted by the store.
func (s *server) instance(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	page, err := s.svc.List(r.Context(), sessiond.Filter{State: sessiond.StateActive}, sessiond.Paging{Take: 1, Total: true})
	if err != nil {
		writeError(w, r, err)
		return
	}
	var active int64
	if page.Total != nil {
		active = *page.Total
	}
	writeDoc(w, r, http.StatusOK, &document{
		Links: &links{Self: selfURL(r, "/")},
		Data: &resource{
			ID:   s.instanceID(r),
			Type: instanceType,
			Attributes: instanceAttributes{
				Version:  s.opts.Version,
				Started:  httpx.Time(s.opts.Started),
				Store:    s.opts.Store,
				Sessions: instanceSessions{Active: active},
			},
		},
	})
}

// instanceID names the instance by the host its clients reach it at, as
// MaxScale names itself by its host; "sessiond" when unknown.
func (s *server) instanceID(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return "sessiond"
}
