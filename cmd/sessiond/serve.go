package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"sessiond/config"
	"sessiond/internal/daemon"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessiond serve: %v\n", err)
		return 2
	}
	daemon.Version = version()
	log := daemon.NewLogger(cfg, stderr)
	m := &daemon.Main{Config: cfg, Log: log, Stdout: stdout, AdminPassword: getenv("SESSIOND_ADMIN_PASSWORD")}
	if err := m.Open(); err != nil {
		log.Error("cannot start", "err", err)
		m.Close()
		return 1
	}
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-m.Failed:
		log.Error("listener failed", "err", err)
	}
	if err := m.Close(); err != nil {
		log.Error("stopping", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
