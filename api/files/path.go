package files

import (
	"strings"
	"unicode/utf8"

	"sessiond"
	"sessiond/sessiondir"
)

// Limits of a file path inside a session directory.
const (
	maxPathLen    = 1024 // bytes, decoded
	maxElementLen = 255  // bytes, the usual file system limit
)

// cleanPath turns the escaped remainder of a files URL (what follows
// /api/v1/session/files/) into a path relative to the session directory.
// It returns "." for the directory itself, and whether the client named a
// directory (the empty path or a trailing slash).
//
// It refuses, as EINVALID, everything that could name a file outside the
// directory, or name one file in two ways: encoded slashes and backslashes,
// bad escapes, NUL and other control bytes, invalid UTF-8, backslashes,
// absolute paths, empty, "." and ".." elements (also when encoded, as in
// "%2e%2e"), over-long paths and the reserved upload prefix. Symbolic links
// are not its business: the os.Root the path is used with refuses any that
// lead out of the directory.
func cleanPath(escaped string) (rel string, dir bool, err error) {
	if len(escaped) > 3*maxPathLen {
		return "", false, invalid("the path is longer than %d bytes", maxPathLen)
	}
	// Look at the encoded form first: once decoded, "%2F" is a '/' like
	// any other, and would make "a%2Fb" and "a/b" the same file.
	for i := 0; i < len(escaped); i++ {
		if escaped[i] != '%' {
			continue
		}
		if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
			return "", false, invalid("the path has a malformed %%-escape")
		}
		switch unhex(escaped[i+1])<<4 | unhex(escaped[i+2]) {
		case '/':
			return "", false, invalid("the path may not contain an encoded slash (%%2F)")
		case '\\':
			return "", false, invalid("the path may not contain a backslash")
		case 0:
			return "", false, invalid("the path may not contain a NUL byte")
		}
	}
	p := unescape(escaped)
	if len(p) > maxPathLen {
		return "", false, invalid("the path is longer than %d bytes", maxPathLen)
	}
	if !utf8.ValidString(p) {
		return "", false, invalid("the path is not valid UTF-8")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == 0:
			return "", false, invalid("the path may not contain a NUL byte")
		case c == '\\':
			return "", false, invalid("the path may not contain a backslash")
		case c < 0x20 || c == 0x7f:
			return "", false, invalid("the path may not contain control characters")
		}
	}
	if p == "" {
		return ".", true, nil
	}
	if p[0] == '/' {
		return "", false, invalid("the path must be relative to the session directory")
	}
	dir = strings.HasSuffix(p, "/")
	body := strings.TrimSuffix(p, "/")
	for elem := range strings.SplitSeq(body, "/") {
		switch {
		case elem == "":
			return "", false, invalid("the path may not contain empty elements (//)")
		case elem == "." || elem == "..":
			return "", false, invalid("the path may not contain %q elements", elem)
		case len(elem) > maxElementLen:
			return "", false, invalid("a path element is longer than %d bytes", maxElementLen)
		case strings.HasPrefix(elem, sessiondir.TempPrefix):
			return "", false, invalid("names starting with %q are reserved", sessiondir.TempPrefix)
		}
	}
	return body, dir, nil
}

func invalid(format string, args ...any) error {
	return sessiond.Errorf(sessiond.EINVALID, format, args...)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// unescape decodes %-escapes, which cleanPath has already checked. Unlike
// url.PathUnescape it needs no error path, and '+' stays '+' as it should
// in a path.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}
