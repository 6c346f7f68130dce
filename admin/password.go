package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Parameters of the argon2id hashes HashPassword makes: the OWASP
// recommendation for argon2id (19 MiB, 2 passes, 1 lane), 16 bytes of salt
// and a 32-byte key. Verification reads the parameters from each hash.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// HashPassword returns an argon2id hash of password in the PHC string
// format ($argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>), which the
// configuration's admin-users accept in place of the password.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("admin: the password is empty")
	}
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verifier checks a presented password against one configured password.
type verifier interface {
	// verify reports whether password matches, in time that does not
	// depend on how much of it matches.
	verify(password string) bool
	// slow reports whether verify is a deliberately slow hash.
	slow() bool
	// dummy returns a verifier of the same kind and cost that matches no
	// password, to spend the same time on an unknown user name.
	dummy() verifier
}

// parseVerifier reads a configured password: a bcrypt hash ($2a$, $2b$,
// $2y$), an argon2id PHC string ($argon2id$), or else the password itself.
func parseVerifier(pw string) (verifier, error) {
	switch {
	case strings.HasPrefix(pw, "$2a$"), strings.HasPrefix(pw, "$2b$"), strings.HasPrefix(pw, "$2y$"):
		if _, err := bcrypt.Cost([]byte(pw)); err != nil {
			return nil, fmt.Errorf("not a valid bcrypt hash: %v", err)
		}
		return bcryptHash(pw), nil
	case strings.HasPrefix(pw, "$argon2"):
		return parseArgon2id(pw)
	default:
		return plainPassword(sha256.Sum256([]byte(pw))), nil
	}
}

// plainPassword is a password given in clear, kept as its SHA-256 so that
// comparisons take the same time whatever the lengths.
type plainPassword [sha256.Size]byte

func (p plainPassword) verify(password string) bool {
	h := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(h[:], p[:]) == 1
}
func (plainPassword) slow() bool { return false }
func (plainPassword) dummy() verifier {
	var p plainPassword
	rand.Read(p[:])
	return p
}

// bcryptHash is a bcrypt hash. bcrypt compares in constant time.
type bcryptHash string

func (b bcryptHash) verify(password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(b), []byte(password)) == nil
}
func (bcryptHash) slow() bool { return true }
func (b bcryptHash) dummy() verifier {
	cost, _ := bcrypt.Cost([]byte(b))
	h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil { // cannot happen: the cost came from a valid hash
		return b
	}
	return bcryptHash(h)
}

// argon2idHash is a parsed argon2id PHC string.
type argon2idHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parseArgon2id(s string) (verifier, error) {
	bad := func(why string) error {
		return fmt.Errorf("not a valid argon2id hash ($argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, base64 without padding): %s", why)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return nil, bad("wrong number of $-separated fields")
	}
	if parts[1] != "argon2id" {
		return nil, bad("only argon2id is supported, not " + parts[1])
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return nil, bad(fmt.Sprintf("the version must be v=%d", argon2.Version))
	}
	var h argon2idHash
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.memory, &h.time, &threads); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", h.memory, h.time, threads) != parts[3] {
		return nil, bad("the parameters must read m=<KiB>,t=<passes>,p=<lanes>")
	}
	if h.time < 1 || threads < 1 || threads > 255 || h.memory < 8*threads || h.memory > 4<<20 {
		return nil, bad("the parameters are out of range (t >= 1, 1 <= p <= 255, 8*p <= m <= 4 GiB)")
	}
	h.threads = uint8(threads)
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, bad("the salt must be at least 8 bytes in base64")
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 128 {
		return nil, bad("the hash must be 16 to 128 bytes in base64")
	}
	return &h, nil
}

func (h *argon2idHash) verify(password string) bool {
	k := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}
func (*argon2idHash) slow() bool { return true }
func (h *argon2idHash) dummy() verifier {
	d := *h
	d.key = make([]byte, len(h.key))
	rand.Read(d.key)
	return &d
}
