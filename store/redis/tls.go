package redis

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"sessiond"
)

// tlsFiles are the TLS files a rediss:// URL names, with the parameter
// names of PostgreSQL URLs (libpq's, which the postgres engine takes too):
// sslrootcert, the CA certificates (PEM) to trust instead of the system's;
// sslcert and sslkey, the client certificate and its key (PEM) for a server
// that authenticates its clients (tls-auth-clients yes). They are read
// once, when the store opens.
type tlsFiles struct{ rootCert, cert, key string }

func (f tlsFiles) named() bool { return f.rootCert != "" || f.cert != "" || f.key != "" }

// cutTLSFiles removes the TLS file parameters from rawURL and returns them.
func cutTLSFiles(rawURL string) (string, tlsFiles, error) {
	rawURL, vals, err := cutParams(rawURL, "sslrootcert", "sslcert", "sslkey")
	return rawURL, tlsFiles{rootCert: vals[0], cert: vals[1], key: vals[2]}, err
}

// apply reads the files into c.
func (f tlsFiles) apply(c *tls.Config) error {
	if f.rootCert != "" {
		b, err := os.ReadFile(f.rootCert)
		if err != nil {
			return sessiond.Errorf(sessiond.EINVALID, "redis store URL: sslrootcert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return sessiond.Errorf(sessiond.EINVALID, "redis store URL: sslrootcert %s holds no PEM certificate", f.rootCert)
		}
		c.RootCAs = pool
	}
	if (f.cert == "") != (f.key == "") {
		return sessiond.Errorf(sessiond.EINVALID, "redis store URL: sslcert and sslkey go together (the client certificate and its key)")
	}
	if f.cert != "" {
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return sessiond.Errorf(sessiond.EINVALID, "redis store URL: sslcert and sslkey: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return nil
}
