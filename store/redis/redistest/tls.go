package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
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
	// ClientCert and ClientKey (PEM) are a certificate the server trusts
	// and its key, when the server authenticates its clients
	// (StartTLSServerClientAuth); empty otherwise.
	ClientCert, ClientKey string
}

// StartTLSServer starts a TLS-only server on a free port and stops it
// when the test ends.
func StartTLSServer(t testing.TB) *TLSServer { return startTLS(t, false) }

// StartTLSServerClientAuth is StartTLSServer for a server that accepts
// only clients with a certificate it trusts (tls-auth-clients yes): the
// one in ClientCert and ClientKey.
func StartTLSServerClientAuth(t testing.TB) *TLSServer { return startTLS(t, true) }

func startTLS(t testing.TB, clientAuth bool) *TLSServer {
	t.Helper()
	dir := t.TempDir()
	s := &TLSServer{Port: freePort(t), CAFile: filepath.Join(dir, "server.pem")}
	keyFile := filepath.Join(dir, "server.key")
	cert := testcert.Write(t, s.CAFile, keyFile, "sessiond test redis")
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	trusted, auth := s.CAFile, "no"
	if clientAuth {
		// The client's certificate is self-signed too: the server trusts
		// it by finding it in its CA file.
		s.ClientCert, s.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
		testcert.Write(t, s.ClientCert, s.ClientKey, "sessiond test client")
		trusted, auth = filepath.Join(dir, "trusted.pem"), "yes"
		var both []byte
		for _, f := range []string{s.CAFile, s.ClientCert} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			both = append(both, b...)
		}
		if err := os.WriteFile(trusted, both, 0o600); err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(s.ClientCert, s.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	c := goredis.NewClient(&goredis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), MaxRetries: -1, TLSConfig: cfg})
	defer c.Close()
	cmd := runRedis(t, dir, c, "--port", "0", "--tls-port", strconv.Itoa(s.Port),
		"--tls-cert-file", s.CAFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", trusted, "--tls-auth-clients", auth)
	t.Cleanup(func() { stop(cmd) })
	return s
}

// URL returns the server's rediss:// URL.
func (s *TLSServer) URL() string { return fmt.Sprintf("rediss://127.0.0.1:%d/0", s.Port) }
