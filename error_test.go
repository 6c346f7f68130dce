package sessiond_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"sessiond"
)

func TestErrorAccessors(t *testing.T) {
	details := map[string]any{"session_id": "abc"}
	notFound := &sessiond.Error{Code: sessiond.ENOTFOUND, Message: "session abc not found", Details: details}
	cause := errors.New("dial tcp 10.0.0.7:5432: password authentication failed for user admin")

	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage string
		wantDetails map[string]any
	}{
		{name: "nil", err: nil, wantCode: "", wantMessage: "", wantDetails: nil},
		{name: "domain error", err: notFound, wantCode: sessiond.ENOTFOUND, wantMessage: "session abc not found", wantDetails: details},
		{name: "wrapped domain error", err: fmt.Errorf("loading: %w", notFound), wantCode: sessiond.ENOTFOUND, wantMessage: "session abc not found", wantDetails: details},
		{name: "twice wrapped domain error", err: fmt.Errorf("a: %w", fmt.Errorf("b: %w", notFound)), wantCode: sessiond.ENOTFOUND, wantMessage: "session abc not found", wantDetails: details},
		{name: "Errorf formats the message", err: sessiond.Errorf(sessiond.EINVALID, "take must be at most %d", 1000), wantCode: sessiond.EINVALID, wantMessage: "take must be at most 1000"},
		{name: "plain error", err: errors.New("boom"), wantCode: sessiond.EINTERNAL, wantMessage: "Internal error"},
		{name: "Internal hides its cause", err: sessiond.Internal(cause), wantCode: sessiond.EINTERNAL, wantMessage: "Internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sessiond.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := sessiond.ErrorMessage(tt.err); got != tt.wantMessage {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMessage)
			}
			if got := sessiond.ErrorDetails(tt.err); !maps.Equal(got, tt.wantDetails) {
				t.Errorf("ErrorDetails = %v, want %v", got, tt.wantDetails)
			}
		})
	}
}

func TestInternalKeepsCauseForLogs(t *testing.T) {
	cause := errors.New("disk full at /var/lib/sessiond")
	err := sessiond.Internal(cause)

	if got := sessiond.ErrorMessage(err); strings.Contains(got, "disk") {
		t.Errorf("ErrorMessage = %q, must not reveal the cause", got)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(Internal(cause), cause) = false, want true")
	}
	if got := errors.Unwrap(err); got != cause {
		t.Errorf("Unwrap = %v, want %v", got, cause)
	}
	// Error() is for logs and does carry the cause.
	if got := err.Error(); !strings.Contains(got, cause.Error()) {
		t.Errorf("Error() = %q, want it to contain %q", got, cause.Error())
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *sessiond.Error
		want string
	}{
		{name: "without cause", err: sessiond.Errorf(sessiond.ECLOSED, "session x is closed"), want: "closed: session x is closed"},
		{name: "with cause", err: &sessiond.Error{Code: sessiond.EUNAVAILABLE, Message: "store unreachable", Err: errors.New("refused")}, want: "unavailable: store unreachable: refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsNotFound(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "not found", err: sessiond.Errorf(sessiond.ENOTFOUND, "x"), want: true},
		{name: "wrapped not found", err: fmt.Errorf("get: %w", sessiond.Errorf(sessiond.ENOTFOUND, "x")), want: true},
		{name: "other code", err: sessiond.Errorf(sessiond.ECLOSED, "x"), want: false},
		{name: "plain error", err: errors.New("not found"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sessiond.IsNotFound(tt.err); got != tt.want {
				t.Errorf("IsNotFound = %v, want %v", got, tt.want)
			}
		})
	}
}
