// Package config loads sessiond's configuration: defaults, then a YAML
// file, then SESSIOND_* environment variables, then command-line flags,
// each layer overriding the one before. Every flag has the same name as a
// YAML key and, upper-cased with '-' as '_', an environment variable.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is everything `sessiond serve` can be told.
type Config struct {
	Listen      string `yaml:"listen"`
	AdminListen string `yaml:"admin-listen"`
	DataDir     string `yaml:"data-dir"`
	// Store selects the engine: "embedded" (default, under DataDir),
	// "memory", or a postgres:// or redis:// URL.
	Store   string   `yaml:"store"`
	Gateway []string `yaml:"gateway"`

	IdleTimeout      time.Duration `yaml:"idle-timeout"`
	Retention        time.Duration `yaml:"retention"`
	SweepInterval    time.Duration `yaml:"sweep-interval"`
	TouchInterval    time.Duration `yaml:"touch-interval"`
	DefaultExpiresIn time.Duration `yaml:"default-expires-in"`
	MaxExpiresIn     time.Duration `yaml:"max-expires-in"`
	MaxTake          int           `yaml:"max-take"`
	CacheSessions    int           `yaml:"cache-sessions"`
	BodyLimit        int64         `yaml:"body-limit"`
	// DataLimit bounds a session's user and data together; MaxUserSessions
	// the open sessions of one user (per API key and user_id).
	DataLimit       int64 `yaml:"data-limit"`
	MaxUserSessions int   `yaml:"max-user-sessions"`

	UpstreamTimeout time.Duration `yaml:"upstream-timeout"`
	QuotaBytes      int64         `yaml:"quota-bytes"`
	QuotaFiles      int           `yaml:"quota-files"`

	HeaderToken      string `yaml:"header-token"`
	HeaderAPIKey     string `yaml:"header-apikey"`
	HeaderSecret     string `yaml:"header-secret"`
	HeaderSessionID  string `yaml:"header-session-id"`
	HeaderSessionDir string `yaml:"header-session-dir"`

	// AdminUsers maps admin user names to passwords (YAML only). With none,
	// the user "admin" gets a generated password (SPEC section 7).
	AdminUsers map[string]string `yaml:"admin-users"`

	LogLevel  string `yaml:"log-level"`
	LogFormat string `yaml:"log-format"`
}

// Default returns the configuration that zero flags give.
func Default() Config {
	return Config{
		Listen:           "127.0.0.1:8080",
		AdminListen:      "127.0.0.1:8989",
		DataDir:          "./data",
		Store:            "embedded",
		IdleTimeout:      24 * time.Hour,
		Retention:        7 * 24 * time.Hour,
		SweepInterval:    time.Minute,
		TouchInterval:    time.Second,
		DefaultExpiresIn: 30 * 24 * time.Hour,
		MaxExpiresIn:     365 * 24 * time.Hour,
		MaxTake:          1000,
		CacheSessions:    1_000_000,
		BodyLimit:        1 << 20,
		DataLimit:        64 << 10,
		MaxUserSessions:  1000,
		UpstreamTimeout:  30 * time.Second,
		QuotaBytes:       100 << 20,
		QuotaFiles:       1000,
		HeaderToken:      "Xdata-Session-Token",
		HeaderAPIKey:     "APIKey",
		HeaderSecret:     "Secret",
		HeaderSessionID:  "Xdata-Session-Id",
		HeaderSessionDir: "Xdata-Session-Dir",
		LogLevel:         "info",
		LogFormat:        "text",
	}
}

// EnvPrefix prefixes every environment variable.
const EnvPrefix = "SESSIOND_"

// EnvName returns the environment variable of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// stringList is a repeatable flag; from the environment it splits on commas.
type stringList struct{ p *[]string }

func (l stringList) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}
func (l stringList) Set(v string) error { *l.p = append(*l.p, v); return nil }

// bytesValue accepts plain numbers or sizes like 1MiB, 10MB, 512KiB.
type bytesValue struct{ p *int64 }

func (b bytesValue) String() string {
	if b.p == nil {
		return ""
	}
	return fmt.Sprint(*b.p)
}
func (b bytesValue) Set(v string) error {
	n, err := ParseBytes(v)
	if err != nil {
		return err
	}
	*b.p = n
	return nil
}

// ParseBytes parses a byte size: a plain number or one with a unit
// (B, KB, MB, GB, KiB, MiB, GiB; case-insensitive).
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"b", 1}}
	lower := strings.ToLower(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(s[:len(s)-len(u.suffix)])
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

// FlagSet returns the flags of `sessiond serve`, bound to c, and a pointer
// to the --config value.
func (c *Config) FlagSet(name string, out io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	file := new(string)
	fs.StringVar(file, "config", "", "YAML configuration `file`")
	fs.StringVar(&c.Listen, "listen", c.Listen, "public listener `address` (session APIs, gateway)")
	fs.StringVar(&c.AdminListen, "admin-listen", c.AdminListen, "admin listener `address` (admin API, metrics, health, console)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data `directory` (embedded store, session directories, admin password)")
	fs.StringVar(&c.Store, "store", c.Store, "store `engine`: embedded, memory, postgres://..., redis://...")
	fs.Var(stringList{&c.Gateway}, "gateway", "gateway route `PREFIX=URL` (repeatable)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "a session unused this long is dead")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "closed sessions are purged this long after closing")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", c.SweepInterval, "how often dead sessions are closed and old ones purged")
	fs.DurationVar(&c.TouchInterval, "touch-interval", c.TouchInterval, "how often coalesced request_time updates are written")
	fs.DurationVar(&c.DefaultExpiresIn, "default-expires-in", c.DefaultExpiresIn, "lifetime of Session API sessions opened without expires_in")
	fs.DurationVar(&c.MaxExpiresIn, "max-expires-in", c.MaxExpiresIn, "upper bound of any expires_in")
	fs.IntVar(&c.MaxTake, "max-take", c.MaxTake, "largest page a list returns")
	fs.IntVar(&c.CacheSessions, "cache-sessions", c.CacheSessions, "embedded store: session records kept in memory for reads (about 250 bytes each; 0 disables)")
	fs.Var(bytesValue{&c.BodyLimit}, "body-limit", "largest request body (e.g. 1MiB)")
	fs.Var(bytesValue{&c.DataLimit}, "data-limit", "largest user and data of a session together (e.g. 64KiB)")
	fs.IntVar(&c.MaxUserSessions, "max-user-sessions", c.MaxUserSessions, "most open sessions of one user (per API key); one more closes the least recently used")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", c.UpstreamTimeout, "gateway: how long to wait for an upstream's response headers")
	fs.Var(bytesValue{&c.QuotaBytes}, "quota-bytes", "session directory quota in bytes (e.g. 100MiB)")
	fs.IntVar(&c.QuotaFiles, "quota-files", c.QuotaFiles, "session directory quota in files")
	fs.StringVar(&c.HeaderToken, "header-token", c.HeaderToken, "header carrying the session token")
	fs.StringVar(&c.HeaderAPIKey, "header-apikey", c.HeaderAPIKey, "header carrying the API key")
	fs.StringVar(&c.HeaderSecret, "header-secret", c.HeaderSecret, "header carrying the API key secret")
	fs.StringVar(&c.HeaderSessionID, "header-session-id", c.HeaderSessionID, "header giving backends the session id")
	fs.StringVar(&c.HeaderSessionDir, "header-session-dir", c.HeaderSessionDir, "header giving backends the session directory")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	return fs, file
}

// Load builds the configuration from args and the environment (getenv):
// defaults, then the YAML file (--config or SESSIOND_CONFIG), then
// environment variables, then flags.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	// First pass: learn which flags were given and where the file is.
	probe := Default()
	fs, file := probe.FlagSet("sessiond serve", out)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string][]string{}
	for _, a := range collect(fs, args) {
		given[a[0]] = append(given[a[0]], a[1])
	}

	cfg := Default()
	path := *file
	if path == "" {
		path = getenv(EnvName("config"))
	}
	if path != "" {
		if err := cfg.loadFile(path); err != nil {
			return Config{}, err
		}
	}

	fs, _ = cfg.FlagSet("sessiond serve", io.Discard)
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		v := getenv(EnvName(f.Name))
		if v == "" {
			return
		}
		if f.Name == "gateway" {
			cfg.Gateway = nil
			for _, g := range strings.Split(v, ",") {
				if g = strings.TrimSpace(g); g != "" {
					cfg.Gateway = append(cfg.Gateway, g)
				}
			}
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", EnvName(f.Name), err))
		}
	})
	if len(given["gateway"]) > 0 {
		cfg.Gateway = nil
	}
	for name, vals := range given {
		if name == "config" {
			continue
		}
		for _, v := range vals {
			if err := fs.Set(name, v); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %v", name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// collect returns the (name, value) pairs of flags given in args, in order,
// by re-parsing with a recording flag set of the same shape.
func collect(shape *flag.FlagSet, args []string) [][2]string {
	var pairs [][2]string
	rec := flag.NewFlagSet("", flag.ContinueOnError)
	rec.SetOutput(io.Discard)
	shape.VisitAll(func(f *flag.Flag) {
		name := f.Name
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			rec.BoolFunc(name, "", func(v string) error { pairs = append(pairs, [2]string{name, v}); return nil })
			return
		}
		rec.Func(name, "", func(v string) error { pairs = append(pairs, [2]string{name, v}); return nil })
	})
	rec.Parse(args)
	return pairs
}

func (c *Config) loadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Validate checks every field and returns all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, a := range []struct{ name, v string }{{"listen", c.Listen}, {"admin-listen", c.AdminListen}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			bad(a.name, "%q is not host:port", a.v)
		}
	}
	if c.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	switch {
	case c.Store == "embedded", c.Store == "memory",
		strings.HasPrefix(c.Store, "postgres://"), strings.HasPrefix(c.Store, "postgresql://"),
		strings.HasPrefix(c.Store, "redis://"), strings.HasPrefix(c.Store, "rediss://"), strings.HasPrefix(c.Store, "redis+cluster://"):
	default:
		bad("store", "%q is not embedded, memory, postgres://... or redis://...", c.Store)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"idle-timeout", c.IdleTimeout}, {"retention", c.Retention}, {"sweep-interval", c.SweepInterval},
		{"touch-interval", c.TouchInterval}, {"default-expires-in", c.DefaultExpiresIn}, {"max-expires-in", c.MaxExpiresIn},
		{"upstream-timeout", c.UpstreamTimeout}} {
		if d.v <= 0 {
			bad(d.name, "must be positive, got %s", d.v)
		}
	}
	if c.TouchInterval > 0 && c.IdleTimeout > 0 && c.TouchInterval >= c.IdleTimeout {
		bad("touch-interval", "must be shorter than idle-timeout")
	}
	if c.DefaultExpiresIn > c.MaxExpiresIn {
		bad("default-expires-in", "must not exceed max-expires-in")
	}
	if c.MaxTake <= 0 {
		bad("max-take", "must be positive")
	}
	if c.CacheSessions < 0 {
		bad("cache-sessions", "must not be negative")
	}
	if c.BodyLimit <= 0 {
		bad("body-limit", "must be positive")
	}
	if c.DataLimit <= 0 || c.DataLimit > 1<<30 {
		bad("data-limit", "must be positive and at most 1GiB")
	}
	if c.MaxUserSessions <= 0 {
		bad("max-user-sessions", "must be positive")
	}
	if c.QuotaBytes <= 0 || c.QuotaFiles <= 0 {
		bad("quota", "quota-bytes and quota-files must be positive")
	}
	for _, h := range []struct{ name, v string }{{"header-token", c.HeaderToken}, {"header-apikey", c.HeaderAPIKey},
		{"header-secret", c.HeaderSecret}, {"header-session-id", c.HeaderSessionID}, {"header-session-dir", c.HeaderSessionDir}} {
		if h.v == "" || strings.ContainsAny(h.v, " :\t\r\n") {
			bad(h.name, "%q is not a header name", h.v)
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		bad("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "%q is not text or json", c.LogFormat)
	}
	for u, p := range c.AdminUsers {
		if u == "" || strings.Contains(u, ":") || p == "" {
			bad("admin-users", "user %q needs a name without ':' and a non-empty password", u)
		}
	}
	for _, g := range c.Gateway {
		prefix, target, ok := strings.Cut(g, "=")
		if !ok || !strings.HasPrefix(prefix, "/") || target == "" {
			bad("gateway", "%q is not PREFIX=URL with PREFIX starting with /", g)
		}
	}
	return errors.Join(errs...)
}
