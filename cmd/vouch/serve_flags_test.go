package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMaxAdmissionsInFlightValidated: a negative --max-admissions-in-flight is bad usage (exit
// 2) naming the flag. (0, no bound, and the default are what BenchmarkServeLoad runs.)
func TestMaxAdmissionsInFlightValidated(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": cliPolicy})
	args := []string{"serve", "--tls-self-signed", "--policies", filepath.Join(dir, "p.yaml"), "--max-admissions-in-flight", "-1"}
	code, _, stderr := runCLI(args...)
	if want := "--max-admissions-in-flight must not be negative"; code != exitInvalid || !strings.Contains(stderr, want) {
		t.Errorf("%q: exit %d, stderr %q; want 2 and %q", args, code, stderr, want)
	}
}

// TestMaxConnectionsValidated: a negative --max-connections is bad usage (exit 2) naming the
// flag. (0, no bound, and the default are what BenchmarkServeLoad runs.)
func TestMaxConnectionsValidated(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": cliPolicy})
	args := []string{"serve", "--tls-self-signed", "--policies", filepath.Join(dir, "p.yaml"), "--max-connections", "-1"}
	code, _, stderr := runCLI(args...)
	if want := "--max-connections must not be negative"; code != exitInvalid || !strings.Contains(stderr, want) {
		t.Errorf("%q: exit %d, stderr %q; want 2 and %q", args, code, stderr, want)
	}
}
