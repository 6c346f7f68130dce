package sessiond

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// ErrUnchanged, returned by an UpdateFunc, tells the engine to store nothing
// and return the session as it is, with a nil error.
var ErrUnchanged = errors.New("unchanged")

// NewID returns a fresh session or key id: 128 random bits as 32 lowercase
// hex characters.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b[:])
}

// NewSecret returns a fresh bearer secret (session token or API key secret)
// of 130 random bits.
func NewSecret() string { return rand.Text() }

// HashSecret returns the SHA-256 of a bearer secret, the only form in which
// secrets are stored. Secrets carry at least 128 random bits, so a fast hash
// is enough: there is nothing to brute-force.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// SecretMatches compares a presented secret with a stored hash in constant
// time.
func SecretMatches(secret string, hash []byte) bool {
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], hash) == 1
}

func containsFold(needle string, hay ...string) bool {
	n := strings.ToLower(needle)
	for _, h := range hay {
		if strings.Contains(strings.ToLower(h), n) {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
