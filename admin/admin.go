// Package admin is Latchkey's operator commands: `latchkey migrate-db`
// and `latchkey admin …`. They run in the same binary, from the same
// environment as the server, and are safe to run while servers run.
package admin

import (
	"errors"
	"fmt"
)

// Exit codes, as documented in the README.
const (
	ExitFailure = 1 // the command failed, or the account is unknown
	ExitUsage   = 2 // bad usage: unknown command, flag or argument
)

// ExitError is an error that asks the process to exit with Code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usage returns a bad-usage error.
func usage(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// ExitCode returns the process exit code for err: 0 for nil, the
// ExitError's code, or ExitFailure.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*ExitError](err); ok {
		return e.Code
	}
	return ExitFailure
}
