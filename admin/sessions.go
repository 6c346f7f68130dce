package admin

import (
	"net/http"
	"strconv"
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
