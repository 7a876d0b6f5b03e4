//go:build integration && !linux

package main

import "os/exec"

// setParentDeathSignal does nothing here: only Linux kills a child when its parent dies. The
// tests' cleanups stop what they started.
func setParentDeathSignal(*exec.Cmd) {}
