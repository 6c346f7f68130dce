package jsonrpc

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// This file walks JSON text that json.Valid has already accepted, without
// decoding it: the request envelope and params are split into raw
// sub-slices of the body, so that the hot path (verify_session_token)
// allocates almost nothing. Every function is bounds-checked anyway, so
// that a wrong assumption can give a wrong answer but never a panic
// (FuzzScan checks them against encoding/json).

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-space byte of b at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // number, true, false, null
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return len(b)
	}
}

// iter walks the members of a JSON object or the elements of a JSON array.
//
//	for it := newIter(v); it.next(); { use(it.key, it.val) }
type iter struct {
	b   []byte
	i   int
	obj bool
	key []byte // the member's raw key, quotes included (objects only)
	val []byte // the member's or element's raw value
}

// newIter returns an iterator over v, which must start with '{' or '['.
func newIter(v []byte) iter { return iter{b: v, i: 1, obj: len(v) > 0 && v[0] == '{'} }

func (it *iter) next() bool {
	b := it.b
	i := skipSpace(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] == '}' || b[i] == ']' {
		it.i = len(b)
		return false
	}
	if it.obj {
		end := stringEnd(b, i)
		it.key = b[i:end]
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ':' {
			i = skipSpace(b, i+1)
		}
		if i >= len(b) {
			it.i = len(b)
			return false
		}
	}
	end := valueEnd(b, i)
	it.val = b[i:end]
	it.i = end
	return true
}

// count returns the number of elements of the array or members of the
// object v.
func count(v []byte) int {
	n := 0
	for it := newIter(v); it.next(); {
		n++
	}
	return n
}

// isString reports whether the raw value v is a JSON string.
func isString(v []byte) bool { return len(v) >= 2 && v[0] == '"' }

// decodeString returns the Go string of the raw JSON string v. Plain
// strings (no escapes, valid UTF-8) cost one allocation; others go through
// encoding/json, which also replaces invalid UTF-8.
func decodeString(v []byte) string {
	if len(v) < 2 {
		return ""
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// stringIs reports whether the raw JSON string v equals s, without
// allocating unless v has escapes or invalid UTF-8.
func stringIs(v []byte, s string) bool {
	if !isString(v) {
		return false
	}
	inner := v[1 : len(v)-1]
	if string(inner) == s {
		return true
	}
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return false
	}
	return decodeString(v) == s
}

func isNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

// validString reports whether the raw JSON string v is valid UTF-8, so
// that it can be echoed as it came.
func validString(v []byte) bool { return utf8.Valid(v) }

// first returns the first byte of v, or 0 if v is empty.
func first(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}
