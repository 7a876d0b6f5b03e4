// Command vouch verifies container images against Kyverno verifyImages policies: offline with
// `vouch apply`, as a narrated example with `vouch demo`.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes (DESIGN §4).
const (
	exitOK      = 0
	exitFailed  = 1 // some result is fail or error
	exitInvalid = 2 // bad usage or invalid input
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func invalid(err error) error { return &exitError{code: exitInvalid, err: err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "vouch",
		Short:         "Verify container images against Kyverno verifyImages policies",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return invalid(err) })
	root.AddCommand(applyCommand(stdout, stderr), demoCommand(stdout), serveCommand(stdout, stderr))
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.code != exitFailed {
			fmt.Fprintf(stderr, "vouch: %v\n", ee.err)
		}
		return ee.code
	}
	// Unknown commands, missing arguments and other cobra usage errors.
	fmt.Fprintf(stderr, "vouch: %v\n", err)
	return exitInvalid
}
