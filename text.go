package sessiond

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Text rules (SPEC 10): every string the Service stores and every JSON
// value it keeps must be valid UTF-8, so that no dialect ever echoes text
// a strict JSON client cannot decode. The Service checks them once here,
// for every dialect. A JSON \u escape of a lone UTF-16 surrogate (\ud800
// not followed by a low surrogate, or \udc00 alone) is refused too: it
// names no character, encoding/json turns it into U+FFFD silently and
// strict decoders (serde_json, say) refuse it.

// ValidText reports whether b is valid UTF-8 and, read as JSON text, holds
// no \u escape of a lone surrogate. It assumes nothing else about b, so
// dialects run it over whole request bodies before decoding them (their
// decoders would otherwise replace what is invalid with U+FFFD).
func ValidText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return !hasLoneSurrogate(b)
}

// hasLoneSurrogate reports whether JSON text b holds a \u escape of a lone
// surrogate. A backslash in JSON text always starts an escape (outside
// strings it is a syntax error anyway), so escapes are read in sequence.
func hasLoneSurrogate(b []byte) bool {
	for i := 0; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return false
		}
		i += j
		if i+1 < len(b) && b[i+1] != 'u' {
			i++ // \" \\ \n ...: skip the escaped byte
			continue
		}
		n, lone := UnicodeEscape(b, i)
		switch {
		case lone:
			return true
		case n == 0:
			i++
			continue // not an escape of a code unit: the decoder refuses it
		}
		i += n - 1
	}
	return false
}

// UnicodeEscape reads the \u escape at b[i] (a backslash followed by u)
// as JSON text has it: n is its length in bytes, 6, or 12 for a surrogate
// pair, and 0 when four hex digits do not follow; lone reports an escape of
// a lone UTF-16 surrogate (a low one, or a high one not followed at once
// by an escaped low one). ValidText and httpx.WellFormed both read escapes
// with it.
func UnicodeEscape(b []byte, i int) (n int, lone bool) {
	r, ok := hex4(b, i+2)
	switch {
	case !ok:
		return 0, false
	case r >= 0xdc00 && r <= 0xdfff:
		return 6, true // a low surrogate without a high one before it
	case r >= 0xd800 && r <= 0xdbff:
		if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
			if lo, ok := hex4(b, i+8); ok && lo >= 0xdc00 && lo <= 0xdfff {
				return 12, false
			}
		}
		return 6, true
	}
	return 6, false
}

// hex4 reads the 4 hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// checkID refuses an empty or non-UTF-8 session id.
func checkID(id string) error {
	if id == "" {
		return Errorf(EINVALID, "session_id is required")
	}
	if !utf8.ValidString(id) {
		return Errorf(EINVALID, "session_id is not valid UTF-8")
	}
	return nil
}

// checkStrings refuses the first of the named strings (name, value, name,
// value, ...) that is not valid UTF-8.
func checkStrings(nameValues ...string) error {
	for i := 0; i+1 < len(nameValues); i += 2 {
		if !utf8.ValidString(nameValues[i+1]) {
			return &Error{Code: EINVALID, Message: nameValues[i] + " is not valid UTF-8",
				Details: map[string]any{"parameter": nameValues[i]}}
		}
	}
	return nil
}

// checkValues refuses a user and data (either may be nil) that are too
// large together or not valid text.
func (s *Service) checkValues(user, data json.RawMessage) error {
	if err := s.checkSize(user, data); err != nil {
		return err
	}
	if !ValidText(user) {
		return &Error{Code: EINVALID, Message: "user is not valid UTF-8 JSON text", Details: map[string]any{"parameter": "user"}}
	}
	if !ValidText(data) {
		return &Error{Code: EINVALID, Message: "data is not valid UTF-8 JSON text", Details: map[string]any{"parameter": "data"}}
	}
	return nil
}

// checkSize refuses a user and data larger together than the data limit.
func (s *Service) checkSize(user, data json.RawMessage) error {
	if n := len(nullToNil(user)) + len(nullToNil(data)); n > s.cfg.DataLimit {
		return &Error{Code: ETOOLARGE,
			Message: "data and user together are " + strconv.Itoa(n) + " bytes, more than the limit of " + strconv.Itoa(s.cfg.DataLimit),
			Details: map[string]any{"limit": s.cfg.DataLimit}}
	}
	return nil
}
