package redis

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"strings"

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
	base, query, ok := strings.Cut(rawURL, "?")
	if !ok {
		return rawURL, tlsFiles{}, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", tlsFiles{}, sessiond.Errorf(sessiond.EINVALID, "redis store URL: %v", err)
	}
	f := tlsFiles{rootCert: q.Get("sslrootcert"), cert: q.Get("sslcert"), key: q.Get("sslkey")}
	q.Del("sslrootcert")
	q.Del("sslcert")
	q.Del("sslkey")
	if len(q) > 0 {
		base += "?" + q.Encode()
	}
	return base, f, nil
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
