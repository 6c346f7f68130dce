package daemon

import (
	"reflect"
	"slices"
	"strings"

	"sessiond/config"
)

// reloadable are the settings Reload applies to the running daemon; any
// other change takes effect at the next start.
var reloadable = map[string]bool{
	"log-level": true, "access-log": true, "gateway": true, "upstream-timeout": true, "admin-users": true,
	"tls-cert": true, "tls-key": true, "internal-tls-cert": true, "internal-tls-key": true,
	"admin-tls-cert": true, "admin-tls-key": true,
}

// Reload applies cfg, a configuration loaded again (on SIGHUP), to the
// running daemon: TLS certificates (read again from their files even when
// their names did not change), the log level, the access log, gateway
// routes and admin users. It logs what changed, what failed (keeping the old value), and
// which changes need a restart. Call it from one goroutine at a time.
func (m *Main) Reload(cfg config.Config) {
	old := m.Config
	changed := changedKeys(old, cfg)
	var applied, restart []string
	for _, k := range changed {
		if reloadable[k] {
			applied = append(applied, k)
		} else {
			restart = append(restart, k)
		}
	}
	next := old // what is now in effect

	m.ReloadCertificates(cfg)
	next.TLSCert, next.TLSKey = cfg.TLSCert, cfg.TLSKey
	next.InternalTLSCert, next.InternalTLSKey = cfg.InternalTLSCert, cfg.InternalTLSKey
	next.AdminTLSCert, next.AdminTLSKey = cfg.AdminTLSCert, cfg.AdminTLSKey

	if cfg.LogLevel != old.LogLevel {
		if m.Level != nil {
			m.Level.Set(parseLevel(cfg.LogLevel))
			next.LogLevel = cfg.LogLevel
		} else {
			m.Log.Warn("reload: the log level cannot change: this logger has no level variable", "log_level", cfg.LogLevel)
		}
	}

	if cfg.AccessLog != old.AccessLog {
		m.accessLog.Store(cfg.AccessLog)
		next.AccessLog = cfg.AccessLog
	}

	if !slices.Equal(cfg.Gateway, old.Gateway) || cfg.UpstreamTimeout != old.UpstreamTimeout {
		gw, err := m.newGateway(cfg)
		if err != nil {
			m.Log.Error("reload: keeping the old gateway routes", "err", err)
		} else {
			// Requests in flight finish on the old gateway; its idle
			// upstream connections are closed.
			if prev := m.gateway.Swap(gw); prev != nil {
				prev.Close()
			}
			next.Gateway, next.UpstreamTimeout = cfg.Gateway, cfg.UpstreamTimeout
		}
	}

	if !reflect.DeepEqual(cfg.AdminUsers, old.AdminUsers) {
		if err := m.AdminHandler.SetUsers(cfg.AdminUsers); err != nil {
			m.Log.Error("reload: keeping the old admin users", "err", err)
		} else {
			next.AdminUsers = cfg.AdminUsers
		}
	}

	m.Config = next
	m.Log.Info("configuration reloaded", "changed", applied)
	if len(restart) > 0 {
		m.Log.Warn("reload: these settings changed but take effect only at restart", "settings", restart)
	}
}

// ReloadCertificates reads every TLS listener's certificate again, from
// the files cfg names. A certificate that cannot be read leaves the old one
// in use, and is logged.
func (m *Main) ReloadCertificates(cfg config.Config) {
	specs := listenerSpecs(cfg)
	for _, l := range m.listeners {
		if l.cert == nil {
			for _, s := range specs {
				if s.name == l.name && s.cert != "" {
					m.Log.Warn("reload: turning TLS on needs a restart", "listener", l.name)
				}
			}
			continue
		}
		for _, s := range specs {
			if s.name != l.name {
				continue
			}
			if s.cert == "" {
				m.Log.Warn("reload: turning TLS off needs a restart; keeping the old certificate", "listener", l.name)
				break
			}
			if err := l.cert.load(s.cert, s.key); err != nil {
				m.Log.Error("reload: keeping the old TLS certificate", "listener", l.name, "err", err)
				break
			}
			m.Log.Info("TLS certificate reloaded", "listener", l.name, "cert", s.cert, "not_after", l.cert.notAfter())
		}
	}
}

// changedKeys lists the YAML keys whose values differ between a and b.
func changedKeys(a, b config.Config) []string {
	var keys []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			keys = append(keys, name)
		}
	}
	return keys
}
