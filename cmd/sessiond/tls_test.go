package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sessiond/store/redis/redistest"
)

// rediss:// (Redis over TLS): sessiond checks the server's certificate
// against the system's roots, which SSL_CERT_FILE names for a private CA
// (Go's rule); a server it cannot verify keeps it from starting, with the
// reason; a verified one serves every API.
func TestRedisTLS(t *testing.T) {
	srv := redistest.StartTLSServer(t) // private: the default key prefix
	storeURL := srv.URL()

	// Not verifiable: the CA is not among the roots.
	refusedForCertificate(t, "sessiond on a TLS server it cannot verify", storeURL, "SSL_CERT_FILE=/dev/null", "SSL_CERT_DIR=/nonexistent")

	// Verified through SSL_CERT_FILE: every call below goes over TLS.
	t.Setenv("SSL_CERT_FILE", srv.CAFile)
	servesAcross(t, storeURL)
}

// TestRedisClientCertificate runs sessiond on a TLS-only Redis that
// accepts only clients with a certificate it trusts (tls-auth-clients
// yes), naming the files in the URL (sslrootcert, sslcert, sslkey).
func TestRedisClientCertificate(t *testing.T) {
	srv := redistest.StartTLSServerClientAuth(t)
	trusting := srv.URL() + "?sslrootcert=" + url.QueryEscape(srv.CAFile)

	// The server is trusted, but sessiond shows no certificate.
	refusedForCertificate(t, "sessiond without a client certificate", trusting)

	// With the client certificate: every call below goes over mutual TLS.
	full := trusting + "&sslcert=" + url.QueryEscape(srv.ClientCert) + "&sslkey=" + url.QueryEscape(srv.ClientKey)
	servesAcross(t, full)
}

// servesAcross starts two instances on storeURL and checks open on one,
// verify and the gateway on the other, and the other's refusal after a
// close.
func servesAcross(t *testing.T, storeURL string) {
	t.Helper()
	in := startInstances(t, 2, storeURL)
	a, b := in.procs[0], in.procs[1]
	keyID, secret := in.createKey(t, a)
	o := in.open(t, a, keyID, secret)
	if !in.verify(t, b, keyID, secret, o.Token) {
		t.Fatal("a session opened on one instance is not found on the other")
	}
	if status, body := in.gateway(t, b, o.Token); status != http.StatusOK || body != o.SessionID {
		t.Errorf("gateway: %d %q, want 200 and the session id", status, body)
	}
	if e := in.rpc(t, a, keyID, secret, "session.close_session", map[string]any{"token": o.Token}, nil); e != nil {
		t.Fatalf("close_session: %+v", e)
	}
	in.refusalDelay(t, b, keyID, secret, o.Token, time.Now(), 5*time.Second)
}

// refusedForCertificate runs sessiond serve on storeURL with env added to
// its environment, and checks that it refuses to start, within a minute,
// saying the reason is a certificate. what names the case in failures.
func refusedForCertificate(t *testing.T, what, storeURL string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, builtSessiond(t), "serve", "--data-dir", t.TempDir(),
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store", storeURL)
	cmd.Env = append(append(os.Environ(), "SESSIOND_ADMIN_PASSWORD=test-password"), env...)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("%s: %v, want a refusal to start\n%s", what, err, out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), "certificate") {
		t.Errorf("the refusal does not say why (the certificate):\n%s", out)
	}
}
