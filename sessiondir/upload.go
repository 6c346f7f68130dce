package sessiondir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"

	"sessiond"
)

// CheckLength refuses, before anything is written, an upload announced
// larger than the whole byte quota.
func (d *Dirs) CheckLength(contentLength int64) error {
	if contentLength > d.quota.MaxBytes {
		return quotaBytes(d.quota)
	}
	return nil
}

// Delete removes the file or empty directory rel of the session directory
// root (opened with Open) and settles the session's quota accounting.
func (d *Dirs) Delete(root *os.Root, sessionID, rel string) error {
	u := d.usageOf(sessionID)
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := root.Lstat(rel)
	if err != nil {
		return err
	}
	if err := root.Remove(rel); err != nil {
		return err
	}
	if st.Mode().IsRegular() {
		u.bytes = max(u.bytes-st.Size(), 0)
	}
	u.entries = max(u.entries-1, 0)
	return nil
}

// Upload is one file being written into a session directory within the
// session's quota: into a temporary file beside the target, renamed over
// it by Commit. A failed or refused upload (Abort) leaves nothing behind:
// neither the temporary file nor the parent directories it created.
type Upload struct {
	root *os.Root
	u    *usage
	q    Quota
	rel  string

	created  []string // parent directories it made, outermost first
	newEntry int      // 1 if the target did not exist when planned
	credit   int64    // size of the file it replaces
	tmp      string   // temporary file, once created
	f        *os.File // the temporary file, open until Write's end
	written  int64    // bytes in tmp
	done     bool     // committed or aborted
}

// BeginUpload checks the quota for an upload of rel (contentLength bytes,
// or unknown if not positive) into the session directory root (opened
// with Open), creates the missing parent directories, reserves the
// target's entry and creates the temporary file. Every Upload ends with
// Commit or Abort (Abort after Commit does nothing).
func (d *Dirs) BeginUpload(root *os.Root, sessionID, rel string, contentLength int64) (*Upload, error) {
	up, err := d.plan(root, d.usageOf(sessionID), rel, contentLength)
	if err != nil {
		return nil, err
	}
	f, tmp, err := createTemp(root, path.Dir(rel))
	if err != nil {
		up.Abort()
		return nil, err
	}
	up.f, up.tmp = f, tmp
	return up, nil
}

// plan checks the quota for the upload, creates the missing parent
// directories and reserves the target's entry.
func (d *Dirs) plan(root *os.Root, u *usage, rel string, contentLength int64) (*Upload, error) {
	q := d.quota
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.measure(root, q.MaxFiles); err != nil {
		return nil, err
	}
	up := &Upload{root: root, u: u, q: q, rel: rel}

	// Which parents are missing? Each must be a directory (a symbolic link
	// to one inside the session directory is fine).
	var missing []string
	if parent := path.Dir(rel); parent != "." {
		elems := strings.Split(parent, "/")
		for i := range elems {
			p := strings.Join(elems[:i+1], "/")
			st, err := root.Stat(p)
			if errors.Is(err, fs.ErrNotExist) {
				missing = elems[i:]
				for j := i; j < len(elems); j++ {
					up.created = append(up.created, strings.Join(elems[:j+1], "/"))
				}
				break
			}
			if err != nil {
				return nil, err
			}
			if !st.IsDir() {
				return nil, sessiond.Errorf(sessiond.ECONFLICT, "%s is a file, not a directory", p)
			}
		}
	}
	st, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		up.newEntry = 1
	case err != nil:
		return nil, err
	case st.IsDir():
		return nil, sessiond.Errorf(sessiond.ECONFLICT, "%s is a directory", rel)
	case st.Mode().IsRegular():
		up.credit = st.Size()
	}

	if u.entries+u.pendingEntries+len(missing)+up.newEntry > q.MaxFiles {
		return nil, quotaFiles(q)
	}
	if contentLength > 0 && u.bytes+u.pendingBytes+contentLength-up.credit > q.MaxBytes {
		return nil, quotaBytes(q)
	}
	if len(missing) > 0 {
		if err := root.MkdirAll(path.Dir(rel), 0o700); err != nil {
			up.created = nil // made nothing we know of
			return nil, err
		}
		u.entries += len(missing)
	}
	u.pendingEntries += up.newEntry
	return up, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// Write copies body into the temporary file while the session's bytes,
// uploads in progress included, stay within the quota, then syncs and
// closes the file. Its errors, in this order: the quota exceeded
// (ETOOLARGE), the disk failing, body failing (EINVALID: the client went
// away or sent a broken body), sync or close failing.
func (up *Upload) Write(body io.Reader) error {
	qw := &quotaWriter{f: up.f, u: up.u, max: up.q.MaxBytes + up.credit, q: up.q}
	buf := copyBufs.Get().(*[]byte)
	_, copyErr := io.CopyBuffer(qw, body, *buf)
	copyBufs.Put(buf)
	up.written = qw.n
	var syncErr error
	if copyErr == nil {
		syncErr = up.f.Sync()
	}
	closeErr := up.f.Close()
	switch {
	case qw.quotaErr != nil:
		return qw.quotaErr
	case qw.writeErr != nil:
		return qw.writeErr
	case copyErr != nil:
		return sessiond.Errorf(sessiond.EINVALID, "reading the request body: %v", copyErr)
	case syncErr != nil:
		return syncErr
	}
	return closeErr
}

// Commit renames the temporary file over the target and settles the
// accounting. It returns whether the target is new, and what Lstat says of
// it now (nil if that failed: the file is in place all the same).
func (up *Upload) Commit() (created bool, info fs.FileInfo, err error) {
	u, root, rel := up.u, up.root, up.rel
	u.mu.Lock()
	defer u.mu.Unlock()
	var replaced int64
	st, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		created = true
	case err != nil:
		return false, nil, err
	case st.IsDir():
		return false, nil, sessiond.Errorf(sessiond.ECONFLICT, "%s is a directory", rel)
	case st.Mode().IsRegular():
		replaced = st.Size()
	}
	if err := root.Rename(up.tmp, rel); err != nil {
		return false, nil, err
	}
	up.done = true
	u.pendingBytes -= up.written
	u.pendingEntries -= up.newEntry
	u.bytes += up.written - replaced
	if created {
		u.entries++
	}
	info, err = root.Lstat(rel)
	if err != nil {
		return created, nil, nil
	}
	return created, info, nil
}

// Written returns how many bytes Write stored.
func (up *Upload) Written() int64 { return up.written }

// Abort removes what a failed upload left and releases its reservations.
// After Commit (or a first Abort) it does nothing.
func (up *Upload) Abort() {
	if up.done {
		return
	}
	up.done = true
	u, root := up.u, up.root
	u.mu.Lock()
	defer u.mu.Unlock()
	if up.tmp != "" {
		root.Remove(up.tmp)
	}
	u.pendingBytes -= up.written
	u.pendingEntries -= up.newEntry
	// Innermost first; a directory another upload has meanwhile put a
	// file in is not empty and stays.
	for i := len(up.created) - 1; i >= 0; i-- {
		if root.Remove(up.created[i]) != nil {
			break
		}
		u.entries = max(u.entries-1, 0)
	}
}

func createTemp(root *os.Root, dir string) (*os.File, string, error) {
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		name := path.Join(dir, TempPrefix+hex.EncodeToString(b[:]))
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", errors.New("could not create a unique temporary file")
}

// quotaWriter writes to the temporary file while the session's bytes,
// uploads in progress included, stay within max.
type quotaWriter struct {
	f        *os.File
	u        *usage
	max      int64
	q        Quota
	n        int64
	quotaErr error
	writeErr error
}

func (w *quotaWriter) Write(p []byte) (int, error) {
	w.u.mu.Lock()
	if w.u.bytes+w.u.pendingBytes+int64(len(p)) > w.max {
		w.u.mu.Unlock()
		w.quotaErr = quotaBytes(w.q)
		return 0, w.quotaErr
	}
	w.u.pendingBytes += int64(len(p))
	w.u.mu.Unlock()
	n, err := w.f.Write(p)
	w.n += int64(n)
	if n < len(p) {
		w.u.mu.Lock()
		w.u.pendingBytes -= int64(len(p) - n)
		w.u.mu.Unlock()
	}
	if err != nil {
		w.writeErr = err
	}
	return n, err
}

func quotaBytes(q Quota) error {
	return &sessiond.Error{Code: sessiond.ETOOLARGE,
		Message: fmt.Sprintf("the session's files would exceed the quota of %d bytes", q.MaxBytes),
		Details: map[string]any{"quota": "bytes", "limit": q.MaxBytes}}
}

func quotaFiles(q Quota) error {
	return &sessiond.Error{Code: sessiond.ETOOLARGE,
		Message: fmt.Sprintf("the session's directory would exceed the quota of %d entries", q.MaxFiles),
		Details: map[string]any{"quota": "files", "limit": q.MaxFiles}}
}
