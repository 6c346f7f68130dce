package sessiond

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"time"
)

// Authentication: credentials to callers, tokens to sessions.

// Credentials are what a client presented.
type Credentials struct {
	Token  string
	APIKey string
	Secret string
}

// Caller is an authenticated client: an API key (tenant), and the session
// when it authenticated with a session token.
type Caller struct {
	APIKeyID string
	Session  *Session // nil when authenticated with APIKey/Secret
}

var errUnauthenticated = Errorf(EUNAUTHORIZED, "missing or invalid credentials")

// ErrWrongCredentials is the cause (Error.Err) of the EUNAUTHORIZED error
// of Authenticate when the credentials match nothing: an unknown API key,
// a wrong secret, or a token of no session. Failure limiters count these
// (errors.Is); missing credentials and the token of a closed or expired
// session are not guesses and are not counted.
var ErrWrongCredentials = errors.New("credentials match no API key or session")

var (
	errWrongSecret = &Error{Code: EUNAUTHORIZED, Message: "missing or invalid credentials", Err: ErrWrongCredentials}
	errWrongToken  = &Error{Code: EUNAUTHORIZED, Message: "invalid, closed or expired session token", Err: ErrWrongCredentials}
)

// Authenticate resolves credentials: a token takes precedence, then
// APIKey/Secret. A token authenticates only while its session is alive and
// its API key exists. The token's session is touched.
func (s *Service) Authenticate(ctx context.Context, c Credentials) (*Caller, error) {
	now := s.clock.Now()
	if c.Token != "" {
		sess, known, err := s.lookupToken(ctx, c.Token, now)
		if err != nil {
			return nil, err
		}
		if !known {
			return nil, errWrongToken
		}
		if sess == nil {
			return nil, Errorf(EUNAUTHORIZED, "invalid, closed or expired session token")
		}
		s.touchAt(sess.ID, now)
		return &Caller{APIKeyID: sess.APIKeyID, Session: sess}, nil
	}
	if c.APIKey == "" {
		return nil, errUnauthenticated
	}
	k, err := s.apiKey(ctx, c.APIKey, now)
	if err != nil {
		return nil, err
	}
	if k == nil {
		// Compare anyway so that unknown and known keys take the same time.
		SecretMatches(c.Secret, make([]byte, 32))
		return nil, errWrongSecret
	}
	if !SecretMatches(c.Secret, k.SecretHash) {
		return nil, errWrongSecret
	}
	return &Caller{APIKeyID: k.ID}, nil
}

// lookupToken returns the alive session of a token whose key (if any)
// still exists at now, or nil, and whether the token is one of a session
// at all (known), alive or not. The session's RequestTime holds this
// instance's pending touches only if they were needed to find it alive
// (applyPending).
func (s *Service) lookupToken(ctx context.Context, token string, now time.Time) (sess *Session, known bool, err error) {
	hash := HashSecret(token)
	sess, err = s.store.GetByTokenHash(ctx, hash)
	if ErrorCode(err) == ENOTFOUND {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if subtle.ConstantTimeCompare(hash, sess.TokenHash) != 1 {
		return nil, false, nil
	}
	if !sess.Alive(now, s.cfg.IdleTimeout) {
		// This instance's touches, not flushed yet, may keep it alive.
		// Applied only then: the hot path (verify, the gateway) needs
		// only the verdict, and each application takes the touches' lock.
		s.applyPending(sess)
		if !sess.Alive(now, s.cfg.IdleTimeout) {
			return nil, true, nil
		}
	}
	if sess.APIKeyID != "" {
		k, err := s.apiKey(ctx, sess.APIKeyID, now)
		if err != nil {
			return nil, true, err
		}
		if k == nil {
			return nil, true, nil
		}
	}
	return sess, true, nil
}

// ownedByToken returns the alive session of token at now if it belongs to
// caller's key, else nil. A token of another key is indistinguishable from
// an unknown one.
func (s *Service) ownedByToken(ctx context.Context, caller *Caller, token string, now time.Time) (*Session, error) {
	if token == "" {
		return nil, Errorf(EINVALID, "token is required")
	}
	sess, _, err := s.lookupToken(ctx, token, now)
	if err != nil || sess == nil {
		return nil, err
	}
	if sess.APIKeyID != caller.APIKeyID {
		return nil, nil
	}
	return sess, nil
}

// VerifyToken reports whether token is alive and the caller's; if so, it is
// touched.
func (s *Service) VerifyToken(ctx context.Context, caller *Caller, token string) (bool, error) {
	now := s.clock.Now() // read once: each read costs as much as a map lookup
	sess, err := s.ownedByToken(ctx, caller, token, now)
	if err != nil || sess == nil {
		return false, err
	}
	s.touchAt(sess.ID, now)
	return true, nil
}

// SessionByToken returns the caller's session of token. ENOTFOUND when it
// is unknown, dead or another key's.
func (s *Service) SessionByToken(ctx context.Context, caller *Caller, token string) (*Session, error) {
	now := s.clock.Now()
	sess, err := s.ownedByToken(ctx, caller, token, now)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, Errorf(ENOTFOUND, "no active session for this token")
	}
	s.touchAt(sess.ID, now)
	return s.view(sess), nil
}

// CloseByToken closes the caller's session of token. Unknown, closed and
// other keys' tokens change nothing and are not errors.
func (s *Service) CloseByToken(ctx context.Context, caller *Caller, token string) error {
	sess, err := s.ownedByToken(ctx, caller, token, s.clock.Now())
	if err != nil || sess == nil {
		return err
	}
	_, err = s.CloseSession(ctx, sess.ID, ReasonClosed)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	}
	return err
}

// StoreDataByToken replaces the data of the caller's session of token.
func (s *Service) StoreDataByToken(ctx context.Context, caller *Caller, token string, data json.RawMessage) (*Session, error) {
	sess, err := s.ownedByToken(ctx, caller, token, s.clock.Now())
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, Errorf(ENOTFOUND, "no active session for this token")
	}
	return s.StoreData(ctx, sess.ID, data)
}
