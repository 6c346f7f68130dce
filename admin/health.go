package admin

import (
	"context"
	"net/http"
	"time"

	"sessiond"
	"sessiond/internal/httpx"
)

// ReadyTimeout bounds how long /health/ready waits for the store.
const ReadyTimeout = 2 * time.Second

// live answers GET /health/live: the process is up and serving.
func (s *server) live(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, "", map[string]string{"status": "ok"})
}

// ready answers GET /health/ready: 200 when the store answers a ping within
// ReadyTimeout, else 503 with a JSON:API error. The store's error goes to
// the log, not to the unauthenticated caller.
func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	if err := s.svc.Store().Ping(ctx); err != nil {
		s.log.Warn("readiness check failed: the store does not answer", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, r, &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "the store does not answer", Err: err})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, "", map[string]string{"status": "ok", "store": "ok"})
}
