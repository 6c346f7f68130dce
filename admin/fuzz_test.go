package admin_test

import (
	"context"
	"net/http"
	"testing"
)

// FuzzCreateAPIKey checks that no body makes POST /v1/apikeys panic or
// answer 5xx, and that a refused body creates no key.
func FuzzCreateAPIKey(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `{"data":null}`, `{"data":{}}`,
		`{"data":{"type":"apikeys","attributes":{"name":"a"}}}`,
		`{"data":{"attributes":{"name":1}}}`, `{"data":{"id":"x"}}`,
		`{"data":{"type":"sessions"}}`, `{"data":[[[[`, `{"data":{"attributes":{"name":"\ud800"}}}`,
	} {
		f.Add(seed)
	}
	svc, _ := newService(f, nil)
	h := newHandler(f, svc)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body string) {
		before, err := svc.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := serve(t, h, request{method: http.MethodPost, path: "/v1/apikeys", body: body, contentType: "application/json"})
		after, err := svc.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case w.Code >= 500:
			t.Fatalf("body %q: got %d, want no 5xx; %s", body, w.Code, w.Body)
		case w.Code == http.StatusCreated:
			if len(after) != len(before)+1 {
				t.Fatalf("body %q: 201 but keys went from %d to %d", body, len(before), len(after))
			}
		default:
			checkError(t, w, w.Code)
			if len(after) != len(before) {
				t.Fatalf("body %q: refused with %d but keys went from %d to %d", body, w.Code, len(before), len(after))
			}
		}
	})
}
