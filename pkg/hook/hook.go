// Package hook is the shared shell of the four peer hooks: argument checks, a
// context cancelled on SIGTERM/SIGINT, and one-line errors on stderr (the peer logs
// stderr and drops stdout).
package hook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// ExitError carries a specific exit code out of a hook.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs fn with the hook's arguments and exits: 0 on success, the ExitError's
// code, or 1 with the error on one line of stderr.
func Main(name string, args []string, usage string, fn func(ctx context.Context, args []string) error) {
	os.Exit(run(name, args, usage, fn))
}

func run(name string, args []string, usage string, fn func(ctx context.Context, args []string) error) int {
	if len(args) != strings.Count(usage, " ")+1 || usage == "" {
		fmt.Fprintf(os.Stderr, "kubecc %s: usage: %s %s\n", name, name, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := fn(ctx, args)
	var exit *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if exit.Err != nil {
			fmt.Fprintf(os.Stderr, "kubecc %s: %s\n", name, OneLine(exit.Err.Error()))
		}
		return exit.Code
	default:
		fmt.Fprintf(os.Stderr, "kubecc %s: %s\n", name, OneLine(err.Error()))
		return 1
	}
}

// OneLine folds a multi-line message onto one line.
func OneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
