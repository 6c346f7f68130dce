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
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, builtSessiond(t), "serve", "--data-dir", t.TempDir(),
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store", storeURL)
	cmd.Env = append(os.Environ(), "SESSIOND_ADMIN_PASSWORD=test-password", "SSL_CERT_FILE=/dev/null", "SSL_CERT_DIR=/nonexistent")
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("sessiond on a TLS server it cannot verify: %v, want a refusal to start\n%s", err, out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), "certificate") {
		t.Errorf("the refusal does not say why (the certificate):\n%s", out)
	}

	// Verified through SSL_CERT_FILE: every call below goes over TLS.
	t.Setenv("SSL_CERT_FILE", srv.CAFile)
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

// TestRedisClientCertificate runs sessiond on a TLS-only Redis that
// accepts only clients with a certificate it trusts (tls-auth-clients
// yes), naming the files in the URL (sslrootcert, sslcert, sslkey).
func TestRedisClientCertificate(t *testing.T) {
	srv := redistest.StartTLSServerClientAuth(t)
	trusting := srv.URL() + "?sslrootcert=" + url.QueryEscape(srv.CAFile)

	// The server is trusted, but sessiond shows no certificate.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, builtSessiond(t), "serve", "--data-dir", t.TempDir(),
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store", trusting)
	cmd.Env = append(os.Environ(), "SESSIOND_ADMIN_PASSWORD=test-password")
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("sessiond without a client certificate: %v, want a refusal to start\n%s", err, out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), "certificate") {
		t.Errorf("the refusal does not say why (the certificate):\n%s", out)
	}

	// With the client certificate: every call below goes over mutual TLS.
	full := trusting + "&sslcert=" + url.QueryEscape(srv.ClientCert) + "&sslkey=" + url.QueryEscape(srv.ClientKey)
	in := startInstances(t, 2, full)
	a, b := in.procs[0], in.procs[1]
	keyID, secret := in.createKey(t, a)
	o := in.open(t, a, keyID, secret)
	if !in.verify(t, b, keyID, secret, o.Token) {
		t.Fatal("a session opened on one instance is not found on the other")
	}
	if e := in.rpc(t, a, keyID, secret, "session.close_session", map[string]any{"token": o.Token}, nil); e != nil {
		t.Fatalf("close_session: %+v", e)
	}
	in.refusalDelay(t, b, keyID, secret, o.Token, time.Now(), 5*time.Second)
}
