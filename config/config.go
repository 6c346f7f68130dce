// Package config loads sessiond's configuration: defaults, then a YAML
// file, then SESSIOND_* environment variables, then command-line flags,
// each layer overriding the one before. Every flag has the same name as a
// YAML key and, upper-cased with '-' as '_', an environment variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"sessiond"
	"sessiond/gateway"
	"sessiond/internal/auth"
	"sessiond/internal/clientip"
	"sessiond/internal/httpx"
	"sessiond/sessiondir"
	"sessiond/store/embedded"
)

// Config is everything `sessiond serve` can be told.
type Config struct {
	Listen      string `yaml:"listen"`
	AdminListen string `yaml:"admin-listen"`
	DataDir     string `yaml:"data-dir"`
	// Store selects the engine: "embedded" (default, under DataDir),
	// "memory", or the URL of a store shared by instances: PostgreSQL
	// (postgres://...) or Redis (redis://, rediss://, redis+cluster://).
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
	// TrustedProxies are the proxies in front of sessiond (IP addresses or
	// CIDR blocks) whose X-Forwarded-For is believed. Default: none.
	TrustedProxies []string `yaml:"trusted-proxies"`

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
	// AccessLog logs one line per request of every listener at Info level
	// (docs/operations.md, "Access log"). Default off: it costs throughput.
	AccessLog bool `yaml:"access-log"`

	// InternalListen, when set, serves the trusted Pip.Services APIs
	// (commandable and REST) there instead of on Listen (SPEC section 2).
	InternalListen string `yaml:"internal-listen"`
	// AllowPublicTrustedAPIs lets the trusted APIs be served on a
	// non-loopback public listener; sessiond warns at every start.
	AllowPublicTrustedAPIs bool `yaml:"allow-public-trusted-apis"`

	// Certificate and key files (PEM) per listener; with both set the
	// listener serves TLS. Reloaded on SIGHUP.
	TLSCert         string `yaml:"tls-cert"`
	TLSKey          string `yaml:"tls-key"`
	InternalTLSCert string `yaml:"internal-tls-cert"`
	InternalTLSKey  string `yaml:"internal-tls-key"`
	AdminTLSCert    string `yaml:"admin-tls-cert"`
	AdminTLSKey     string `yaml:"admin-tls-key"`

	// DrainTimeout bounds a graceful stop: draining requests, flushing
	// pending writes and closing the store.
	DrainTimeout time.Duration `yaml:"drain-timeout"`
}

// Defaults that belong to the command line itself (the other defaults
// come from the packages that own them; see Default).
const (
	DefaultListen      = "127.0.0.1:8080"
	DefaultAdminListen = "127.0.0.1:8989"
	DefaultDataDir     = "./data"
	// DefaultDrainTimeout bounds a graceful stop (the daemon's Close).
	DefaultDrainTimeout = 15 * time.Second
)

// Default returns the configuration that zero flags give. Each default is
// defined once, by the package that applies it: the rules by
// sessiond.DefaultConfig, the engine's cache by embedded.DefaultOptions,
// the body limit by httpx, headers by auth, the upstream timeout by the
// gateway and the quotas by sessiondir.
func Default() Config {
	rules := sessiond.DefaultConfig()
	hdr := auth.DefaultHeaders
	return Config{
		Listen:           DefaultListen,
		AdminListen:      DefaultAdminListen,
		DataDir:          DefaultDataDir,
		Store:            "embedded",
		IdleTimeout:      rules.IdleTimeout,
		Retention:        rules.Retention,
		SweepInterval:    rules.SweepInterval,
		TouchInterval:    rules.TouchInterval,
		DefaultExpiresIn: rules.DefaultExpiresIn,
		MaxExpiresIn:     rules.MaxExpiresIn,
		MaxTake:          rules.MaxTake,
		CacheSessions:    embedded.DefaultOptions().CachedSessions,
		BodyLimit:        httpx.DefaultBodyLimit,
		DataLimit:        int64(rules.DataLimit),
		MaxUserSessions:  rules.MaxUserSessions,
		UpstreamTimeout:  gateway.DefaultResponseHeaderTimeout,
		QuotaBytes:       sessiondir.DefaultMaxBytes,
		QuotaFiles:       sessiondir.DefaultMaxFiles,
		HeaderToken:      hdr.Token,
		HeaderAPIKey:     hdr.APIKey,
		HeaderSecret:     hdr.Secret,
		HeaderSessionID:  hdr.SessionID,
		HeaderSessionDir: hdr.SessionDir,
		LogLevel:         "info",
		LogFormat:        "text",
		DrainTimeout:     DefaultDrainTimeout,
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

// ParseBytes parses a byte size: a non-negative integer, optionally
// followed by a unit, case-insensitive and with optional space between:
// B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of
// 1024). Fractions, exponents, signs, other text and sizes beyond 2^63-1
// bytes are errors. Flags, environment variables and YAML all use it.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want a whole number of bytes with an optional unit, e.g. 65536 or 64KiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	unit := strings.TrimLeft(t[i:], " ")
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
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
	fs.StringVar(&c.Store, "store", c.Store, "store `engine`: embedded (files under --data-dir), memory (lost at exit), postgres://user:password@host:port/database, or redis://[user:password@]host:port/db, rediss://... (TLS), redis+cluster://host1:port1,host2:port2 (shared by instances)")
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
	fs.Var(stringList{&c.TrustedProxies}, "trusted-proxies", "trusted proxy `IPs/CIDRs` in front of sessiond, comma-separated (repeatable)")
	fs.StringVar(&c.HeaderToken, "header-token", c.HeaderToken, "header carrying the session token")
	fs.StringVar(&c.HeaderAPIKey, "header-apikey", c.HeaderAPIKey, "header carrying the API key")
	fs.StringVar(&c.HeaderSecret, "header-secret", c.HeaderSecret, "header carrying the API key secret")
	fs.StringVar(&c.HeaderSessionID, "header-session-id", c.HeaderSessionID, "header giving backends the session id")
	fs.StringVar(&c.HeaderSessionDir, "header-session-dir", c.HeaderSessionDir, "header giving backends the session directory")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.BoolVar(&c.AccessLog, "access-log", c.AccessLog, "log one line per request at info level (costs throughput)")
	fs.StringVar(&c.InternalListen, "internal-listen", c.InternalListen, "internal listener `address` for the trusted commandable and REST APIs (default off: served on --listen)")
	fs.BoolVar(&c.AllowPublicTrustedAPIs, "allow-public-trusted-apis", c.AllowPublicTrustedAPIs, "allow the trusted APIs on a non-loopback --listen (warned at every start)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "public listener: TLS certificate `file` (PEM)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "public listener: TLS key `file` (PEM)")
	fs.StringVar(&c.InternalTLSCert, "internal-tls-cert", c.InternalTLSCert, "internal listener: TLS certificate `file` (PEM)")
	fs.StringVar(&c.InternalTLSKey, "internal-tls-key", c.InternalTLSKey, "internal listener: TLS key `file` (PEM)")
	fs.StringVar(&c.AdminTLSCert, "admin-tls-cert", c.AdminTLSCert, "admin listener: TLS certificate `file` (PEM)")
	fs.StringVar(&c.AdminTLSKey, "admin-tls-key", c.AdminTLSKey, "admin listener: TLS key `file` (PEM)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "longest graceful stop: drain requests, flush writes, close the store")
	return fs, file
}

// UsageError is a wrong command line: an unknown flag, a flag without its
// value, or a stray argument.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// OtherEnv lists the SESSIOND_* variables that are not settings of
// `sessiond serve` but are read elsewhere: the admin password (daemon and
// command-line client) and the command-line client's admin URL and user.
// Any other SESSIOND_* variable that names no setting is reported as a
// problem, so that a misspelt one is not silently ignored.
var OtherEnv = map[string]string{
	"SESSIOND_ADMIN_PASSWORD": "password of the admin user when admin-users is not configured",
	"SESSIOND_ADMIN_URL":      "sessiond apikey: the admin API URL",
	"SESSIOND_ADMIN_USER":     "sessiond apikey: the admin user",
}

// testEnvPrefix marks variables of test harnesses, which are never settings.
const testEnvPrefix = "SESSIOND_TEST_"

// Load builds the configuration from args and the environment read
// through getenv: defaults, then the YAML file (--config or
// SESSIOND_CONFIG), then SESSIOND_* variables, then flags. It reports
// every problem at once: in the file, the environment, the flags and the
// resulting values, one per line. A wrong command line is a *UsageError
// (reported alone); -h or --help gives flag.ErrHelp. Unknown SESSIOND_*
// variables cannot be found through getenv: LoadEnviron also reports
// them. out is not written: help and errors are the caller's to print
// (see Usage).
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	return load(args, getenv, nil)
}

// LoadEnviron is Load over environ (os.Environ's KEY=value form), and
// also reports each SESSIOND_* variable that names no setting (see
// OtherEnv), so that a misspelt one is not silently ignored.
func LoadEnviron(args, environ []string) (Config, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	return load(args, func(k string) string { return env[k] }, names)
}

// load is Load; envNames, when not nil, are the SESSIOND_* variables set.
func load(args []string, getenv func(string) string, envNames []string) (Config, error) {
	cfg := Default()
	fs, _ := cfg.FlagSet("sessiond serve", io.Discard)
	given, err := collect(fs, args)
	if err != nil {
		return Config{}, err
	}

	var errs []error
	path := getenv(EnvName("config"))
	for _, g := range given {
		if g[0] == "config" {
			path = g[1]
		}
	}
	if path != "" {
		errs = append(errs, cfg.loadFile(path, fs)...)
	}

	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		known[name] = true
		v := getenv(name)
		if f.Name == "config" || v == "" {
			return
		}
		if l, ok := f.Value.(stringList); ok {
			*l.p = nil // the variable replaces the file's list
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					*l.p = append(*l.p, item)
				}
			}
			return
		}
		if err := set(f, v); err != nil {
			errs = append(errs, setError(name, f, v, err))
		}
	})
	for _, k := range envNames {
		if _, other := OtherEnv[k]; !known[k] && !other && !strings.HasPrefix(k, testEnvPrefix) {
			errs = append(errs, fmt.Errorf("%s: unknown variable: no setting has this name (see sessiond serve --help)", k))
		}
	}

	cleared := map[string]bool{}
	for _, g := range given {
		if l, ok := fs.Lookup(g[0]).Value.(stringList); ok && !cleared[g[0]] {
			*l.p = nil // repeated flags replace the list of the file and environment
			cleared[g[0]] = true
		}
	}
	for _, g := range given {
		if g[0] == "config" {
			continue
		}
		f := fs.Lookup(g[0])
		if err := set(f, g[1]); err != nil {
			errs = append(errs, setError("--"+g[0], f, g[1], err))
		}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// set sets f to v; on failure f keeps its value (the flag package's own
// values reset to zero), so that one bad value is reported once, not again
// by Validate.
func set(f *flag.Flag, v string) error {
	old := f.Value.String()
	err := f.Value.Set(v)
	if err != nil {
		f.Value.Set(old)
	}
	return err
}

// setError says which value of which setting is wrong, and what it wants.
func setError(src string, f *flag.Flag, v string, err error) error {
	if _, ok := f.Value.(bytesValue); ok {
		return fmt.Errorf("%s: %v", src, err) // ParseBytes says it all
	}
	want := ""
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case time.Duration:
			want = " (want a duration such as 90s, 15m or 24h)"
		case int, int64:
			want = " (want a whole number)"
		case bool:
			want = " (want true or false)"
		}
	}
	return fmt.Errorf("%s: invalid value %q%s", src, v, want)
}

// collect returns the (name, value) pairs of flags given in args, in order,
// by parsing with a recording flag set of the same shape, so that a bad
// value does not hide the flags after it.
func collect(shape *flag.FlagSet, args []string) ([][2]string, error) {
	var pairs [][2]string
	rec := flag.NewFlagSet("", flag.ContinueOnError)
	rec.SetOutput(io.Discard)
	rec.Usage = func() {}
	shape.VisitAll(func(f *flag.Flag) {
		name := f.Name
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			rec.BoolFunc(name, "", func(v string) error { pairs = append(pairs, [2]string{name, v}); return nil })
			return
		}
		rec.Func(name, "", func(v string) error { pairs = append(pairs, [2]string{name, v}); return nil })
	})
	if err := rec.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &UsageError{err}
	}
	if rec.NArg() > 0 {
		return nil, &UsageError{fmt.Errorf("unexpected argument %q (sessiond serve takes flags only)", rec.Arg(0))}
	}
	return pairs, nil
}

// loadFile applies the YAML file at path to c. Each scalar key that is a
// flag is parsed by that flag (sizes, durations and numbers read the same
// as on the command line); lists, maps and YAML-only keys are decoded into
// c. Every problem is returned, with its line.
func (c *Config) loadFile(path string, fs *flag.FlagSet) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("config file: %w", err)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return []error{fmt.Errorf("config file %s: %w", path, err)}
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return []error{fmt.Errorf("config file %s: line %d: want a mapping of settings (key: value)", path, root.Line)}
	}
	keys := yamlKeys()
	var errs []error
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !keys[k.Value] {
			errs = append(errs, fmt.Errorf("config file %s: line %d: unknown key %q", path, k.Line, k.Value))
			continue
		}
		f := fs.Lookup(k.Value)
		if f == nil || v.Kind != yaml.ScalarNode {
			rest.Content = append(rest.Content, k, v)
			continue
		}
		if err := set(f, v.Value); err != nil {
			errs = append(errs, setError(fmt.Sprintf("config file %s: line %d: %s", path, v.Line, k.Value), f, v.Value, err))
		}
	}
	if err := rest.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return append(errs, fmt.Errorf("config file %s: %w", path, err))
		}
		for _, e := range te.Errors {
			errs = append(errs, fmt.Errorf("config file %s: %s", path, e))
		}
	}
	return errs
}

// yamlKeys returns the YAML keys of Config.
func yamlKeys() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
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
	switch scheme, _, _ := strings.Cut(c.Store, "://"); {
	case c.Store == "embedded", c.Store == "memory":
	case scheme == "postgres" || scheme == "postgresql":
		if u, err := url.Parse(c.Store); err != nil || u.Host == "" && u.Query().Get("host") == "" {
			bad("store", "%s is not a PostgreSQL URL postgres://user:password@host:port/database", Redact(c.Store))
		}
	case scheme == "redis" || scheme == "rediss" || scheme == "redis+cluster" || scheme == "rediss+cluster":
		if u, err := url.Parse(c.Store); err != nil || u.Host == "" {
			bad("store", "%s is not a Redis URL redis://[user:password@]host:port/db or redis+cluster://host1:port1,host2:port2", Redact(c.Store))
		}
	default:
		bad("store", "%q is not embedded, memory, a postgres:// or a redis:// URL", Redact(c.Store))
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
	seen := map[string]bool{}
	for _, g := range c.Gateway {
		r, err := gateway.ParseRoute(g)
		switch {
		case err != nil:
			bad("gateway", "%v", err)
		case seen[r.Prefix]:
			bad("gateway", "prefix %q is given twice", r.Prefix)
		}
		seen[r.Prefix] = true
	}
	if c.InternalListen != "" {
		if _, _, err := net.SplitHostPort(c.InternalListen); err != nil {
			bad("internal-listen", "%q is not host:port", c.InternalListen)
		}
	}
	for _, l := range []struct{ name, cert, key string }{{"tls", c.TLSCert, c.TLSKey},
		{"internal-tls", c.InternalTLSCert, c.InternalTLSKey}, {"admin-tls", c.AdminTLSCert, c.AdminTLSKey}} {
		if (l.cert == "") != (l.key == "") {
			bad(l.name+"-cert", "--%s-cert and --%s-key go together: give both or neither", l.name, l.name)
		}
	}
	if (c.InternalTLSCert != "") && c.InternalListen == "" {
		bad("internal-tls-cert", "set without internal-listen")
	}
	if c.DrainTimeout <= 0 {
		bad("drain-timeout", "must be positive, got %s", c.DrainTimeout)
	}
	if _, err := clientip.ParseTrusted(c.TrustedProxies); err != nil {
		bad("trusted-proxies", "%v", err)
	}
	return errors.Join(errs...)
}

// Usage writes the help of `sessiond serve` to w.
func Usage(w io.Writer) {
	fmt.Fprint(w, `Usage: sessiond serve [flags]

Runs the session service. Every flag is also a key of the YAML --config file
and an environment variable SESSIOND_<FLAG> (upper case, '-' as '_'): flags
override the environment, which overrides the file. Unknown keys, variables
and flags are refused, and every problem is reported at once.

Listeners:
  public (--listen)            Session API (JSON-RPC), session files, gateway;
                               and the trusted commandable and REST APIs unless
                               --internal-listen is set
  internal (--internal-listen) the trusted commandable and REST APIs, which
                               carry no authentication: for application
                               backends only. Default off.
  admin (--admin-listen)       admin API, metrics, health, console

sessiond refuses to start when the trusted APIs would be served on a
non-loopback --listen address; set --internal-listen, or accept the exposure
with --allow-public-trusted-apis. Each listener serves TLS when given a
certificate and a key. SIGHUP reloads TLS certificates, the log level, the
access log, gateway routes and admin users from the --config file; SIGINT and SIGTERM
stop gracefully within --drain-timeout.

Flags:
`)
	d := Default()
	fs, _ := d.FlagSet("sessiond serve", io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name == "value" {
			name = "size"
		}
		line := "  --" + f.Name
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprint(w, `
YAML only:
  admin-users: {name: password, ...}   admin users; with none, the user "admin"
                                       gets a generated password

Other environment variables:
`)
	names := make([]string, 0, len(OtherEnv))
	for k := range OtherEnv {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(w, "  %-25s %s\n", k, OtherEnv[k])
	}
}

// Redact returns a store URL with its password replaced by "xxxxx", for
// messages and logs; other values unchanged.
func Redact(store string) string {
	u, err := url.Parse(store)
	if err != nil || u.Scheme == "" {
		if strings.Contains(store, "@") {
			return "(a store URL that does not parse)"
		}
		return store
	}
	return u.Redacted()
}
