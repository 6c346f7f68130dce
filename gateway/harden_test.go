package gateway_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sessiond/gateway"
	"sessiond/internal/clientip"
	"sessiond/internal/gwerr"
)

// ---- prefix confinement ----

// normalizingBackend serves files under dir the way many backends do: the
// path decoded, backslashes taken as slashes, and cleaned ("//" merged,
// ".." resolved) before it is looked up. Under dir are secret.txt, outside
// every prefix, and api/v1/dataproc/a/b.txt, inside the route's.
func normalizingBackend(t *testing.T) *upstream {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("SECRET"), 0o600))
	must(os.MkdirAll(filepath.Join(dir, "api", "v1", "dataproc", "a"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "api", "v1", "secret.txt"), []byte("SECRET"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "api", "v1", "dataproc", "a", "b.txt"), []byte("inside"), 0o600))
	fs := http.FileServer(http.Dir(dir))
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = strings.ReplaceAll(r.URL.Path, `\`, "/")
		fs.ServeHTTP(w, r)
	})
}

func TestPathsOutOfThePrefixAreRefused(t *testing.T) {
	up := normalizingBackend(t)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, _, _, token := e.key(t)
	send := func(t *testing.T, target string, hdr http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", e.srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		path, query, _ := strings.Cut(target, "?")
		req.URL.Opaque = path // sent byte for byte
		req.URL.RawQuery = query
		req.Header = hdr
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	withToken := http.Header{"Xdata-Session-Token": {token}}

	refused := []string{
		"../../../secret.txt",
		"../secret.txt",
		"..",
		"%2e%2e",
		"%2e%2e/%2e%2e/%2e%2e/secret.txt",
		"%2E%2E/%2e%2E/.%2E/secret.txt",
		"..%2f..%2f..%2fsecret.txt",
		"..%2F..%2F..%2Fsecret.txt",
		"%2f..%2f..%2f..%2fsecret.txt",
		"a/%2f..%2f..%2f..%2f..%2fsecret.txt",
		"/..//..//..//secret.txt",
		"a//..//..//..//..//secret.txt",
		`..\..\..\secret.txt`,
		"..%5c..%5c..%5csecret.txt",
		"..%5C..%5C..%5Csecret.txt",
		"a/../../secret.txt",
		"a/./../../secret.txt",
		"..;/..;/..;/secret.txt",
		"%252e%252e/%252e%252e/%252e%252e/secret.txt",
		"..%252f..%252f..%252fsecret.txt",
		"../../../secret.txt?x=1",
		"%2E%2E%2F%2E%2E%2Fsecret.txt",
	}
	var targets []string
	for _, p := range refused {
		targets = append(targets, prefix+p)
	}
	// The prefix itself reached only by decoding: elsewhere to a backend
	// that does not decode.
	targets = append(targets, "/api/v1/dataproc%2Fa/b.txt", "/api/v1/dataproc%2f..%2fsecret.txt", "/api/v1/d%61taproc/a/b.txt", "/api%2Fv1/dataproc/a/b.txt", "/api/v1/d%61taproc/%7Bx%7D/{y}")
	for _, target := range targets {
		t.Run("refused "+target, func(t *testing.T) {
			before := up.hits.Load()
			resp, body := send(t, target, withToken)
			checkError(t, resp, body, 400, gwerr.CodeInvalidParams)
			if bytes.Contains(body, []byte("SECRET")) {
				t.Fatalf("the secret leaked: %s", body)
			}
			// Refused before authentication: no token, same answer.
			resp, body = send(t, target, http.Header{})
			checkError(t, resp, body, 400, gwerr.CodeInvalidParams)
			if n := up.hits.Load() - before; n != 0 {
				t.Errorf("%d requests reached the upstream", n)
			}
		})
	}

	allowed := []struct{ target, status, body string }{
		{"a/b.txt?x=1", "200", "inside"},
		{"a/%62.txt", "200", "inside"},                // an escaped letter
		{"a/../a/b.txt", "200", "inside"},             // ".." that stays inside
		{"a/./b.txt", "200", "inside"},                // "."
		{"a/%2e%2e/a/b.txt", "200", "inside"},         // encoded, staying inside
		{"a//b.txt", "200", "inside"},                 // empty segment
		{"..a/b.txt", "404", ""},                      // a name that starts with dots
		{"a/b..txt", "404", ""},                       // dots inside a name
		{"caf%C3%A9?q=caf%C3%A9&r=%2e%2e", "404", ""}, // UTF-8; dots in the query are not the path's
		{"a%20b/%7Bid%7D", "404", ""},                 // escaped space and braces
	}
	for _, tt := range allowed {
		t.Run("allowed "+tt.target, func(t *testing.T) {
			resp, body := send(t, prefix+tt.target, withToken)
			if got := resp.Status[:3]; got != tt.status {
				t.Fatalf("status: got %s, want %s (%s)", resp.Status, tt.status, body)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body: got %q, want %q", body, tt.body)
			}
			if got := up.lastRequest(t).RequestURI; got != prefix+tt.target {
				t.Errorf("request URI at the upstream: got %q, want %q", got, prefix+tt.target)
			}
		})
	}
}

// ---- client addresses ----

func TestClientAddressHeadersNeverReachUpstream(t *testing.T) {
	up := newUpstream(t, nil)
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{})
	_, _, _, token := e.key(t)
	forged := []string{
		"X_Forwarded_For", "x-forwarded-for", "X-FORWARDED_FOR",
		"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X_Forwarded_Host", "x_forwarded_proto",
		"X-Forwarded", "Forwarded", "forwarded_for", "X-Original-Forwarded-For",
		"X-Real-IP", "x_real_ip", "True-Client-IP", "CF-Connecting-IP", "X-Client-IP",
		"X-Cluster-Client-IP", "Fastly-Client-IP", "Client-IP", "X-Originating-IP",
	}
	hdr := map[string]string{"Xdata-Session-Token": token, "X-Kept": "yes"}
	for _, name := range forged {
		hdr[name] = "6.6.6.6"
	}
	resp, body := do(t, "GET", e.srv.URL+prefix+"x", hdr, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := up.lastRequest(t).Header
	for name, vals := range got {
		for _, v := range vals {
			if strings.Contains(v, "6.6.6.6") {
				t.Errorf("the upstream got %s: %s", name, v)
			}
		}
	}
	gwHost := strings.TrimPrefix(e.srv.URL, "http://")
	for name, want := range map[string]string{
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": gwHost, "X-Kept": "yes",
	} {
		if v := headerVariants(got, name); len(v) != 1 || v[0] != want {
			t.Errorf("%s: got %q, want exactly %q", name, v, want)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	up := newUpstream(t, nil)
	tests := []struct {
		name     string
		trusted  []string
		hdr      map[string]string
		wantXFF  string
		wantXFP  string
		wantHost string // "" for the gateway's own
	}{
		{"no proxy trusted", nil,
			map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}, "127.0.0.1", "http", ""},
		{"peer not trusted", []string{"192.0.2.1", "10.0.0.0/8"},
			map[string]string{"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1", "http", ""},
		{"trusted peer: rightmost untrusted is the client", []string{"127.0.0.0/8", "10.0.0.0/8"},
			map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.0.0.2", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example"},
			"203.0.113.7, 10.0.0.2, 127.0.0.1", "https", "app.example"},
		{"trusted peer: forged variant ignored", []string{"127.0.0.1"},
			map[string]string{"X-Forwarded-For": "203.0.113.7", "X_Forwarded_For": "6.6.6.6"},
			"203.0.113.7, 127.0.0.1", "http", ""},
		{"trusted peer: garbage ends the chain", []string{"127.0.0.1", "10.0.0.0/8"},
			map[string]string{"X-Forwarded-For": "6.6.6.6, nonsense, 10.0.0.2"}, "10.0.0.2, 127.0.0.1", "http", ""},
		{"trusted peer without a chain", []string{"127.0.0.1"},
			map[string]string{"X-Forwarded-Proto": "gopher"}, "127.0.0.1", "http", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := clientip.New(tt.trusted)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, mustURL(t, up.URL), gateway.Options{Clients: res})
			_, _, _, token := e.key(t)
			hdr := map[string]string{"Xdata-Session-Token": token, "X-Real-IP": "6.6.6.6"}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			do(t, "GET", e.srv.URL+prefix+"x", hdr, nil)
			got := up.lastRequest(t).Header
			host := tt.wantHost
			if host == "" {
				host = strings.TrimPrefix(e.srv.URL, "http://")
			}
			for name, want := range map[string]string{"X-Forwarded-For": tt.wantXFF, "X-Forwarded-Proto": tt.wantXFP, "X-Forwarded-Host": host} {
				if v := headerVariants(got, name); len(v) != 1 || v[0] != want {
					t.Errorf("%s: got %q, want exactly %q", name, v, want)
				}
			}
			if v := headerVariants(got, "X-Real-IP"); len(v) != 0 {
				t.Errorf("X-Real-IP reached the upstream: %q", v)
			}
		})
	}
}

// ---- request bodies ----

// A chunked body that breaks midway is the client's fault: 400, no upstream
// error counted, no upstream failure logged.
func TestBrokenRequestBodyIs400(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return // the gateway gave up on this request
		}
		io.WriteString(w, "ok")
	})
	var logged bytes.Buffer
	e := newEnv(t, mustURL(t, up.URL), gateway.Options{Log: slog.New(slog.NewTextHandler(&logged, nil))})
	_, _, sid, token := e.key(t)

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "POST "+prefix+"x HTTP/1.1\r\nHost: gw\r\nXdata-Session-Token: "+token+
		"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nnot-a-chunk-size\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkError(t, resp, body, 400, gwerr.CodeInvalidParams)

	stats := mustConnections(t, e.svc, sid)
	if len(stats) != 1 || stats[0].Requests != 1 || stats[0].Errors != 0 {
		t.Errorf("connections: got %+v, want one request and no error", stats)
	}
	if strings.Contains(logged.String(), "upstream failed") {
		t.Errorf("logged as an upstream failure: %s", logged.String())
	}
}
