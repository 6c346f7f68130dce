package client

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const sessionsUsage = `Usage: sessiond sessions [flags] <command> [arguments]

Read and close the sessions of a running sessiond through its admin API.

Commands:
  list                 list sessions, newest first, a page at a time
  show ID              show one session with its gateway connections
  close ID [--ttl N]   force-close a session (its token stops working at
                       once, on every instance), or N seconds from now
  close FILTERS        force-close every open session matching the filters
                       (at least one filter is required)

Filters (list and close):
  --user ID         the sessions' user id
  --state STATE     active, closed or expired
  --client NAME     the client name
  --remote ADDR     the client address
  --api-key ID      the API key that opened them ("" for none)

Paging (list):
  --page-size N     sessions per page (default 100, at most 1000)
  --page N          the page, counted from 0 (default 0)

Flags (before or after the command):
  --admin URL       admin API (env SESSIOND_ADMIN_URL, default ` + DefaultAdminURL + `)
  --admin-user NAME admin user (env SESSIOND_ADMIN_USER, default ` + DefaultUser + `);
                    --user is the sessions' user filter here
  --password PW     admin password (env SESSIOND_ADMIN_PASSWORD; else the content
                    of <data-dir>/` + PasswordFile + `). Prefer the environment:
                    other local users can see command-line flags.
  --data-dir DIR    the daemon's data directory (env SESSIOND_DATA_DIR,
                    default ` + DefaultDataDir + `)
  --json            print JSON instead of a table
`

// maxTTL bounds close --ttl, as the admin API does: a day.
const maxTTL = 24 * 60 * 60

// sessionFlags are the filter and paging flags of the sessions commands.
type sessionFlags struct {
	filter         SessionFilter
	pageSize, page int
	ttl            int
}

func (sf *sessionFlags) registerFilter(fs *flag.FlagSet) {
	fs.StringVar(&sf.filter.User, "user", "", "the sessions' user id")
	fs.StringVar(&sf.filter.State, "state", "", "active, closed or expired")
	fs.StringVar(&sf.filter.Client, "client", "", "client name")
	fs.StringVar(&sf.filter.Remote, "remote", "", "client address")
	fs.Func("api-key", "API key id", func(v string) error {
		sf.filter.APIKey, sf.filter.APIKeySet = v, true
		return nil
	})
}

// RunSessions runs `sessiond sessions list | show ID | close ID|FILTERS`
// against a running daemon's admin API. args follow "sessions"; env reads
// the environment (os.Getenv in main). It returns the process exit code:
// 0 on success, 1 when the command failed, 2 for a wrong command line.
func RunSessions(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	o := &cliOptions{
		admin:    envOr(env, "SESSIOND_ADMIN_URL", DefaultAdminURL),
		user:     envOr(env, "SESSIOND_ADMIN_USER", DefaultUser),
		dataDir:  envOr(env, "SESSIOND_DATA_DIR", DefaultDataDir),
		env:      env,
		userFlag: "admin-user",
	}
	cmd, err := runSessions(ctx, o, args, stdout)
	return exitCode(err, "sessiond sessions"+cmd, "sessiond sessions --help", sessionsUsage, stdout, stderr)
}

func runSessions(ctx context.Context, o *cliOptions, args []string, stdout io.Writer) (string, error) {
	top := newFlagSet("sessiond sessions")
	o.register(top)
	if err := parseFlags(top, args); err != nil {
		return "", err
	}
	if top.NArg() == 0 {
		return "", usagef("a command is required: list, show or close")
	}
	cmd := top.Arg(0)
	fs := newFlagSet("sessiond sessions " + cmd)
	o.register(fs)
	sf := &sessionFlags{ttl: -1}
	switch cmd {
	case "list":
		sf.registerFilter(fs)
		fs.IntVar(&sf.pageSize, "page-size", 0, "sessions per page")
		fs.IntVar(&sf.page, "page", 0, "page, from 0")
	case "show":
	case "close":
		sf.registerFilter(fs)
		fs.IntVar(&sf.ttl, "ttl", -1, "seconds before the close")
	case "help":
		return "", flag.ErrHelp
	default:
		return "", usagef("unknown command %q: want list, show or close", cmd)
	}
	pos, err := parseInterspersed(fs, top.Args()[1:])
	if err != nil {
		return " " + cmd, err
	}
	if err := sf.check(cmd, pos); err != nil {
		return " " + cmd, err
	}
	c, err := o.client()
	if err != nil {
		return " " + cmd, err
	}
	switch {
	case cmd == "list":
		p, err := c.ListSessions(ctx, sf.filter, sf.pageSize, sf.page)
		if err != nil {
			return " " + cmd, o.explain(err)
		}
		return " " + cmd, printSessions(o.json, p, stdout)
	case cmd == "show":
		s, err := c.GetSession(ctx, pos[0])
		if err != nil {
			return " " + cmd, o.explain(err)
		}
		return " " + cmd, printSession(o.json, s, stdout)
	case len(pos) == 1: // close one
		ttl := max(sf.ttl, 0)
		if err := c.CloseSession(ctx, pos[0], time.Duration(ttl)*time.Second); err != nil {
			return " " + cmd, o.explain(err)
		}
		if o.json {
			return " " + cmd, writeJSON(stdout, map[string]any{"id": pos[0], "closed": true, "ttl": ttl})
		}
		if ttl > 0 {
			_, err = fmt.Fprintf(stdout, "Session %s closes in %d seconds.\n", pos[0], ttl)
		} else {
			_, err = fmt.Fprintf(stdout, "Closed session %s: its token no longer works.\n", pos[0])
		}
		return " " + cmd, err
	default: // close by filters
		n, err := c.CloseSessions(ctx, sf.filter)
		if err != nil {
			return " " + cmd, o.explain(err)
		}
		if o.json {
			return " " + cmd, writeJSON(stdout, map[string]any{"closed": n})
		}
		_, err = fmt.Fprintf(stdout, "Closed %d %s.\n", n, plural(n, "session", "sessions"))
		return " " + cmd, err
	}
}

// check refuses command lines that the admin API would refuse, before
// any request is sent.
func (sf *sessionFlags) check(cmd string, pos []string) error {
	switch cmd {
	case "list":
		if len(pos) > 0 {
			return usagef("list takes no arguments, got %q (filter with --user, --state, --client, --remote, --api-key)", pos)
		}
		if sf.pageSize < 0 || sf.pageSize > 1000 {
			return usagef("--page-size must be from 1 to 1000, got %d", sf.pageSize)
		}
		if sf.page < 0 {
			return usagef("--page counts from 0, got %d", sf.page)
		}
	case "show":
		if len(pos) != 1 || pos[0] == "" {
			return usagef("show takes exactly one session id, got %d arguments", len(pos))
		}
	case "close":
		switch {
		case len(pos) > 1:
			return usagef("close takes one session id, or filters instead; got %d arguments", len(pos))
		case len(pos) == 1 && pos[0] == "":
			return usagef("the session id must not be empty")
		case len(pos) == 1 && !sf.filter.empty():
			return usagef("close takes a session id or filters, not both")
		case len(pos) == 0 && sf.filter.empty():
			return usagef("close needs a session id, or at least one filter (--user, --state, --client, --remote, --api-key) to close many")
		case len(pos) == 0 && sf.ttl >= 0:
			return usagef("--ttl applies to one session: give its id")
		case sf.ttl > maxTTL || sf.ttl < -1:
			return usagef("--ttl must be from 0 to %d seconds, got %d", maxTTL, sf.ttl)
		}
	}
	if s := sf.filter.State; s != "" && s != "active" && s != "closed" && s != "expired" {
		return usagef("--state must be active, closed or expired, got %q", s)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// sessionJSON is a session as the --json output shows it.
func sessionJSON(s Session) map[string]any {
	var expires any
	if s.Expires != nil {
		expires = formatTime(*s.Expires)
	}
	conns := make([]map[string]any, 0, len(s.Connections))
	for _, c := range s.Connections {
		var lastUsed any
		if c.Statistics.LastUsed != nil {
			lastUsed = formatTime(*c.Statistics.LastUsed)
		}
		conns = append(conns, map[string]any{"server": c.Server, "state": c.State, "statistics": map[string]any{
			"requests": c.Statistics.Requests, "reads": c.Statistics.Reads, "writes": c.Statistics.Writes,
			"errors": c.Statistics.Errors, "last_used": lastUsed}})
	}
	return map[string]any{
		"id": s.ID, "state": s.State, "user": s.User, "user_name": s.UserName, "client": s.Client,
		"remote": s.Remote, "connected": formatTime(s.Connected), "last_request": formatTime(s.LastRequest),
		"expires": expires, "idle": s.Idle, "io_activity": s.IOActivity, "api_key": s.APIKey,
		"data": rawJSON(s.Data), "user_data": rawJSON(s.UserData), "services": s.Services, "connections": conns,
	}
}

func rawJSON(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("null")
	}
	return v
}

func printSessions(asJSON bool, p SessionPage, stdout io.Writer) error {
	if asJSON {
		out := make([]map[string]any, 0, len(p.Sessions))
		for _, s := range p.Sessions {
			out = append(out, sessionJSON(s))
		}
		return writeJSON(stdout, map[string]any{"total": p.Total, "page": p.Number, "page_size": p.Size, "sessions": out})
	}
	if len(p.Sessions) == 0 {
		msg := "No sessions."
		if p.Total > 0 {
			msg = fmt.Sprintf("No sessions on page %d: %d in all.", p.Number, p.Total)
		}
		_, err := fmt.Fprintln(stdout, msg)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tSTATE\tCLIENT\tREMOTE\tCONNECTED\tIDLE\tIO\tSERVICES")
	for _, s := range p.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, dash(s.User), s.State, dash(s.Client), dash(s.Remote),
			formatTime(s.Connected), formatIdle(s.Idle), s.IOActivity, dash(strings.Join(s.Services, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	first := p.Number*p.Size + 1
	msg := fmt.Sprintf("\nSessions %d-%d of %d (page %d).", first, first+len(p.Sessions)-1, p.Total, p.Number)
	if p.HasNext {
		msg += fmt.Sprintf(" Next: --page %d.", p.Number+1)
	}
	_, err := fmt.Fprintln(stdout, msg)
	return err
}

func printSession(asJSON bool, s Session, stdout io.Writer) error {
	if asJSON {
		return writeJSON(stdout, sessionJSON(s))
	}
	expires := "-"
	if s.Expires != nil {
		expires = formatTime(*s.Expires)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"ID", s.ID}, {"STATE", s.State}, {"USER", dash(s.User)}, {"USER NAME", dash(s.UserName)},
		{"CLIENT", dash(s.Client)}, {"REMOTE", dash(s.Remote)}, {"CONNECTED", formatTime(s.Connected)},
		{"LAST REQUEST", formatTime(s.LastRequest)}, {"EXPIRES", expires}, {"IDLE", formatIdle(s.Idle)},
		{"IO ACTIVITY", strconv.Itoa(s.IOActivity)}, {"API KEY", dash(s.APIKey)},
		{"DATA", string(rawJSON(s.Data))}, {"USER DATA", string(rawJSON(s.UserData))},
		{"SERVICES", dash(strings.Join(s.Services, ", "))},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Connections) == 0 {
		return nil
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tREQUESTS\tREADS\tWRITES\tERRORS\tLAST USED")
	for _, c := range s.Connections {
		lastUsed := "-"
		if c.Statistics.LastUsed != nil {
			lastUsed = formatTime(*c.Statistics.LastUsed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", c.Server, c.State, c.Statistics.Requests,
			c.Statistics.Reads, c.Statistics.Writes, c.Statistics.Errors, lastUsed)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatIdle shows seconds of idleness as a duration: 1.5s, 3m20s, 26h0m0s.
func formatIdle(sec float64) string {
	return (time.Duration(sec*1000) * time.Millisecond).String()
}
