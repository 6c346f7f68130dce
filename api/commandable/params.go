package commandable

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"sessiond/internal/httpx"
)

// The Pip.Services clients are lenient about types: the Go client sends
// every filter value as a string ("active": "true", "skip": "20") and an
// unset one as "". These parameter types accept a JSON value or a string
// holding one, and treat null and "" as "not set". A value they cannot
// read is refused with a *json.UnmarshalTypeError, which encoding/json
// completes with the parameter's path ("paging.skip") and piperr turns
// into an INVALID_PARAMETER error.

// optInt is an optional integer: 20 or "20", also as an integral float
// (20.0, "20.0").
type optInt struct {
	Set bool
	V   int64
}

// optBool is an optional boolean: true or false, or a string of
// Pip.Services' BooleanConverter ("true", "yes", "y", "t", "1", and "false",
// "no", "n", "f", "0"), case-insensitive.
type optBool struct {
	Set bool
	V   bool
}

// optTime is an optional RFC 3339 time in any form (whole or fractional
// seconds, any offset), held in UTC.
type optTime struct {
	Set bool
	V   time.Time
}

func (*optInt) ExpectedJSON() string { return `an integer or a string holding one` }
func (*optBool) ExpectedJSON() string {
	return `true, false or one of "true", "false", "t", "f", "yes", "no", "y", "n", "1", "0"`
}
func (*optTime) ExpectedJSON() string { return `an RFC 3339 time string` }

var (
	optIntType  = reflect.TypeFor[optInt]()
	optBoolType = reflect.TypeFor[optBool]()
	optTimeType = reflect.TypeFor[optTime]()
)

func (o *optInt) UnmarshalJSON(b []byte) error {
	s, isStr, ok := scalar(b)
	if !ok {
		return refuse(b, optIntType)
	}
	if s == "" {
		return nil // null or "": not set
	}
	if !isStr && !isNumber(s) {
		return refuse(b, optIntType)
	}
	v, ok := parseInt(s)
	if !ok {
		return refuse(b, optIntType)
	}
	*o = optInt{Set: true, V: v}
	return nil
}

// parseInt reads an integer, also written as an integral float (2.0,
// 3600.0, 1e3: the number type of JavaScript clients and of Pip.Services'
// converters); 2.5 is not one.
func parseInt(s string) (int64, bool) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

func (o *optBool) UnmarshalJSON(b []byte) error {
	s, _, ok := scalar(b)
	if !ok {
		return refuse(b, optBoolType)
	}
	if s == "" {
		return nil
	}
	v, ok := parseBool(s)
	if !ok {
		return refuse(b, optBoolType)
	}
	*o = optBool{Set: true, V: v}
	return nil
}

// parseBool reads the spellings of Pip.Services' BooleanConverter, in any
// case: 1, true, t, yes, y and 0, false, f, no, n; a number that is
// integrally 1 or 0 (1.0) too, which the converter reads the same way.
func parseBool(s string) (v, ok bool) {
	switch strings.ToLower(s) {
	case "1", "true", "t", "yes", "y":
		return true, true
	case "0", "false", "f", "no", "n":
		return false, true
	}
	if isNumber(s) {
		if n, ok := parseInt(s); ok && (n == 0 || n == 1) {
			return n == 1, true
		}
	}
	return false, false
}

func (o *optTime) UnmarshalJSON(b []byte) error {
	s, isStr, ok := scalar(b)
	if !ok || (s != "" && !isStr) {
		return refuse(b, optTimeType)
	}
	if s == "" {
		return nil
	}
	t, err := httpx.ParseTime(s)
	if err != nil {
		return refuse(b, optTimeType)
	}
	*o = optTime{Set: true, V: t}
	return nil
}

// scalar returns the text of a JSON scalar: a string's contents (isStr),
// or the literal itself for numbers and booleans; null gives "". ok is
// false for arrays and objects. encoding/json has already checked that b
// is valid JSON.
func scalar(b []byte) (s string, isStr, ok bool) {
	switch {
	case len(b) == 0 || string(b) == "null":
		return "", false, true
	case b[0] == '"':
		if bytes.IndexByte(b, '\\') < 0 {
			return string(b[1 : len(b)-1]), true, true
		}
		if json.Unmarshal(b, &s) != nil {
			return "", false, false
		}
		return s, true, true
	case b[0] == '[' || b[0] == '{':
		return "", false, false
	default:
		return string(b), false, true
	}
}

// isNumber reports whether a JSON literal is a number (not true or false).
func isNumber(s string) bool { return s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) }

// refuse is the error of a parameter type that cannot read b.
func refuse(b []byte, t reflect.Type) error {
	return &json.UnmarshalTypeError{Value: describe(b), Type: t}
}

// describe names a refused JSON value for an error message, quoting short
// scalars and cutting long ones.
func describe(b []byte) string {
	k := kindOf(b)
	if k == "array" || k == "object" {
		return k
	}
	const max = 40
	if len(b) > max {
		return k + " " + string(b[:max]) + "..."
	}
	return k + " " + string(b)
}

func kindOf(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '"':
		return "string"
	case b[0] == '[':
		return "array"
	case b[0] == '{':
		return "object"
	case b[0] == 't' || b[0] == 'f':
		return "bool"
	case b[0] == 'n':
		return "null"
	default:
		return "number"
	}
}

// seconds converts a whole number of seconds to a duration, saturating
// instead of overflowing (the Service caps expiries anyway).
func seconds(n int64) time.Duration {
	if n > math.MaxInt64/int64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}
