// Latchkey is a passwordless sign-in web application: passkeys and emailed
// links, stateless JWT sessions in HttpOnly cookies, SQLite for users and
// their passkeys. main starts it: configuration from the environment,
// wiring, graceful shutdown; nothing else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/latchkey/latchkey/admin"
	"github.com/latchkey/latchkey/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "latchkey:", err)
		os.Exit(max(1, admin.ExitCode(err)))
	}
}

// shutdownGrace bounds how long in-flight requests may take once asked to
// stop.
const shutdownGrace = 15 * time.Second

const commandsUsage = `Usage: latchkey                                 serve, configured by environment variables (latchkey -h)
       latchkey admin COMMAND …                 operator commands (latchkey admin -h)
       latchkey migrate-db --to postgres://…    copy the SQLite database into PostgreSQL
       latchkey healthcheck                     exit 0 if the server at LISTEN_ADDR answers /healthz`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "migrate-db":
			return admin.MigrateDB(ctx, args[1:], getenv, stdout, stderr)
		case "admin":
			return admin.Run(ctx, args[1:], admin.Env{Getenv: getenv, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
		case "healthcheck":
			return admin.Healthcheck(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	flags := flag.NewFlagSet("latchkey", flag.ContinueOnError)
	// The flag package's own messages would repeat the error main prints.
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, commandsUsage+"\n\nLatchkey is configured by environment variables:")
			for _, v := range app.Variables {
				def := v.Default
				if def == "" {
					def = "(empty)"
				}
				fmt.Fprintf(stdout, "\n  %s  (default %s)\n      %s\n", v.Name, def, v.Meaning)
			}
			return nil
		}
		fmt.Fprintln(stderr, commandsUsage)
		return &admin.ExitError{Code: admin.ExitUsage, Err: err}
	}
	if flags.NArg() > 0 {
		// Never start the server on a mistyped command.
		fmt.Fprintln(stderr, commandsUsage)
		return &admin.ExitError{Code: admin.ExitUsage, Err: fmt.Errorf("unknown command %q", flags.Arg(0))}
	}

	cfg, err := app.ConfigFromEnv(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := app.NewLogger(cfg, stderr)
	a, err := app.New(ctx, cfg, app.Options{Logger: logger, MailLog: stderr})
	if err != nil {
		return err
	}
	defer a.Close()

	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	logger.Info("Latchkey is listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL.String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing requests in flight")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped", "sqlite_busy_errors", a.DB.BusyErrors())
	return nil
}
