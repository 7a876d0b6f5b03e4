package architecture_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFuzzScript: hack/fuzz.sh (make fuzz) fails on a found input and on any other failure,
// passes clean runs, and runs once more — then only warns — when Go 1.26's coordinator race
// (golang/go#75804) ends a run with a bare "context deadline exceeded" and no input. The go
// command is a stand-in that replays each scenario's output.
func TestFuzzScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed by make fuzz")
	}
	race := "fuzz: elapsed: 11s, execs: 173625 (0/sec)\n--- FAIL: FuzzX (11.03s)\n    context deadline exceeded\nFAIL\nexit status 1\nFAIL\tp\t11.03s\n"
	found := "--- FAIL: FuzzX (0.01s)\n    --- FAIL: FuzzX (0.00s)\n        x_test.go:1: boom\n\n    Failing input written to testdata/fuzz/FuzzX/abc\nFAIL\n"
	other := "--- FAIL: FuzzX (0.01s)\n    context deadline exceeded\n    x_test.go:9: another problem\n--- FAIL: FuzzY (0.01s)\nFAIL\n"
	for _, tc := range []struct {
		name     string
		runs     []string // the output of each go test run, "" for a pass
		exit     int
		attempts int
		warned   bool
	}{
		{"pass", []string{""}, 0, 1, false},
		{"input found", []string{found}, 1, 1, false},
		{"another failure", []string{other}, 1, 1, false},
		{"race, then pass", []string{race, ""}, 0, 2, false},
		{"race twice", []string{race, race}, 0, 2, true},
		{"race, then an input", []string{race, found}, 1, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, out := range tc.runs {
				if err := os.WriteFile(filepath.Join(dir, "out"+string(rune('0'+i))), []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fake := filepath.Join(dir, "go")
			script := "#!/usr/bin/env bash\nn=$(cat " + dir + "/n 2>/dev/null || echo 0)\necho $((n+1)) > " + dir + "/n\n" +
				"out=" + dir + "/out$n\nif [ -s \"$out\" ]; then cat \"$out\"; exit 1; fi\necho PASS\n"
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", "hack/fuzz.sh", "./p:FuzzX")
			cmd.Env = append(os.Environ(), "GO="+fake, "FUZZTIME=1s")
			out, err := cmd.CombinedOutput()
			exit := 0
			if ee, ok := err.(*exec.ExitError); ok {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			n, _ := os.ReadFile(filepath.Join(dir, "n"))
			if exit != tc.exit || strings.TrimSpace(string(n)) != string(rune('0'+tc.attempts)) || strings.Contains(string(out), "WARNING") != tc.warned {
				t.Errorf("exit %d after %s runs (warning %v), want %d after %d (warning %v):\n%s",
					exit, strings.TrimSpace(string(n)), strings.Contains(string(out), "WARNING"), tc.exit, tc.attempts, tc.warned, out)
			}
		})
	}
}
