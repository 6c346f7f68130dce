package piperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"sessiond"
	"sessiond/internal/httpx"
)

// Describer is implemented by parameter types whose accepted JSON forms are
// not obvious from their Go kind (a number that may come as a string, ...).
// DecodeObject uses it to say what was expected when a value is refused.
// The method is called on a nil pointer and must not use its receiver.
type Describer interface {
	ExpectedJSON() string
}

// DecodeObject decodes a request body that must be a JSON object into v
// (a pointer to a struct). An empty or all-whitespace body counts as {}.
//
// Its errors carry Pip.Services codes: INVALID_JSON for bodies that are not
// valid UTF-8 JSON or nest deeper than httpx.MaxJSONDepth, BAD_REQUEST for
// valid JSON that is not an object, and INVALID_PARAMETER, naming the
// parameter, for a value of the wrong type. Fields implement
// json.Unmarshaler to be lenient; when they refuse a value they return a
// *json.UnmarshalTypeError, which encoding/json completes with the path of
// the field.
func DecodeObject(body []byte, v any) error {
	i := 0
	for i < len(body) && isSpace(body[i]) {
		i++
	}
	if i == len(body) {
		return nil
	}
	// encoding/json would turn invalid UTF-8 and escaped lone surrogates
	// into U+FFFD silently: refuse them here, on the raw body. WellFormed
	// checks that and the depth in one pass; the two checks say which.
	wellFormed := httpx.WellFormed(body)
	if !wellFormed {
		if !sessiond.ValidText(body) {
			return New(sessiond.EINVALID, CodeInvalidJSON, "request body is not valid UTF-8 text (or escapes a lone UTF-16 surrogate)")
		}
		if err := httpx.CheckDepth(body); err != nil {
			return Wrap(CodeInvalidJSON, err)
		}
	}
	if body[i] != '{' && (wellFormed || json.Valid(body)) {
		return New(sessiond.EINVALID, CodeBadRequest, "request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return decodeError(err)
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			// Only the root has no field, and the root was checked to be
			// an object.
			return New(sessiond.EINVALID, CodeBadRequest, "request body must be a JSON object")
		}
		return Invalid(CodeInvalidParameter, field,
			fmt.Sprintf("%s: expected %s, got %s", field, expected(te.Type), te.Value))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// json.Unmarshal checks the whole text before decoding, so a
		// truncated body is a SyntaxError too.
		return Wrap(CodeInvalidJSON, httpx.DecodeError(err))
	}
	// An Unmarshaler that failed in another way: still the client's fault.
	return Wrap(CodeInvalidParameter, httpx.DecodeError(err))
}

// expected says in words which JSON values a Go type accepts.
func expected(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	if d, ok := reflect.New(t).Interface().(Describer); ok {
		return d.ExpectedJSON()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "another type"
	}
}
