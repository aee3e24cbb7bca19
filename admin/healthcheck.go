package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/app"
)

// HealthcheckTimeout is how long `latchkey healthcheck` waits for the
// answer.
const HealthcheckTimeout = 2 * time.Second

// Healthcheck is `latchkey healthcheck`: it exits 0 when GET /healthz on
// the server at LISTEN_ADDR answers 200 within HealthcheckTimeout, and 1
// otherwise. It reads the server's own environment and needs no shell or
// curl, so an image without either (and an orchestrator) can run it.
func Healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("latchkey healthcheck", flag.ContinueOnError)
	// The flag package's own messages would repeat the error main prints.
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	usageText := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: latchkey healthcheck\n\n"+
			"Exits 0 when GET /healthz on the server at LISTEN_ADDR answers 200 within 2 seconds,\n"+
			"and 1 otherwise. It reads the same environment as the server, and needs no shell\n"+
			"or curl: the image's HEALTHCHECK runs it.")
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usageText(stdout)
			return nil
		}
		usageText(stderr)
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if flags.NArg() > 0 {
		usageText(stderr)
		return usage("healthcheck takes no arguments")
	}
	cfg, err := app.ConfigFromEnv(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	addr, err := probeAddr(cfg.ListenAddr)
	if err != nil {
		return err
	}
	url := "http://" + addr + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, HealthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		// Straight to the server: never through HTTP_PROXY, never
		// somewhere a redirect points.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: GET %s answered %s", url, resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: GET %s answered %s\n", url, resp.Status)
	return nil
}

// probeAddr returns where to reach a server that listens on listen: the
// same address, or loopback where it listens on every address (":8080",
// "0.0.0.0:8080", "[::]:8080").
func probeAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("LISTEN_ADDR %q: want host:port", listen)
	}
	if port == "0" {
		return "", fmt.Errorf("LISTEN_ADDR %q: a server on port 0 listens on a port chosen at random, which cannot be checked", listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
