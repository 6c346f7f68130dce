package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"sessiond/internal/testcert"
)

// TLSServer is a private redis-server that speaks TLS only, with a
// self-signed certificate for 127.0.0.1 that is its own CA.
type TLSServer struct {
	Port int
	// CAFile is the server's certificate (PEM): a client trusts the
	// server through it, for example with SSL_CERT_FILE, as with a
	// private CA.
	CAFile string
}

// StartTLSServer starts a TLS-only server on a free port and stops it
// when the test ends.
func StartTLSServer(t testing.TB) *TLSServer {
	t.Helper()
	dir := t.TempDir()
	s := &TLSServer{Port: freePort(t), CAFile: filepath.Join(dir, "server.pem")}
	keyFile := filepath.Join(dir, "server.key")
	cert := testcert.Write(t, s.CAFile, keyFile, "sessiond test redis")
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := goredis.NewClient(&goredis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	defer c.Close()
	cmd := runRedis(t, dir, c, "--port", "0", "--tls-port", strconv.Itoa(s.Port),
		"--tls-cert-file", s.CAFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "no")
	t.Cleanup(func() { stop(cmd) })
	return s
}

// URL returns the server's rediss:// URL.
func (s *TLSServer) URL() string { return fmt.Sprintf("rediss://127.0.0.1:%d/0", s.Port) }
