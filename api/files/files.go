// Package files is the session directories API of SPEC section 6: each
// session has a private directory under <data-dir>/sessions, which clients
// reach with the session's token at /api/v1/session/files/{path...}
// (PUT writes a file, GET reads a file or lists a directory, DELETE removes
// one) and co-located backends reach on disk through the gateway's
// Xdata-Session-Dir header.
//
// Every path is confined to the session's directory by cleanPath (which
// refuses "..", encoded slashes, absolute paths, NUL bytes, backslashes)
// and by os.Root (which refuses symbolic links that lead out); the session
// directory itself is opened without following a link (sessiondir.Dirs.Open).
// Listings are bounded and paged (list), and a refused upload still gets
// its answer to the client (refuse). Errors use the section 6 dialect of
// internal/gwerr, shared with the gateway.
package files

import (
	"bufio"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sessiond"
	"sessiond/internal/auth"
	"sessiond/internal/gwerr"
	"sessiond/internal/httpx"
	"sessiond/sessiondir"
)

// DefaultPrefix is where the API is mounted.
const DefaultPrefix = "/api/v1/session/files/"

// Options configure the handler. Zero values take the defaults.
type Options struct {
	// Headers names the credential headers.
	Headers auth.Headers
	// Prefix is the path the handler is mounted at. Default DefaultPrefix.
	Prefix string
	// MaxList is the most entries one directory listing answers (more
	// come page by page). Default: the quota's MaxFiles, at most
	// DefaultMaxList: a directory within its quota lists in one answer.
	MaxList int
	// Limiter slows down repeated authentication failures per source
	// (429); nil limits nothing.
	Limiter *auth.Limiter
}

// DefaultMaxList caps the default of Options.MaxList.
const DefaultMaxList = 10_000

// Handler serves the session files API.
type Handler struct {
	svc     *sessiond.Service
	dirs    *sessiondir.Dirs
	hdr     auth.Headers
	prefix  string
	maxList int

	limiter *auth.Limiter // nil: no limit
}

// New returns the handler of the session files API. Mount it at
// opts.Prefix (and, to answer the bare prefix without its slash, at the
// prefix without it).
func New(svc *sessiond.Service, dirs *sessiondir.Dirs, opts Options) *Handler {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.MaxList <= 0 {
		opts.MaxList = min(dirs.Quota().MaxFiles, DefaultMaxList)
	}
	return &Handler{svc: svc, dirs: dirs, hdr: opts.Headers.WithDefaults(), prefix: opts.Prefix, maxList: opts.MaxList, limiter: opts.Limiter}
}

// Entry describes a file or directory, in listings and in PUT answers.
type Entry struct {
	Name     string     `json:"name"`
	Size     int64      `json:"size"`
	Dir      bool       `json:"dir"`
	Modified httpx.Time `json:"modified"`
}

const allowed = "GET, HEAD, PUT, DELETE"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
	default:
		gwerr.WriteMethodNotAllowed(w, allowed)
		return
	}
	sess, err := h.authenticate(r)
	if err != nil {
		refuse(w, r, err)
		return
	}
	rel, isDir, err := h.path(r)
	if err != nil {
		refuse(w, r, err)
		return
	}
	// A body announced larger than the whole quota is refused before
	// anything else, and before it is asked for (no 100 Continue).
	if r.Method == http.MethodPut {
		if err := h.dirs.CheckLength(r.ContentLength); err != nil {
			refuse(w, r, err)
			return
		}
	}
	root, err := h.dirs.Open(sess.ID)
	if err != nil {
		refuse(w, r, sessiond.Internal(fmt.Errorf("opening the directory of session %s: %w", sess.ID, err)))
		return
	}
	defer root.Close()
	switch r.Method {
	case http.MethodPut:
		err = h.put(w, r, root, sess.ID, rel, isDir)
	case http.MethodDelete:
		err = h.delete(w, root, sess.ID, rel)
	default:
		err = h.get(w, r, root, rel)
	}
	if err != nil {
		refuse(w, r, h.fsError(err))
	}
}

// Bounds of what refuse reads of a refused request's body.
const (
	drainBytes = 64 << 20
	drainTime  = 5 * time.Second
)

// refuse answers err. When the request has a body that may still be on its
// way (an upload refused early, or cut off by the quota), it answers first,
// with Connection: close, and then reads and discards what the client goes
// on sending, up to drainBytes and drainTime: a client that sends its
// whole body before it reads the answer then still gets the answer,
// instead of a connection reset that would lose it. Once the answer is
// out, reading the body no longer sends a 100 Continue, so a client
// waiting for one sends nothing and just reads the answer.
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	// HTTP/2 ends a refused stream on its own without losing the answer.
	if r.ProtoMajor != 1 || r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		gwerr.WriteError(w, r, err)
		return
	}
	// Without full duplex the server would read (some of) the rest of the
	// body itself before answering, or give up on it and close.
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	w.Header().Set("Connection", "close")
	gwerr.WriteError(w, r, err)
	if rc.Flush() != nil || rc.SetReadDeadline(time.Now().Add(drainTime)) != nil {
		return
	}
	io.CopyN(io.Discard, r.Body, drainBytes)
}

// path returns the path of the request relative to the session directory.
// It reads the escaped form of the URL, so that encoded dots and slashes
// are seen for what they are.
func (h *Handler) path(r *http.Request) (rel string, isDir bool, err error) {
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, h.prefix):
		return cleanPath(p[len(h.prefix):])
	case p == strings.TrimSuffix(h.prefix, "/"):
		return ".", true, nil
	default:
		// The prefix itself was encoded strangely, or the handler is
		// mounted somewhere else: no file of ours is there.
		return "", false, sessiond.Errorf(sessiond.ENOTFOUND, "not a session files path")
	}
}

// authenticate accepts only a session token: the files belong to a
// session, and APIKey/Secret name none.
func (h *Handler) authenticate(r *http.Request) (*sessiond.Session, error) {
	c := h.hdr.Credentials(r)
	if c.Token == "" {
		return nil, sessiond.Errorf(sessiond.EUNAUTHORIZED,
			"a session token is required (%s header or Authorization: Bearer)", h.hdr.Token)
	}
	caller, err := h.limiter.Authenticate(r, h.svc, sessiond.Credentials{Token: c.Token}) // touches the session
	if err != nil {
		return nil, err
	}
	if caller.Session == nil {
		return nil, sessiond.Errorf(sessiond.EUNAUTHORIZED, "a session token is required")
	}
	return caller.Session, nil
}

// ---- GET and HEAD ----

func (h *Handler) get(w http.ResponseWriter, r *http.Request, root *os.Root, rel string) error {
	// O_NONBLOCK: a FIFO left by a backend must not hang the request.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return h.list(w, r, f)
	}
	if !st.Mode().IsRegular() {
		return sessiond.Errorf(sessiond.EINVALID, "%s is not a regular file", rel)
	}
	// Never let a browser run what a client stored: serve bytes, not pages.
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hdr.Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", st.ModTime(), f) // Range, conditional requests, HEAD
	return nil
}

// list answers a directory listing: a JSON array of the entries whose
// names sort after the "after" query parameter (all, without it), sorted by
// name, at most h.maxList of them. When more follow, a Link header points
// at the next page (rel="next", with after= the last name listed).
//
// Memory stays bounded by h.maxList however large the directory: its
// entries are read in batches, only the maxList smallest names are kept
// (a max-heap), and the answer is written out entry by entry.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, dir *os.File) error {
	after := r.URL.Query().Get("after")
	keep := &nameHeap{}
	more := false
	for {
		batch, err := dir.ReadDir(listBatch)
		for _, de := range batch {
			name := de.Name()
			if sessiondir.IsTemp(name) || (after != "" && name <= after) {
				continue
			}
			switch {
			case len(*keep) < h.maxList:
				heap.Push(keep, de)
			case name < (*keep)[0].Name():
				(*keep)[0] = de
				heap.Fix(keep, 0)
				more = true
			default:
				more = true
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	des := []fs.DirEntry(*keep)
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })

	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	if more {
		next := url.Values{"after": {des[len(des)-1].Name()}}
		hdr.Set("Link", "<"+r.URL.EscapedPath()+"?"+next.Encode()+`>; rel="next"`)
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 8<<10)
	b := make([]byte, 0, 512)
	b = append(b, '[')
	first := true
	for _, de := range des {
		info, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = entryOf(de.Name(), info).AppendJSON(b)
		if _, err := bw.Write(b); err != nil {
			return nil // the client left; nothing more to answer
		}
		b = b[:0]
	}
	b = append(b, ']', '\n')
	bw.Write(b)
	bw.Flush()
	return nil
}

// listBatch is how many directory entries list reads at a time.
const listBatch = 256

// nameHeap is a max-heap of directory entries by name: its root is the
// largest name kept, the first to give way to a smaller one.
type nameHeap []fs.DirEntry

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i].Name() > h[j].Name() }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(fs.DirEntry)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// AppendJSON appends e as JSON, as encoding/json would write it.
func (e Entry) AppendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = httpx.AppendString(b, e.Name)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, `,"dir":`...)
	b = strconv.AppendBool(b, e.Dir)
	b = append(b, `,"modified":`...)
	b = httpx.AppendTime(b, time.Time(e.Modified))
	return append(b, '}')
}

func entryOf(name string, info fs.FileInfo) Entry {
	e := Entry{Name: name, Dir: info.IsDir(), Modified: httpx.Time(info.ModTime().UTC().Truncate(time.Millisecond))}
	if info.Mode().IsRegular() {
		e.Size = info.Size()
	}
	return e
}

// ---- DELETE ----

func (h *Handler) delete(w http.ResponseWriter, root *os.Root, sessionID, rel string) error {
	if rel == "." {
		return sessiond.Errorf(sessiond.EINVALID, "the session directory itself cannot be deleted")
	}
	if err := h.dirs.Delete(root, sessionID, rel); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- PUT ----

// put streams the body into the session directory within the quota
// (sessiondir.Upload) and answers the entry written.
func (h *Handler) put(w http.ResponseWriter, r *http.Request, root *os.Root, sessionID, rel string, isDir bool) error {
	if isDir {
		return sessiond.Errorf(sessiond.EINVALID, "PUT needs a file path, not a directory")
	}
	up, err := h.dirs.BeginUpload(root, sessionID, rel, r.ContentLength)
	if err != nil {
		return err
	}
	defer up.Abort() // does nothing once committed
	if err := up.Write(r.Body); err != nil {
		return err
	}
	created, info, err := up.Commit()
	if err != nil {
		return err
	}
	entry := Entry{Name: path.Base(rel), Size: up.Written()}
	if info != nil {
		entry = entryOf(path.Base(rel), info)
	}
	if created {
		w.Header().Set("Location", r.URL.EscapedPath())
		httpx.WriteJSON(w, http.StatusCreated, "", entry)
	} else {
		httpx.WriteJSON(w, http.StatusOK, "", entry)
	}
	return nil
}

// fsError turns a file system error into a sessiond error; paths in it are
// relative to the session directory, so the message may be shown.
func (h *Handler) fsError(err error) error {
	var se *sessiond.Error
	if errors.As(err, &se) {
		return err
	}
	name := ""
	var pe *fs.PathError
	if errors.As(err, &pe) {
		name = pe.Path
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		name = le.New
	}
	switch {
	case h.dirs.IsEscape(err):
		return sessiond.Errorf(sessiond.EINVALID, "%s leads out of the session directory", name)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return sessiond.Errorf(sessiond.ENOTFOUND, "no such file: %s", name)
	case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
		return sessiond.Errorf(sessiond.ECONFLICT, "%s is a directory that is not empty", name)
	case errors.Is(err, syscall.EISDIR):
		return sessiond.Errorf(sessiond.ECONFLICT, "%s is a directory", name)
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.EINVAL):
		return sessiond.Errorf(sessiond.EINVALID, "%s cannot be used: %v", name, errors.Unwrap(err))
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// The server's fault, not the request's: 503, and the quota
		// still tells the client what it may store.
		return &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "the server's disk is full: try again later", Err: err}
	}
	return sessiond.Internal(err)
}
