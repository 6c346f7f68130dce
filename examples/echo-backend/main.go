// Command echo-backend is the small backend of README.md's walk-through: a
// stand-in for a service behind sessiond's gateway. It answers every request
// with the path it received, the session headers sessiond set
// (Xdata-Session-Id, Xdata-Session-Dir) and whether any credential (the
// session token, APIKey, Secret, Authorization) reached it, which sessiond
// must never let happen.
//
//	go run ./examples/echo-backend 127.0.0.1:9000
//
// It stops on SIGINT or SIGTERM and then exits 0. Standard library only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// credentials are the headers that carry a client's secrets to sessiond.
var credentials = []string{"Xdata-Session-Token", "APIKey", "Secret", "Authorization"}

// answer is what the backend says about each request.
type answer struct {
	Path       string  `json:"path"`
	SessionID  string  `json:"session_id"`
	SessionDir string  `json:"session_dir"`
	TokenSeen  *string `json:"token_seen"` // the first credential header that arrived; null when none did
}

func echo(w http.ResponseWriter, r *http.Request) {
	a := answer{
		Path:       r.URL.RequestURI(),
		SessionID:  r.Header.Get("Xdata-Session-Id"),
		SessionDir: r.Header.Get("Xdata-Session-Dir"),
	}
	for _, h := range credentials {
		if r.Header.Get(h) != "" {
			a.TokenSeen = &h
			break
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a)
}

func main() {
	addr := "127.0.0.1:9000"
	switch len(os.Args) {
	case 1:
	case 2:
		addr = os.Args[1]
	default:
		fmt.Fprintln(os.Stderr, "usage: echo-backend [address, default 127.0.0.1:9000]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 10 * time.Second}
	failed := make(chan error, 1)
	go func() { failed <- srv.ListenAndServe() }()
	log.Printf("echo-backend listening on %s", addr)
	select {
	case err := <-failed:
		log.Fatal(err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
