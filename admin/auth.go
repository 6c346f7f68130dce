package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"sessiond"
)

// DefaultUser is the admin user that exists when the configuration names
// none.
const DefaultUser = "admin"

// PasswordFile is the name, under the data directory, of the file that
// keeps the generated password of DefaultUser.
const PasswordFile = "admin-password"

// Realm is the HTTP Basic realm of the admin listener.
const Realm = "sessiond"

// users holds the admin credentials: each name as its SHA-256 and each
// password as a verifier (the password's SHA-256, or a bcrypt or argon2id
// hash). A value is never changed; SetUsers replaces it whole.
type users struct {
	list    []user
	unknown verifier // spends on an unknown name what a known one costs

	// Slow hashes make every admin request slow, so a verified name and
	// password are remembered for verifiedTTL, keyed by an HMAC of both
	// under a key of this value's own (so that the key held in memory
	// reveals nothing that a fast hash would let one guess from).
	hasSlow bool
	macKey  [32]byte
	mu      sync.Mutex
	cache   map[[sha256.Size]byte]time.Time // HMAC -> until when it is valid
	// slowSem bounds the slow hashes computed at once: each may take tens
	// of MiB (argon2id) and tens of milliseconds.
	slowSem chan struct{}
}

type user struct {
	name [sha256.Size]byte
	pw   verifier
}

// verifiedTTL is how long a verified admin name and password are
// remembered; maxVerified bounds how many are.
const (
	verifiedTTL = time.Minute
	maxVerified = 1024
)

func newUsers(creds map[string]string) (*users, error) {
	u := &users{cache: make(map[[sha256.Size]byte]time.Time), slowSem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
	rand.Read(u.macKey[:])
	for _, name := range slices.Sorted(maps.Keys(creds)) {
		pw := creds[name]
		if name == "" {
			return nil, errors.New("admin: an admin user has an empty name")
		}
		if strings.Contains(name, ":") {
			return nil, fmt.Errorf("admin: admin user %q: a name must not contain ':'", name)
		}
		if pw == "" {
			return nil, fmt.Errorf("admin: admin user %q has an empty password", name)
		}
		v, err := parseVerifier(pw)
		if err != nil {
			return nil, fmt.Errorf("admin: admin user %q: the password %w", name, err)
		}
		if v.slow() && !u.hasSlow {
			u.hasSlow = true
			u.unknown = v.dummy()
		}
		u.list = append(u.list, user{name: sha256.Sum256([]byte(name)), pw: v})
	}
	if u.unknown == nil {
		u.unknown = plainPassword{}.dummy()
	}
	return u, nil
}

// check reports whether name and password belong to an admin user. It
// finds the user by comparing with every name in constant time and then
// verifies the password of that user, or of a dummy user of the same cost
// when none matched, so that its duration tells nothing about which part
// was wrong (unless users mix hash kinds or costs: then an unknown name
// costs what the first hashed user's password costs).
func (u *users) check(ctx context.Context, name, password string) bool {
	var mac [sha256.Size]byte
	if u.hasSlow {
		mac = u.mac(name, password)
		u.mu.Lock()
		until, ok := u.cache[mac]
		u.mu.Unlock()
		if ok && time.Now().Before(until) {
			return true
		}
	}
	n := sha256.Sum256([]byte(name))
	found := 0
	v := u.unknown
	for _, usr := range u.list {
		eq := subtle.ConstantTimeCompare(n[:], usr.name[:])
		found |= eq
		if eq == 1 {
			v = usr.pw
		}
	}
	if v.slow() {
		select {
		case u.slowSem <- struct{}{}:
			defer func() { <-u.slowSem }()
		case <-ctx.Done():
			return false
		}
	}
	ok := v.verify(password) && found == 1
	if ok && u.hasSlow {
		u.mu.Lock()
		if len(u.cache) >= maxVerified {
			clear(u.cache)
		}
		u.cache[mac] = time.Now().Add(verifiedTTL)
		u.mu.Unlock()
	}
	return ok
}

// mac is the cache key of a name and password.
func (u *users) mac(name, password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, u.macKey[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	h.Write(n[:])
	h.Write([]byte(name))
	h.Write([]byte(password))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// authenticate checks the request's HTTP Basic credentials. If they are
// missing or wrong it answers 401 with a challenge and returns false; if
// the client's address has failed too often (the limiter), 429 with
// Retry-After, before the password is verified.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	name, password, ok := r.BasicAuth()
	if !ok {
		writeError(w, r, sessiond.Errorf(sessiond.EUNAUTHORIZED, "this API requires HTTP Basic authentication with an admin user name and password"))
		return false
	}
	if err := s.limiter.Check(r); err != nil {
		writeError(w, r, err)
		return false
	}
	if s.users.Load().check(r.Context(), name, password) {
		return true
	}
	// Logged by the limiter, bounded in rate and length; never the
	// password. The name helps spot guessing.
	s.limiter.Failed(r, name)
	writeError(w, r, sessiond.Errorf(sessiond.EUNAUTHORIZED, "wrong admin user name or password"))
	return false
}

// LoadOrCreatePassword returns the password of DefaultUser when the
// configuration names no admin user (SPEC section 7):
//
//  1. fromEnv (SESSIOND_ADMIN_PASSWORD) when it is not empty;
//  2. else the content of <dataDir>/admin-password when the file exists;
//  3. else a new random password, written atomically to that file with mode
//     0600 and printed once to out (os.Stdout when nil).
func LoadOrCreatePassword(dataDir, fromEnv string, out io.Writer) (string, error) {
	if fromEnv != "" {
		return fromEnv, nil
	}
	if dataDir == "" {
		return "", errors.New("admin: no admin users are configured and there is no data directory to keep a generated password in")
	}
	path := filepath.Join(dataDir, PasswordFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return "", fmt.Errorf("admin: %s is empty: remove it to generate a new password, or set SESSIOND_ADMIN_PASSWORD", path)
		}
		return pw, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("admin: reading the admin password: %w", err)
	}

	pw := sessiond.NewSecret()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("admin: creating the data directory: %w", err)
	}
	if err := writeFileAtomic(path, []byte(pw+"\n")); err != nil {
		return "", fmt.Errorf("admin: storing the admin password: %w", err)
	}
	if out == nil {
		out = os.Stdout
	}
	fmt.Fprintf(out, "sessiond: generated a password for admin user %q: %s\n", DefaultUser, pw)
	fmt.Fprintf(out, "sessiond: it is saved in %s (mode 0600) and will not be shown again; SESSIOND_ADMIN_PASSWORD overrides it\n", path)
	return pw, nil
}

// writeFileAtomic writes data to path with mode 0600 so that path holds
// either nothing or all of data, even across a crash: it writes a temporary
// file beside it, syncs it, renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable. Some file systems cannot sync a directory;
	// the file is in place either way, so this is best effort.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
