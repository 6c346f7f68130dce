package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"sessiond/config"
)

// listener is one of the daemon's listeners: its socket, its server and,
// when it serves TLS, its certificate.
type listener struct {
	name string // public, internal or admin
	ln   net.Listener
	srv  *http.Server
	cert *certificate // nil: plain HTTP
}

// certificate is a listener's TLS certificate, read from its files at start
// and again on reload; handshakes read it through GetCertificate, so a new
// certificate is used by every connection made after the swap.
type certificate struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{}
	if err := c.load(certFile, keyFile); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the certificate and key; on failure the current certificate
// stays in use.
func (c *certificate) load(certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	c.certFile, c.keyFile = certFile, keyFile
	c.current.Store(&cert)
	return nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.current.Load(), nil
}

// notAfter is when the current certificate expires.
func (c *certificate) notAfter() time.Time {
	if leaf := c.current.Load().Leaf; leaf != nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

func (c *certificate) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
}

// listenerSpecs lists the listeners cfg asks for, with their TLS files.
func listenerSpecs(cfg config.Config) []struct{ name, addr, cert, key string } {
	specs := []struct{ name, addr, cert, key string }{{"public", cfg.Listen, cfg.TLSCert, cfg.TLSKey}}
	if cfg.InternalListen != "" {
		specs = append(specs, struct{ name, addr, cert, key string }{"internal", cfg.InternalListen, cfg.InternalTLSCert, cfg.InternalTLSKey})
	}
	return append(specs, struct{ name, addr, cert, key string }{"admin", cfg.AdminListen, cfg.AdminTLSCert, cfg.AdminTLSKey})
}

// TrustedAPIsExposedError is returned by Open when the trusted APIs would be
// served on a non-loopback public listener without being allowed.
type TrustedAPIsExposedError struct{ Listen, Why string }

func (e *TrustedAPIsExposedError) Error() string {
	return fmt.Sprintf("refusing to start: the trusted commandable and REST APIs carry no authentication "+
		"(whoever reaches them can read, change and close any session) and would be served on the public listener %s, "+
		"%s. Either move them to an internal listener that only your backends reach (--internal-listen 127.0.0.1:8081), "+
		"or accept the exposure explicitly (--allow-public-trusted-apis)", e.Listen, e.Why)
}

// trustedExposure says why serving the trusted APIs on the public listener
// address would expose them beyond this host, or "" if it would not: only
// loopback addresses, or host names resolving only to them, are private.
func trustedExposure(ctx context.Context, listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "which is not host:port"
	}
	if host == "" {
		return "which listens on every interface"
	}
	if ip := net.ParseIP(strings.SplitN(host, "%", 2)[0]); ip != nil {
		switch {
		case ip.IsUnspecified():
			return "which listens on every interface"
		case !ip.IsLoopback():
			return "which is not a loopback address"
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return fmt.Sprintf("whose host name %q cannot be checked (%v)", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Sprintf("whose host name %q resolves to the non-loopback address %s", host, a.IP)
		}
	}
	return ""
}
