package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TLSServer is a private redis-server that speaks TLS only, with a
// certificate for 127.0.0.1 signed by a CA of its own.
type TLSServer struct {
	Port int
	// CAFile is the CA's certificate (PEM): a client trusts the server
	// through it, for example with SSL_CERT_FILE, as with a private CA.
	CAFile string
}

// StartTLSServer starts a TLS-only server on a free port and stops it
// when the test ends.
func StartTLSServer(t testing.TB) *TLSServer {
	t.Helper()
	dir := t.TempDir()
	caCert, caKey := newCert(t, nil, nil)
	cert, key := newCert(t, caCert, caKey)
	files := map[string][]byte{"ca.pem": caCert.Raw, "server.pem": cert.Raw}
	for name, der := range files {
		writePEM(t, filepath.Join(dir, name), "CERTIFICATE", der)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "server.key"), "PRIVATE KEY", keyDER)

	s := &TLSServer{Port: freePort(t), CAFile: filepath.Join(dir, "ca.pem")}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	c := goredis.NewClient(&goredis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	defer c.Close()
	cmd := runRedis(t, dir, c, "--port", "0", "--tls-port", strconv.Itoa(s.Port),
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "no")
	t.Cleanup(func() { stop(cmd) })
	return s
}

// URL returns the server's rediss:// URL.
func (s *TLSServer) URL() string { return fmt.Sprintf("rediss://127.0.0.1:%d/0", s.Port) }

// newCert makes a CA certificate (parent nil) or a server certificate
// for 127.0.0.1 signed by parent.
func newCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	if parent == nil {
		tmpl.Subject = pkix.Name{CommonName: "sessiond test CA"}
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.Subject = pkix.Name{CommonName: "127.0.0.1"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t testing.TB, name, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
