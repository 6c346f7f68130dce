package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"sessiond/config"
	"sessiond/daemon"
)

// runServe runs `sessiond serve` until ctx ends or a listener fails.
// environ is the process environment (KEY=value); SIGHUP reloads what can
// be reloaded from the --config file, with the flags and environment of
// the start.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	cfg, err := config.LoadEnviron(args, environ)
	var ue *config.UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		config.Usage(stdout)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "sessiond serve: %v\nRun 'sessiond serve --help' for usage.\n", err)
		return 2
	case err != nil:
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "sessiond serve: %s\n", line)
		}
		fmt.Fprintln(stderr, "Nothing was started. Run 'sessiond serve --help' for usage.")
		return 2
	}
	daemon.Version = version()
	level := new(slog.LevelVar)
	log := daemon.NewLogger(cfg, stderr, level)
	m := &daemon.Main{Config: cfg, Log: log, Level: level, Stdout: stdout, AdminPassword: getenv(environ, "SESSIOND_ADMIN_PASSWORD")}

	// SIGHUP would otherwise end the process; watch it before starting.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if err := m.Open(); err != nil {
		log.Error("cannot start", "err", err)
		m.Close()
		return 1
	}
	for stopping := false; !stopping; {
		select {
		case <-ctx.Done():
			log.Info("stopping")
			stopping = true
		case err := <-m.Failed:
			log.Error("listener failed", "err", err)
			stopping = true
		case <-hup:
			reload(m, args, environ)
		}
	}
	if err := m.Close(); err != nil {
		log.Error("stopping", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// reload loads the configuration again and applies it; a configuration
// with problems is not applied (each problem is logged), but certificates
// are still read again from the files already configured.
func reload(m *daemon.Main, args, environ []string) {
	m.Log.Info("SIGHUP: reloading")
	cfg, err := config.LoadEnviron(args, environ)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			m.Log.Error("reload: configuration problem; keeping the running configuration", "problem", line)
		}
		m.ReloadCertificates(m.Config)
		return
	}
	m.Reload(cfg)
}

// getenv looks key up in environ.
func getenv(environ []string, key string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
