// Package console serves the admin listener's web console (SPEC section
// 7): a page, a script and a style sheet embedded in the binary, with no
// build step. The console reads and closes sessions through the admin API
// only, with the credentials the browser already sent for the page.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is the path under which the console's assets are served; the
// page itself is served at /.
const Prefix = "/console/"

// file is one embedded asset, read once.
type file struct {
	name, ctype, etag string
	body              []byte
}

// Handler serves the console: "/" the page, Prefix+"app.js" and
// Prefix+"app.css" its assets, anything else under Prefix a 404. The
// caller authenticates requests before they reach it.
type Handler struct {
	files map[string]*file // by request path
}

// New returns the console handler.
func New() *Handler {
	h := &Handler{files: make(map[string]*file)}
	add := func(urlPath, name, ctype string) {
		b, err := fs.ReadFile(static, path.Join("static", name))
		if err != nil {
			panic("console: missing embedded file " + name) // a build mistake, caught by every test
		}
		sum := sha256.Sum256(b)
		h.files[urlPath] = &file{name: name, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, body: b}
	}
	add("/", "index.html", "text/html; charset=utf-8")
	add(Prefix+"app.js", "app.js", "text/javascript; charset=utf-8")
	add(Prefix+"app.css", "app.css", "text/css; charset=utf-8")
	return h
}

// Patterns are the mux patterns of the console's files, for the admin
// router to register (each authenticated like the API).
func (h *Handler) Patterns() []string {
	return []string{"GET /{$}", "GET " + Prefix + "app.js", "GET " + Prefix + "app.css"}
}

// ServeHTTP answers GET and HEAD of the console's files. Each carries an
// ETag and must be revalidated (no-cache), so an upgraded daemon's console
// is picked up at once while an unchanged one costs a 304. The policy
// allows nothing but this origin: no inline script, no other host.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
		"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}
