// Command giobba-worker serves Giobba's reference handlers (echo, noop, sleep, fail).
//
//	giobba-worker -server 127.0.0.1:50051 -queues default,background -concurrency 4 -drain 30s
//
// SIGINT/SIGTERM: stop leasing, let running tasks finish within -drain, hand the rest
// back. A second signal exits at once (their leases lapse on the server).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/giobba/giobba/workers/go/handlers"
	"github.com/giobba/giobba/workers/go/worker"
)

// seconds is a duration flag that also takes plain seconds ("30", "0.5"), like the Python
// and Node workers' --drain.
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want seconds or a duration like 30s: %w", err)
	}
	*s.d = d
	return nil
}

func main() {
	server := os.Getenv("GIOBBA_SERVER")
	if server == "" {
		server = "127.0.0.1:50051"
	}
	// The flag package prints the default itself, so the usage only names the env variable.
	flag.StringVar(&server, "server", server, "server address HOST:PORT (env GIOBBA_SERVER)")
	queues := flag.String("queues", "default", "comma-separated queues to serve")
	concurrency := flag.Int("concurrency", 1, "tasks run at once")
	drain := 30 * time.Second
	flag.Var(seconds{&drain}, "drain", "on SIGINT/SIGTERM, `seconds` (or a duration like 1m) running tasks may finish before they are handed back")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	w, err := worker.New(worker.Config{
		Server:      server,
		Queues:      strings.Split(*queues, ","),
		Concurrency: *concurrency,
		Drain:       drain,
		Logger:      logger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "giobba-worker:", err)
		os.Exit(2)
	}
	handlers.Register(w)

	ctx, stop := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// Run logs the drain itself (how many tasks, for how long).
		logger.Info("stopping", "signal", <-signals)
		stop()
		<-signals
		logger.Warn("second signal: exiting without draining")
		os.Exit(1)
	}()
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "giobba-worker:", err)
		os.Exit(1)
	}
}
