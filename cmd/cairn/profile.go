package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// envCPUProfile and envMemProfile name files that receive a pprof CPU
// profile of the whole run and a heap profile taken at its end. They are
// for developers measuring where time and memory go (docs/performance.md);
// with neither set, nothing is profiled.
const (
	envCPUProfile = "CAIRN_CPUPROFILE"
	envMemProfile = "CAIRN_MEMPROFILE"
)

// startProfiling starts what the profiling variables ask for and returns
// the function that finishes it, which main must call before it exits.
// A profile that cannot be written is reported on stderr and the command
// runs on: profiling never changes a command's outcome.
func startProfiling() (stop func()) {
	var stops []func()
	if path := os.Getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cairn: cpu profile: %v\n", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv(envMemProfile); path != "" {
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err == nil {
				runtime.GC()
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "cairn: memory profile: %v\n", err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
