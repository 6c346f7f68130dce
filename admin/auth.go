package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

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

// users holds the admin credentials as SHA-256 hashes, so that every
// comparison takes the same time whatever the input.
type users struct {
	list []user
}

type user struct {
	name, password [sha256.Size]byte
}

func newUsers(creds map[string]string) (*users, error) {
	u := &users{}
	for name, pw := range creds {
		if name == "" {
			return nil, errors.New("admin: an admin user has an empty name")
		}
		if strings.Contains(name, ":") {
			return nil, fmt.Errorf("admin: admin user %q: a name must not contain ':'", name)
		}
		if pw == "" {
			return nil, fmt.Errorf("admin: admin user %q has an empty password", name)
		}
		u.list = append(u.list, user{name: sha256.Sum256([]byte(name)), password: sha256.Sum256([]byte(pw))})
	}
	return u, nil
}

// check reports whether name and password belong to an admin user. It
// compares with every user, in constant time, so that its duration tells
// nothing about which part was wrong.
func (u *users) check(name, password string) bool {
	n, p := sha256.Sum256([]byte(name)), sha256.Sum256([]byte(password))
	ok := 0
	for _, usr := range u.list {
		ok |= subtle.ConstantTimeCompare(n[:], usr.name[:]) & subtle.ConstantTimeCompare(p[:], usr.password[:])
	}
	return ok == 1
}

// authenticate checks the request's HTTP Basic credentials. If they are
// missing or wrong it answers 401 with a challenge and returns false.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	name, password, ok := r.BasicAuth()
	if ok && s.users.check(name, password) {
		return true
	}
	if !ok {
		writeError(w, r, sessiond.Errorf(sessiond.EUNAUTHORIZED, "this API requires HTTP Basic authentication with an admin user name and password"))
		return false
	}
	// Never log the password; the name helps spot guessing.
	s.log.Info("admin authentication failed", "user", name, "remote", r.RemoteAddr, "path", r.URL.Path)
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
