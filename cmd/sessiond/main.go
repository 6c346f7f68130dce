// Command sessiond is the session service daemon and its command-line
// client. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"sessiond/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

const usage = `usage: sessiond <command> [flags]

commands:
  serve     run the daemon (sessiond serve --help for its flags)
  apikey    create, list or revoke API keys of a running daemon
            (sessiond apikey --help)
  sessions  list, show or close sessions of a running daemon
            (sessiond sessions --help)
  hash-password
            read a password on stdin, print its argon2id hash for
            the admin-users of the configuration
  version   print the version (--json for JSON)
`

// run runs the command line args with the environment environ (KEY=value)
// and returns the exit code: 0 done, 1 failed, 2 wrong command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr, environ)
	case "apikey":
		return client.RunAPIKey(ctx, args[1:], stdout, stderr, func(k string) string { return getenv(environ, k) })
	case "sessions":
		return client.RunSessions(ctx, args[1:], stdout, stderr, func(k string) string { return getenv(environ, k) })
	case "hash-password":
		return runHashPassword(args[1:], os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		return runVersion(args[1:], stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sessiond: unknown command %q\nRun 'sessiond --help' for usage.\n", args[0])
		return 2
	}
}

// runVersion prints the version, as JSON with --json.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessiond version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, "Usage: sessiond version [--json]\n\nPrints the version of sessiond and of the Go toolchain that built it.\n")
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "sessiond version: %v\nRun 'sessiond version --help' for usage.\n", err)
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "sessiond version: unexpected argument %q\nRun 'sessiond version --help' for usage.\n", fs.Arg(0))
		return 2
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(map[string]string{"version": version(), "go": runtime.Version()})
		return 0
	}
	fmt.Fprintln(stdout, "sessiond", version(), runtime.Version())
	return 0
}

// version is the module version stamped by the go command, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
