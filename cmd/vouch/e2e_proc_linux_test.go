//go:build integration

package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill the started process when the test binary dies (a
// `go test -timeout` panic, a crash, SIGKILL), so no etcd or kube-apiserver outlives its test.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
