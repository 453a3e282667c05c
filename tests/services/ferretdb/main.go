// Command ferretdb-harness runs FerretDB embedded, with its SQLite backend, as a
// MongoDB-wire server for Giobba's tests.
//
// FerretDB's own cmd/ferretdb cannot be used via `go install` (it panics on
// missing build info), so the tests build this small program instead.
//
// It prints "READY <host:port>" on stdout once the listener is bound (the port
// accepts connections from then on) and exits 0 on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on (host:port; port 0 picks a free one)")
	dir := flag.String("dir", "", "directory for the SQLite databases (created if missing; required)")
	grace := flag.Duration("grace", time.Second, "how long to wait for FerretDB to close client connections on shutdown")
	logLevel := flag.String("log-level", "warn", "log level on stderr: debug, info, warn or error")
	flag.Parse()

	if err := run(*listen, *dir, *grace, *logLevel); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-harness: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, dir string, grace time.Duration, logLevel string) error {
	if dir == "" {
		return errors.New("-dir is required")
	}

	// Test servers must never be reachable from outside this machine.
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("bad -listen: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-listen must be a loopback address, got %q", host)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("bad -log-level: %w", err)
	}

	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}

	if err = os.MkdirAll(abs, 0o700); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: listen},
		Logger:   logger,
		Handler:  "sqlite",
		// FerretDB wants a "file:" URL naming an existing directory, ending with "/".
		SQLiteURL: "file:" + strings.TrimSuffix(abs, "/") + "/",
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	done := make(chan error, 1)

	go func() { done <- f.Run(ctx) }()

	// New has bound the listener already: connections queue until Run accepts them.
	// MongoDBURI gives the real address, which matters when the port was 0.
	addr := strings.TrimSuffix(strings.TrimPrefix(f.MongoDBURI(), "mongodb://"), "/")
	fmt.Printf("READY %s\n", addr)

	select {
	case err = <-done:
		return err
	case <-ctx.Done():
	}

	// FerretDB gives connected clients up to 3 s to go away; tests that stop the
	// server should not pay that, and SQLite in WAL mode loses no committed write.
	select {
	case err = <-done:
		return err
	case <-time.After(grace):
		fmt.Fprintln(os.Stderr, "ferretdb-harness: clients still connected after grace period, exiting")
		return nil
	}
}
