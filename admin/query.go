package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"sessiond"
)

// Query parameters of the sessions collection (SPEC section 7). The admin
// package only translates them: filtering, ordering, paging and counting
// are the Service's and the store's.

// ignoredParams are sent by MaxScale clients and mean nothing here:
// maxctrl adds sync=false with --skip-sync (maxctrl/lib/common.js,
// getUri) and rdns=true with --rdns (common.js, rDnsOption).
var ignoredParams = []string{"sync", "rdns"}

// filterNames are the attributes a listing filters on, by equality.
var filterNames = []string{"user", "state", "client", "remote", "api_key"}

// listQuery is a parsed listing query.
type listQuery struct {
	filter    sessiond.Filter
	hasFilter bool // whether any filter was given
	size      int  // page[size]
	number    int  // page[number], from 0
	fields    *fieldSet
}

// checkParams refuses parameters other than allowed (plus pretty and the
// ignored ones) and any given more than once.
func checkParams(q url.Values, allowed ...string) error {
	for name, v := range q {
		switch {
		case name == "pretty" || slices.Contains(ignoredParams, name):
		case slices.Contains(allowed, name) || (slices.Contains(allowed, "filter[") && strings.HasPrefix(name, "filter[")):
		default:
			return sessiond.Errorf(sessiond.EINVALID, "unknown query parameter %q; this route takes %s, pretty", name, strings.Join(allowed, ", "))
		}
		if len(v) > 1 && name != "filter" {
			return sessiond.Errorf(sessiond.EINVALID, "query parameter %q is given %d times; give it once", name, len(v))
		}
	}
	return nil
}

// parseFilter reads filter[name]=value and MaxScale's
// filter=/attributes/<name>=<JSON value> (repeatable) into f. It reports
// whether any filter was given.
func parseFilter(q url.Values, f *sessiond.Filter) (bool, error) {
	got := map[string]string{}
	set := func(name, value, given string) error {
		if !slices.Contains(filterNames, name) {
			return sessiond.Errorf(sessiond.EINVALID, "%s: unknown filter %q; filters: %s", given, name, strings.Join(filterNames, ", "))
		}
		if value == "" && name != "api_key" {
			return sessiond.Errorf(sessiond.EINVALID, "%s: the value must not be empty", given)
		}
		if old, ok := got[name]; ok && old != value {
			return sessiond.Errorf(sessiond.EINVALID, "%s: the %s filter is given twice with different values", given, name)
		}
		got[name] = value
		return nil
	}
	for name, v := range q {
		if !strings.HasPrefix(name, "filter[") {
			continue
		}
		attr, ok := strings.CutSuffix(strings.TrimPrefix(name, "filter["), "]")
		if !ok {
			return false, sessiond.Errorf(sessiond.EINVALID, "malformed query parameter %q: want filter[name]", name)
		}
		if err := set(attr, v[0], name); err != nil {
			return false, err
		}
	}
	for _, expr := range q["filter"] {
		// MaxScale's form: a JSON pointer into the resource, "=", a JSON
		// value (maxgui/src/store/modules/session.js sends
		// filter=/relationships/services/data/0/id="name").
		ptr, raw, ok := strings.Cut(expr, "=")
		attr, isAttr := strings.CutPrefix(ptr, "/attributes/")
		if !ok || !isAttr {
			return false, sessiond.Errorf(sessiond.EINVALID, "filter=%s: want filter=/attributes/<name>=<JSON value> with name one of %s", expr, strings.Join(filterNames, ", "))
		}
		var value string
		if err := json.Unmarshal([]byte(raw), &value); err != nil {
			return false, sessiond.Errorf(sessiond.EINVALID, "filter=%s: the value must be a JSON string, such as \"active\"", expr)
		}
		if err := set(attr, value, "filter="+ptr); err != nil {
			return false, err
		}
	}
	for name, value := range got {
		switch name {
		case "user":
			f.UserID = value
		case "state":
			switch value {
			case sessiond.StateActive, sessiond.StateClosed, sessiond.StateExpired:
			default:
				return false, sessiond.Errorf(sessiond.EINVALID, "filter state: want active, closed or expired, got %q", value)
			}
			f.State = value
		case "client":
			f.Client = value
		case "remote":
			f.Address = value
		case "api_key":
			f.APIKeyID = &value
		}
	}
	return len(got) > 0, nil
}

// parsePage reads page[size] (1 to max, default def) and page[number]
// (from 0).
func parsePage(q url.Values, def, max int) (size, number int, err error) {
	size = def
	if v, ok := q["page[size]"]; ok {
		n, perr := strconv.Atoi(v[0])
		if perr != nil || n < 1 || n > max {
			return 0, 0, sessiond.Errorf(sessiond.EINVALID, "page[size] must be a whole number from 1 to %d, got %q", max, v[0])
		}
		size = n
	}
	if v, ok := q["page[number]"]; ok {
		n, perr := strconv.Atoi(v[0])
		// Bounded so that number*size fits any int and any store's offset.
		if perr != nil || n < 0 || n > maxPageNumber {
			return 0, 0, sessiond.Errorf(sessiond.EINVALID, "page[number] must be a whole number from 0 to %d (pages count from 0), got %q", maxPageNumber, v[0])
		}
		number = n
	}
	return size, number, nil
}

// maxPageNumber bounds page[number]: with pages of 1000 that is a skip of
// 10^12, far beyond any store.
const maxPageNumber = 1_000_000_000

// fieldSet is a sparse fieldset (fields[sessions]=a,b); nil means all.
type fieldSet map[string]bool

// parseFields reads fields[typ], whose names must be among known.
func parseFields(q url.Values, typ string, known []string) (*fieldSet, error) {
	v, ok := q["fields["+typ+"]"]
	if !ok {
		return nil, nil
	}
	fs := fieldSet{}
	if v[0] == "" {
		return &fs, nil // JSON:API: an empty list asks for no attributes
	}
	for _, name := range strings.Split(v[0], ",") {
		if !slices.Contains(known, name) {
			return nil, sessiond.Errorf(sessiond.EINVALID, "fields[%s]: unknown field %q; fields: %s", typ, name, strings.Join(known, ", "))
		}
		fs[name] = true
	}
	return &fs, nil
}

// has reports whether the attribute name is kept.
func (fs *fieldSet) has(name string) bool { return fs == nil || (*fs)[name] }

// parseList reads the query of GET /v1/sessions.
func (s *server) parseList(r *http.Request) (*listQuery, error) {
	q := r.URL.Query()
	if err := checkParams(q, "filter[", "filter", "page[size]", "page[number]", "fields[sessions]"); err != nil {
		return nil, err
	}
	lq := &listQuery{}
	var err error
	if lq.hasFilter, err = parseFilter(q, &lq.filter); err != nil {
		return nil, err
	}
	cfg := s.svc.Config()
	if lq.size, lq.number, err = parsePage(q, cfg.DefaultTake, cfg.MaxTake); err != nil {
		return nil, err
	}
	if lq.fields, err = parseFields(q, sessionType, sessionFields); err != nil {
		return nil, err
	}
	return lq, nil
}

// pageLinks returns the collection links of page number of size with
// total items: the request's own query with page[number] (and page[size])
// replaced.
func pageLinks(r *http.Request, path string, size, number int, total int64) *links {
	q := r.URL.Query()
	q.Set("page[size]", strconv.Itoa(size))
	at := func(n int) string {
		q.Set("page[number]", strconv.Itoa(n))
		return selfURL(r, path) + "?" + q.Encode()
	}
	last := 0
	if total > 0 {
		last = int((total - 1) / int64(size))
	}
	l := &links{Self: selfURL(r, path), First: at(0), Last: at(last)}
	if r.URL.RawQuery != "" {
		l.Self += "?" + r.URL.RawQuery
	}
	if number < last {
		l.Next = at(number + 1)
	}
	if number > 0 {
		l.Prev = at(min(number-1, last))
	}
	return l
}
