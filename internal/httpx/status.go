package httpx

import (
	"bytes"
	"net/http"
	"strconv"

	"sessiond"
)

// StatusOf is the HTTP status of a domain error code, as most dialects
// answer it. A dialect that answers a code differently (the Pip.Services
// protocol answers ECLOSED with 400, say) says so in its own error writer.
func StatusOf(code string) int {
	switch code {
	case sessiond.EINVALID:
		return http.StatusBadRequest
	case sessiond.ENOTFOUND:
		return http.StatusNotFound
	case sessiond.ECLOSED, sessiond.ECONFLICT:
		return http.StatusConflict
	case sessiond.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case sessiond.EFORBIDDEN:
		return http.StatusForbidden
	case sessiond.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case sessiond.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case sessiond.ETIMEOUT:
		return http.StatusGatewayTimeout
	case sessiond.ETOOMANY:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// SetRetryAfter sets the Retry-After header of an ETOOMANY error from its
// Details["retry_after"] (whole seconds); other errors set nothing.
func SetRetryAfter(w http.ResponseWriter, err error) {
	if sessiond.ErrorCode(err) != sessiond.ETOOMANY {
		return
	}
	if secs, ok := sessiond.ErrorDetails(err)["retry_after"].(int); ok && secs > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
}

// JSONKind names the kind of a valid JSON value ("an object", "a string",
// ...), for error messages.
func JSONKind(v []byte) string {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
