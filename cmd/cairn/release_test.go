package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testTags is the build tag of the test-only code (testonly.go and
// backend/faulty): the tests build the binary with it, a release build
// goes without.
const testTags = "cairn_testonly"

// testSeamMarks are what the test-only code leaves in a binary: the fault
// injector's package path in symbol names, and the names of the seams'
// environment variables.
var (
	faultySymbol = "cairn/backend/faulty."
	testEnvMark  = []byte("CAIRN_TESTONLY_")
)

// TestReleaseBinaryHasNoTestSeams builds cairn as make build does,
// without the test tag, and checks that the binary holds no symbol of the
// fault injector and no name of a CAIRN_TESTONLY_* variable, while the
// tests' binary, built with the tag, holds both (so the checks can see
// them). The release binary reads none of the variables: malformed ones,
// which the tests' binary refuses, change nothing.
func TestReleaseBinaryHasNoTestSeams(t *testing.T) {
	if raceBuild {
		t.Skip("the binary is not built under -race (see testMain)")
	}
	release := filepath.Join(t.TempDir(), "cairn-release")
	build := exec.Command("go", "build", "-o", release, "-ldflags", "-X main.version="+testVersion, ".")
	// The release build is the plain one: GOFLAGS=-tags=cairn_testonly,
	// which someone running the tests may have set, must not leak into it.
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	check := func(bin string, want bool) {
		t.Helper()
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm %s: %v", bin, err)
		}
		var syms []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, faultySymbol) {
				syms = append(syms, strings.TrimSpace(line))
			}
		}
		if got := len(syms) > 0; got != want {
			t.Errorf("%s: fault injector symbols present = %v, want %v (%.3q)", filepath.Base(bin), got, want, syms)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(data, testEnvMark); got != want {
			t.Errorf("%s: %q strings present = %v, want %v", filepath.Base(bin), testEnvMark, got, want)
		}
	}
	check(release, false)
	check(cairnBin, true)

	for _, v := range []string{"CAIRN_TESTONLY_CLOCK_SHIFT=bogus", "CAIRN_TESTONLY_FAULTS=rate=7"} {
		cmd := exec.Command(release, "version")
		cmd.Env = append(os.Environ(), v)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), testVersion) {
			t.Errorf("release build, cairn version with %s: %v\n%s", v, err, out)
		}
		cmd = exec.Command(cairnBin, "version")
		cmd.Env = append(os.Environ(), v)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("test build accepted malformed %s:\n%s", v, out)
		}
	}
}
