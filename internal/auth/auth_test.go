package auth_test

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"

	"sessiond"
	"sessiond/internal/auth"
)

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   auth.Headers
		want auth.Headers
	}{
		{
			name: "zero takes every default, canonicalized",
			in:   auth.Headers{},
			want: auth.Headers{Token: "Xdata-Session-Token", APIKey: "Apikey", Secret: "Secret", SessionID: "Xdata-Session-Id", SessionDir: "Xdata-Session-Dir"},
		},
		{
			name: "given names are kept, canonicalized",
			in:   auth.Headers{Token: "x-my-token", SessionID: "X-SID"},
			want: auth.Headers{Token: "X-My-Token", APIKey: "Apikey", Secret: "Secret", SessionID: "X-Sid", SessionDir: "Xdata-Session-Dir"},
		},
		{
			name: "every name given",
			in:   auth.Headers{Token: "t", APIKey: "k", Secret: "s", SessionID: "i", SessionDir: "d"},
			want: auth.Headers{Token: "T", APIKey: "K", Secret: "S", SessionID: "I", SessionDir: "D"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.WithDefaults(); got != tt.want {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	h := auth.DefaultHeaders.WithDefaults()
	tests := []struct {
		name    string
		headers [][2]string // added in order with Header.Add
		want    sessiond.Credentials
	}{
		{name: "none", want: sessiond.Credentials{}},
		{name: "token header", headers: [][2]string{{"Xdata-Session-Token", "tok"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "token header any case", headers: [][2]string{{"xdata-session-token", "tok"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "token header trimmed", headers: [][2]string{{"Xdata-Session-Token", "  tok \t"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "bearer", headers: [][2]string{{"Authorization", "Bearer tok"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "bearer lowercase", headers: [][2]string{{"Authorization", "bearer tok"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "bearer uppercase", headers: [][2]string{{"Authorization", "BEARER tok"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "bearer trimmed", headers: [][2]string{{"Authorization", "Bearer    tok  "}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "bearer without token", headers: [][2]string{{"Authorization", "Bearer "}}, want: sessiond.Credentials{}},
		{name: "bearer without space", headers: [][2]string{{"Authorization", "Bearertok"}}, want: sessiond.Credentials{}},
		{name: "basic is not a token", headers: [][2]string{{"Authorization", "Basic dXNlcjpwYXNz"}}, want: sessiond.Credentials{}},
		{name: "token header wins over bearer", headers: [][2]string{{"Authorization", "Bearer other"}, {"Xdata-Session-Token", "tok"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "blank token header falls back to bearer", headers: [][2]string{{"Xdata-Session-Token", "   "}, {"Authorization", "Bearer tok"}}, want: sessiond.Credentials{Token: "tok"}},
		{name: "key and secret", headers: [][2]string{{"APIKey", " k1 "}, {"Secret", " s1 "}}, want: sessiond.Credentials{APIKey: "k1", Secret: "s1"}},
		{name: "key and secret any case", headers: [][2]string{{"apikey", "k1"}, {"SECRET", "s1"}}, want: sessiond.Credentials{APIKey: "k1", Secret: "s1"}},
		{name: "everything", headers: [][2]string{{"Xdata-Session-Token", "tok"}, {"APIKey", "k1"}, {"Secret", "s1"}}, want: sessiond.Credentials{Token: "tok", APIKey: "k1", Secret: "s1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, kv := range tt.headers {
				r.Header.Add(kv[0], kv[1])
			}
			if got := h.Credentials(r); got != tt.want {
				t.Errorf("Credentials = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCredentialsCustomHeaders(t *testing.T) {
	h := auth.Headers{Token: "x-my-token", APIKey: "x-key", Secret: "x-secret"}.WithDefaults()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-My-Token", "tok")
	r.Header.Set("X-Key", "k")
	r.Header.Set("X-Secret", "s")
	r.Header.Set("Xdata-Session-Token", "default-name-is-not-read")
	want := sessiond.Credentials{Token: "tok", APIKey: "k", Secret: "s"}
	if got := h.Credentials(r); got != want {
		t.Errorf("Credentials = %+v, want %+v", got, want)
	}
}

func TestStrip(t *testing.T) {
	tests := []struct {
		name    string
		headers auth.Headers
		in      http.Header // raw map: keys as a client or a proxy may spell them
		want    []string    // keys left, sorted
	}{
		{
			name:    "canonical names",
			headers: auth.DefaultHeaders,
			in: http.Header{
				"Xdata-Session-Token": {"t"}, "Apikey": {"k"}, "Secret": {"s"},
				"Xdata-Session-Id": {"forged"}, "Xdata-Session-Dir": {"/etc"}, "Accept": {"*/*"},
			},
			want: []string{"Accept"},
		},
		{
			name:    "any case",
			headers: auth.DefaultHeaders,
			in: http.Header{
				"xdata-session-token": {"t"}, "APIKEY": {"k"}, "sEcReT": {"s"},
				"XDATA-SESSION-ID": {"forged"}, "xdata-Session-dir": {"/etc"},
			},
			want: []string{},
		},
		{
			name:    "underscores for hyphens",
			headers: auth.DefaultHeaders,
			in: http.Header{
				"Xdata_Session_Token": {"t"}, "xdata_session_id": {"forged"},
				"XDATA_SESSION_DIR": {"/etc"}, "Xdata-Session_Id": {"forged"},
			},
			want: []string{},
		},
		{
			name:    "bearer authorization removed in any case",
			headers: auth.DefaultHeaders,
			in:      http.Header{"Authorization": {"Bearer tok"}, "X-Other": {"1"}},
			want:    []string{"X-Other"},
		},
		{
			name:    "lowercase bearer authorization removed",
			headers: auth.DefaultHeaders,
			in:      http.Header{"authorization": {"bearer tok"}},
			want:    []string{},
		},
		{
			name:    "basic authorization kept",
			headers: auth.DefaultHeaders,
			in:      http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}},
			want:    []string{"Authorization"},
		},
		{
			name:    "other scheme kept",
			headers: auth.DefaultHeaders,
			in:      http.Header{"Authorization": {"Digest username=x"}},
			want:    []string{"Authorization"},
		},
		{
			name:    "unrelated headers kept, even with similar names",
			headers: auth.DefaultHeaders,
			in: http.Header{
				"Content-Type": {"application/json"}, "X-Forwarded-For": {"10.0.0.1"},
				"Secretary": {"x"}, "Xdata-Session-Token-Hint": {"x"}, "Cookie": {"a=b"},
			},
			want: []string{"Content-Type", "Cookie", "Secretary", "X-Forwarded-For", "Xdata-Session-Token-Hint"},
		},
		{
			name:    "configured names",
			headers: auth.Headers{Token: "X-My-Token", SessionID: "X-Sid"}.WithDefaults(),
			in: http.Header{
				"X-My-Token": {"t"}, "x_my_token": {"t"}, "X_SID": {"forged"},
				"Xdata-Session-Dir": {"/etc"}, "Keep": {"1"},
			},
			want: []string{"Keep"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.headers.Strip(tt.in)
			if got := slices.Sorted(maps.Keys(tt.in)); !slices.Equal(got, tt.want) {
				t.Errorf("headers left = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStripKeepsValues(t *testing.T) {
	hdr := http.Header{"Authorization": {"Basic abc"}, "Accept": {"a", "b"}}
	auth.DefaultHeaders.WithDefaults().Strip(hdr)
	want := http.Header{"Authorization": {"Basic abc"}, "Accept": {"a", "b"}}
	if !reflect.DeepEqual(hdr, want) {
		t.Errorf("headers = %v, want %v", hdr, want)
	}
}
