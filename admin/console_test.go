package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The console's files are served at / and under /console/, behind the
// admin API's authentication, revalidated by ETag, with a policy that
// allows this origin only; other paths under /console/ are JSON:API 404s.
func TestConsoleFiles(t *testing.T) {
	svc, _ := newService(t, nil)
	h := newHandler(t, svc)
	for _, f := range []struct{ path, ctype, has string }{
		{"/", "text/html; charset=utf-8", `<script src="/console/app.js" defer></script>`},
		{"/console/app.js", "text/javascript; charset=utf-8", "/v1/sessions?"},
		{"/console/app.css", "text/css; charset=utf-8", ".badge.active"},
	} {
		if w := serve(t, h, request{method: "GET", path: f.path, noAuth: true}); w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without credentials: %d %q", f.path, w.Code, w.Header().Get("WWW-Authenticate"))
		}
		w := serve(t, h, request{method: "GET", path: f.path})
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != f.ctype || !strings.Contains(w.Body.String(), f.has) {
			t.Errorf("GET %s: %d %q, body has %q: %v", f.path, w.Code, w.Header().Get("Content-Type"), f.has, strings.Contains(w.Body.String(), f.has))
		}
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") || w.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: policy %q, cache %q", f.path, csp, w.Header().Get("Cache-Control"))
		}
		etag := w.Header().Get("ETag")
		r := httptest.NewRequest("GET", f.path, nil)
		r.SetBasicAuth(testUser, testPassword)
		r.Header.Set("If-None-Match", etag)
		w = httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if etag == "" || w.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: %d", f.path, etag, w.Code)
		}
		if w := serve(t, h, request{method: "HEAD", path: f.path}); w.Code != http.StatusOK {
			t.Errorf("HEAD %s: %d", f.path, w.Code)
		}
		if w := serve(t, h, request{method: "POST", path: f.path}); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d", f.path, w.Code)
		}
	}
	for _, path := range []string{"/console/", "/console/nope.js", "/index.html", "/console/static/app.js"} {
		w := serve(t, h, request{method: "GET", path: path})
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"errors"`) {
			t.Errorf("GET %s: %d %s", path, w.Code, w.Body)
		}
	}
	// The instance keeps its /v1/ route.
	if w := serve(t, h, request{method: "GET", path: "/v1/"}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"instances"`) {
		t.Errorf("GET /v1/: %d %s", w.Code, w.Body)
	}
}
