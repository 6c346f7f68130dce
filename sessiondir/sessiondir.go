// Package sessiondir keeps the session directories of SPEC section 6: one
// private directory per session under <data-dir>/sessions, created on first
// use and removed when the session ends (Dirs.Remove, a Service.OnEnd
// hook), and the quota accounting of what a session stores there (Upload,
// Delete). The files API (api/files) serves them over HTTP; the gateway
// hands their paths to co-located backends.
package sessiondir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"sessiond"
)

// Quota bounds what one session may keep in its directory. Zero fields
// take the defaults.
type Quota struct {
	// MaxBytes bounds the total size of the regular files. Default 100 MiB.
	MaxBytes int64
	// MaxFiles bounds the number of entries: files, directories and
	// symbolic links. Default 1000.
	MaxFiles int
}

// Defaults of Quota.
const (
	DefaultMaxBytes = 100 << 20
	DefaultMaxFiles = 1000
)

func (q Quota) withDefaults() Quota {
	if q.MaxBytes <= 0 {
		q.MaxBytes = DefaultMaxBytes
	}
	if q.MaxFiles <= 0 {
		q.MaxFiles = DefaultMaxFiles
	}
	return q
}

// Dirs keeps the session directories: one private directory per session
// under a root (<data-dir>/sessions), created on first use and removed when
// the session ends. Every access goes through an os.Root, so no path, and
// no symbolic link a backend or client left behind, can lead out of it.
type Dirs struct {
	path      string   // absolute path of the root
	root      *os.Root // the root, opened once
	quota     Quota
	escapeErr error // what os.Root returns for a path leading out of it
	log       *slog.Logger

	mu    sync.Mutex
	known map[string]string // session id -> absolute path, created
	usage map[string]*usage // session id -> quota accounting
}

// NewDirs opens (creating it with mode 0700 if needed) the root of the
// session directories.
func NewDirs(root string, quota Quota) (*Dirs, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("session directories: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("session directories: %w", err)
	}
	// Sessions' files are private: tighten a root made by someone else.
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("session directories: %w", err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("session directories: %w", err)
	}
	// os.Root does not export its "path escapes from parent" error; an
	// absolute path always provokes it, so learn it here to tell a refused
	// symbolic link (400) from a failing disk (500).
	_, probe := r.Stat("/")
	d := &Dirs{
		path:      abs,
		root:      r,
		quota:     quota.withDefaults(),
		escapeErr: errors.Unwrap(probe),
		log:       slog.New(slog.DiscardHandler),
		known:     make(map[string]string),
		usage:     make(map[string]*usage),
	}
	return d, nil
}

// SetLogger sets where Remove and Reconcile report failures. Call it before
// the Dirs is used.
func (d *Dirs) SetLogger(log *slog.Logger) {
	if log != nil {
		d.log = log
	}
}

// Path returns the absolute path of the root.
func (d *Dirs) Path() string { return d.path }

// Quota returns the effective quota.
func (d *Dirs) Quota() Quota { return d.quota }

// Close releases the root.
func (d *Dirs) Close() error { return d.root.Close() }

// ValidSessionID reports whether id can name a session directory:
// 1 to 128 characters of [0-9A-Za-z_-]. Session ids are 32 hex characters.
func ValidSessionID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Ensure creates the session's directory if it does not exist yet and
// returns its absolute path. After the first call it answers from memory.
func (d *Dirs) Ensure(sessionID string) (string, error) {
	if !ValidSessionID(sessionID) {
		return "", sessiond.Errorf(sessiond.EINVALID, "invalid session id for a directory")
	}
	d.mu.Lock()
	p, ok := d.known[sessionID]
	d.mu.Unlock()
	if ok {
		return p, nil
	}
	if err := d.root.Mkdir(sessionID, 0o700); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		st, err := d.root.Lstat(sessionID)
		if err != nil {
			return "", err
		}
		if !st.IsDir() {
			return "", fmt.Errorf("session directory %s exists and is not a directory", sessionID)
		}
	}
	p = filepath.Join(d.path, sessionID)
	d.mu.Lock()
	d.known[sessionID] = p
	d.mu.Unlock()
	return p, nil
}

// IsEscape reports whether err is os.Root refusing a path (a symbolic link,
// say) that leads out of a session directory.
func (d *Dirs) IsEscape(err error) bool {
	return d.escapeErr != nil && errors.Is(err, d.escapeErr)
}

// Open ensures the session's directory and opens it as a root of its own,
// never through a symbolic link put in its place. The caller closes it.
func (d *Dirs) Open(sessionID string) (*os.Root, error) {
	if _, err := d.Ensure(sessionID); err != nil {
		return nil, err
	}
	r, err := d.openOwn(sessionID)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed behind our back (by an operator, say): make it again.
		d.forget(sessionID)
		if _, err := d.Ensure(sessionID); err != nil {
			return nil, err
		}
		r, err = d.openOwn(sessionID)
	}
	return r, err
}

// errNotOwnDir is why a session directory that is not a directory of its
// own (a symbolic link, to another session's directory say) is refused.
var errNotOwnDir = errors.New("is not a directory of its own (replaced by a link?)")

// openOwn opens the session's directory itself, never what a symbolic link
// in its place points to: os.Root follows links that stay inside the root,
// and a link from one session's name to another session's directory does.
// The directory opened must be the very one Lstat saw under the name (same
// device and inode), so swapping a link in between is caught as well.
func (d *Dirs) openOwn(sessionID string) (*os.Root, error) {
	st, err := d.root.Lstat(sessionID)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("session directory %s %w", sessionID, errNotOwnDir)
	}
	r, err := d.root.OpenRoot(sessionID)
	if err != nil {
		return nil, err
	}
	opened, err := r.Stat(".")
	if err != nil {
		r.Close()
		return nil, err
	}
	if !os.SameFile(st, opened) {
		r.Close()
		return nil, fmt.Errorf("session directory %s %w", sessionID, errNotOwnDir)
	}
	return r, nil
}

func (d *Dirs) forget(sessionID string) {
	d.mu.Lock()
	delete(d.known, sessionID)
	delete(d.usage, sessionID)
	d.mu.Unlock()
}

// Remove removes the directories of the sessions, with everything in them.
// Its signature suits Service.OnEnd. Failures are logged.
func (d *Dirs) Remove(ids []string) {
	for _, id := range ids {
		if !ValidSessionID(id) {
			continue
		}
		d.forget(id)
		if err := d.root.RemoveAll(id); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Error("removing a session directory", "session_id", id, "err", err)
		}
	}
}

// SessionGetter reads a session; *sessiond.Service implements it.
type SessionGetter interface {
	Get(ctx context.Context, id string) (*sessiond.Session, error)
}

// Reconcile removes the directories of sessions that are no longer alive:
// deleted, closed or expired while the daemon was not running to see it.
// Run it at start (and, if wished, now and then). Entries whose names are
// not session ids are left alone. It returns the errors of sessions it
// could not judge (the store failing) or directories it could not remove.
func (d *Dirs) Reconcile(ctx context.Context, svc SessionGetter) error {
	entries, err := fs.ReadDir(d.root.FS(), ".")
	if err != nil {
		return fmt.Errorf("reading session directories: %w", err)
	}
	var errs []error
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := e.Name()
		if !e.IsDir() || !ValidSessionID(id) {
			continue
		}
		sess, err := svc.Get(ctx, id)
		switch {
		case sessiond.IsNotFound(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("session %s: %w", id, err))
			continue
		case sess.Active:
			continue
		}
		d.forget(id)
		if err := d.root.RemoveAll(id); err != nil {
			errs = append(errs, fmt.Errorf("removing session directory %s: %w", id, err))
			continue
		}
		removed++
	}
	if removed > 0 {
		d.log.Info("removed directories of ended sessions", "count", removed)
	}
	return errors.Join(errs...)
}

// usage is the quota accounting of one session. bytes and entries are what
// the directory holds (walked at the start of each upload, then kept up to
// date by this API); pendingBytes and pendingEntries are what uploads in
// progress have written to their temporary files or will add when they
// finish. Every check and change happens under mu.
type usage struct {
	mu             sync.Mutex
	bytes          int64
	entries        int
	pendingBytes   int64
	pendingEntries int
}

func (d *Dirs) usageOf(sessionID string) *usage {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.usage[sessionID]
	if u == nil {
		u = &usage{}
		d.usage[sessionID] = u
	}
	return u
}

// errStopWalk ends a walk that has already seen more entries than allowed.
var errStopWalk = errors.New("stop")

// measure walks the session directory and sets u.bytes and u.entries,
// skipping uploads in progress. Symbolic links count as entries and are
// not followed. It stops early once the entry quota is exceeded.
func (u *usage) measure(root *os.Root, maxEntries int) error {
	var bytes int64
	entries := 0
	err := fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // vanished meanwhile (a backend at work): not ours to count
		}
		if p == "." {
			return nil
		}
		if IsTemp(e.Name()) {
			return nil
		}
		entries++
		if entries > maxEntries {
			return errStopWalk
		}
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				bytes += info.Size()
			}
		}
		return nil
	})
	if err != nil && err != errStopWalk {
		return err
	}
	u.bytes, u.entries = bytes, entries
	return nil
}

// TempPrefix starts the names of uploads in progress. Clients must not be
// able to name such files, and listings and quota walks skip them.
const TempPrefix = ".sessiond-upload-"

// IsTemp reports whether name is that of an upload in progress.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }
