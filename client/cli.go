package client

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Defaults of the admin command line.
const (
	DefaultAdminURL = "http://127.0.0.1:8989"
	DefaultUser     = "admin"
	DefaultDataDir  = "./data"
	// PasswordFile is the file, under the data directory, in which the
	// daemon keeps the generated password of the admin user.
	PasswordFile = "admin-password"
)

// Exit codes of the admin commands.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line is wrong
)

const apiKeyUsage = `Usage: sessiond apikey [flags] <command> [arguments]

Manage the API keys of a running sessiond through its admin API. A client of
the Session API and the gateway sends a key's id in the APIKey header and its
secret in the Secret header.

Commands:
  create [--name NAME]  create a key; its secret is shown this once
  list                  list the keys (never their secrets)
  revoke ID             revoke a key: its secret and every token it issued
                        stop working at once, and its sessions close

Flags (before or after the command):
  --admin URL       admin API (env SESSIOND_ADMIN_URL, default ` + DefaultAdminURL + `)
  --user NAME       admin user (env SESSIOND_ADMIN_USER, default ` + DefaultUser + `)
  --password PW     admin password (env SESSIOND_ADMIN_PASSWORD; else the content
                    of <data-dir>/` + PasswordFile + `). Prefer the environment:
                    other local users can see command-line flags.
  --data-dir DIR    the daemon's data directory (env SESSIOND_DATA_DIR,
                    default ` + DefaultDataDir + `)
  --json            print JSON instead of a table
`

// cliOptions are the flags every admin command shares.
type cliOptions struct {
	admin, user, password, dataDir string
	json                           bool
	env                            func(string) string
	// userFlag names the admin user's flag: "user", or "admin-user" where
	// --user filters by the sessions' user (sessiond sessions).
	userFlag string
}

// register defines the shared flags on fs, with the options' current
// values as defaults, so that flags given before the command carry over.
func (o *cliOptions) register(fs *flag.FlagSet) {
	userFlag := o.userFlag
	if userFlag == "" {
		userFlag = "user"
	}
	fs.StringVar(&o.admin, "admin", o.admin, "admin API URL")
	fs.StringVar(&o.user, userFlag, o.user, "admin user")
	fs.StringVar(&o.password, "password", o.password, "admin password")
	fs.StringVar(&o.dataDir, "data-dir", o.dataDir, "data directory")
	fs.BoolVar(&o.json, "json", o.json, "print JSON")
}

// usageError is a wrong command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// RunAPIKey runs `sessiond apikey create [--name N] | list | revoke ID`
// against a running daemon's admin API. args follow "apikey"; env reads
// the environment (os.Getenv in main). It returns the process exit code:
// 0 on success, 1 when the command failed, 2 for a wrong command line.
func RunAPIKey(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	o := &cliOptions{
		admin:   envOr(env, "SESSIOND_ADMIN_URL", DefaultAdminURL),
		user:    envOr(env, "SESSIOND_ADMIN_USER", DefaultUser),
		dataDir: envOr(env, "SESSIOND_DATA_DIR", DefaultDataDir),
		env:     env,
	}
	cmd, err := runAPIKey(ctx, o, args, stdout, stderr)
	return exitCode(err, "sessiond apikey"+cmd, "sessiond apikey --help", apiKeyUsage, stdout, stderr)
}

func runAPIKey(ctx context.Context, o *cliOptions, args []string, stdout, stderr io.Writer) (string, error) {
	top := newFlagSet("sessiond apikey")
	o.register(top)
	if err := parseFlags(top, args); err != nil {
		return "", err
	}
	if top.NArg() == 0 {
		return "", usagef("a command is required: create, list or revoke")
	}
	cmd := top.Arg(0)
	fs := newFlagSet("sessiond apikey " + cmd)
	o.register(fs)
	var name string
	switch cmd {
	case "create":
		fs.StringVar(&name, "name", "", "key name")
	case "list", "revoke":
	case "help":
		return "", flag.ErrHelp
	default:
		return "", usagef("unknown command %q: want create, list or revoke", cmd)
	}
	pos, err := parseInterspersed(fs, top.Args()[1:])
	if err != nil {
		return " " + cmd, err
	}
	var id string
	switch {
	case cmd == "revoke" && len(pos) != 1:
		return " " + cmd, usagef("revoke takes exactly one API key id, got %d arguments", len(pos))
	case cmd == "revoke":
		id = pos[0]
		if id == "" {
			return " " + cmd, usagef("the API key id must not be empty")
		}
	case len(pos) > 0:
		return " " + cmd, usagef("%s takes no arguments, got %q", cmd, pos)
	}
	c, err := o.client()
	if err != nil {
		return " " + cmd, err
	}

	switch cmd {
	case "create":
		k, err := c.CreateAPIKey(ctx, name)
		if err != nil {
			return " " + cmd, o.explain(err)
		}
		return " " + cmd, printCreatedKey(o.json, k, stdout, stderr)
	case "list":
		keys, err := c.ListAPIKeys(ctx)
		if err != nil {
			return " " + cmd, o.explain(err)
		}
		return " " + cmd, printKeys(o.json, keys, stdout)
	default: // revoke
		if err := c.RevokeAPIKey(ctx, id); err != nil {
			return " " + cmd, o.explain(err)
		}
		if o.json {
			return " " + cmd, writeJSON(stdout, map[string]any{"id": id, "revoked": true})
		}
		_, err := fmt.Fprintf(stdout, "Revoked API key %s: its secret and tokens no longer work and its sessions are closed.\n", id)
		return " " + cmd, err
	}
}

// client returns an admin API client after checking the URL and finding
// the password: --password, else SESSIOND_ADMIN_PASSWORD, else the file the
// daemon wrote under its data directory.
func (o *cliOptions) client() (*Client, error) {
	u, err := url.Parse(o.admin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--admin %q is not an http:// or https:// URL", o.admin)
	}
	pw := o.password
	if pw == "" {
		pw = o.env("SESSIOND_ADMIN_PASSWORD")
	}
	if pw == "" {
		path := filepath.Join(o.dataDir, PasswordFile)
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, usagef("no admin password: use --password or SESSIOND_ADMIN_PASSWORD, or --data-dir pointing at the daemon's data directory (%s does not exist)", path)
		case err != nil:
			return nil, fmt.Errorf("reading the admin password: %w", err)
		}
		pw = strings.TrimSpace(string(b))
		if pw == "" {
			return nil, fmt.Errorf("the admin password file %s is empty", path)
		}
	}
	return New(o.admin, o.user, pw), nil
}

// explain adds a hint to the errors an operator can act on.
func (o *cliOptions) explain(err error) error {
	var apiErr *APIError
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized:
		flag := o.userFlag
		if flag == "" {
			flag = "user"
		}
		return fmt.Errorf("%w (check --%s and --password, or SESSIOND_ADMIN_USER and SESSIOND_ADMIN_PASSWORD)", err, flag)
	case errors.As(err, &apiErr):
		return err
	case errors.As(err, &opErr), errors.As(err, &netErr):
		return fmt.Errorf("cannot reach the admin API at %s (is sessiond running? see --admin): %w", o.admin, err)
	default:
		return err
	}
}

func printCreatedKey(asJSON bool, k APIKey, stdout, stderr io.Writer) error {
	const note = "The secret is shown only this once: store it now. Clients send the id in the APIKey header and the secret in the Secret header."
	if asJSON {
		fmt.Fprintln(stderr, note)
		return writeJSON(stdout, keyJSON(k))
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%s\n", k.ID)
	fmt.Fprintf(tw, "NAME\t%s\n", k.Name)
	fmt.Fprintf(tw, "SECRET\t%s\n", k.Secret)
	fmt.Fprintf(tw, "CREATED\t%s\n", formatTime(k.Created))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "\n%s\n", note)
	return err
}

func printKeys(asJSON bool, keys []APIKey, stdout io.Writer) error {
	if asJSON {
		out := make([]map[string]any, 0, len(keys))
		for _, k := range keys {
			out = append(out, keyJSON(k))
		}
		return writeJSON(stdout, out)
	}
	if len(keys) == 0 {
		_, err := fmt.Fprintln(stdout, "No API keys.")
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED")
	for _, k := range keys {
		name := k.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, name, formatTime(k.Created))
	}
	return tw.Flush()
}

// keyJSON is a key as the --json output shows it.
func keyJSON(k APIKey) map[string]any {
	m := map[string]any{"id": k.ID, "name": k.Name, "created": formatTime(k.Created)}
	if k.Secret != "" {
		m["secret"] = k.Secret
	}
	return m
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func envOr(env func(string) string, key, def string) string {
	if v := env(key); v != "" {
		return v
	}
	return def
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by exitCode
	return fs
}

// parseInterspersed parses flags anywhere among args (flag stops at the
// first argument) and returns the positional arguments. Everything after
// "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseFlags parses args with fs; a wrong flag is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return &usageError{msg: err.Error()}
	}
	return err
}

// exitCode prints err, if any, and returns the exit code it deserves:
// usage on stdout for --help, the error on stderr otherwise.
func exitCode(err error, prog, help, usage string, stdout, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s' for usage.\n", prog, err, help)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return exitError
	}
}
