package httpx

import (
	"unicode/utf8"

	"sessiond"
)

// WellFormed reports whether b is a JSON body that every dialect accepts
// as text: valid JSON (as json.Valid), valid UTF-8 with no escape of a lone
// UTF-16 surrogate (as sessiond.ValidText), nesting no deeper than
// MaxJSONDepth (as CheckDepth). It does in one pass what those three do in
// three; a hot path calls it first and, on false, asks them why.
// FuzzWellFormed checks it against them; docs/benchmarks.md has the
// measurement that made it worth writing.
func WellFormed(b []byte) bool {
	// closers[d] is the bracket that closes nesting level d.
	var closers [MaxJSONDepth]byte
	depth := 0
	i := skipWS(b, 0)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth == MaxJSONDepth {
				return false
			}
			close := byte(']')
			if c == '{' {
				close = '}'
			}
			closers[depth] = close
			depth++
			if i = skipWS(b, i+1); i < len(b) && b[i] == close {
				depth--
				i++
				break // an empty object or array: a whole value
			}
			if close == '}' {
				if i = member(b, i); i < 0 {
					return false
				}
			}
			continue // its first value
		case c == '"':
			i = stringEnd(b, i)
		case c == 't':
			i = literal(b, i, "true")
		case c == 'f':
			i = literal(b, i, "false")
		case c == 'n':
			i = literal(b, i, "null")
		default:
			i = numberEnd(b, i)
		}
		if i < 0 {
			return false
		}
		// A value ended: close what it ends, then expect the next one.
		for {
			i = skipWS(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			if b[i] == closers[depth-1] {
				depth--
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipWS(b, i+1)
			if closers[depth-1] == '}' {
				if i = member(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// member reads an object member's key and colon at b[i], and returns where
// its value starts, or -1.
func member(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = stringEnd(b, i); i < 0 {
		return -1
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1)
}

// literal returns the index past the literal lit at b[i], or -1.
func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// numberEnd returns the index past the JSON number at b[i], or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// stringEnd returns the index past the JSON string at b[i] (a '"'), or -1
// when it is not one, holds invalid UTF-8, or escapes a lone surrogate.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				n, lone := sessiond.UnicodeEscape(b, i)
				if n == 0 || lone {
					return -1 // not four hex digits, or a lone surrogate
				}
				i += n
			default:
				return -1
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return -1
			}
			i += n
		}
	}
	return -1
}
