package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot/fusefs"
)

// fakeMount is a mountServer whose Wait returns when unmounted is closed.
type fakeMount struct {
	unmounted chan struct{}
	err       error // what Unmount returns
	calls     int
}

func (f *fakeMount) Wait() { <-f.unmounted }

func (f *fakeMount) Unmount() error {
	f.calls++
	if f.err == nil || errors.Is(f.err, fusefs.ErrBusy) {
		close(f.unmounted)
	}
	return f.err
}

// serveMount ends the mount however the run ends: a signal unmounts and
// succeeds; a lost lock unmounts and fails, naming the lost lock (exit
// 1); a busy mount detached is a warning; an unmount from outside ends it
// without unmounting again.
func TestServeMount(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cause     error // nil: unmounted from outside
		unmount   error
		wantErr   error
		wantOut   string
		wantWarn  string
		wantCalls int
	}{
		{name: "signal", cause: context.Canceled, wantOut: "unmounted /mnt", wantCalls: 1},
		{name: "lock lost", cause: repo.ErrLockLost, wantErr: repo.ErrLockLost, wantCalls: 1},
		{name: "busy", cause: context.Canceled, unmount: fusefs.ErrBusy, wantOut: "unmounted /mnt", wantWarn: "cairn: warning: mount: /mnt: the mount was in use", wantCalls: 1},
		{name: "unmount fails", cause: context.Canceled, unmount: errors.New("no such mount"), wantErr: errors.New("no such mount"), wantCalls: 1},
		{name: "from outside", wantOut: "/mnt was unmounted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			p := &printer{out: &out, errw: &errw}
			srv := &fakeMount{unmounted: make(chan struct{}), err: tc.unmount}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if tc.cause != nil {
				cancel(tc.cause)
			} else {
				close(srv.unmounted)
			}
			err := serveMount(ctx, srv, p, "/mnt")
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != nil && (err == nil || !strings.Contains(err.Error(), tc.wantErr.Error())):
				t.Fatalf("error %v, want one saying %v", err, tc.wantErr)
			}
			if errors.Is(tc.wantErr, repo.ErrLockLost) && (!errors.Is(err, repo.ErrLockLost) || exitCode(err, false) != exitError) {
				t.Fatalf("lock lost: %v gives exit %d, want %d", err, exitCode(err, false), exitError)
			}
			if srv.calls != tc.wantCalls {
				t.Errorf("Unmount called %d times, want %d", srv.calls, tc.wantCalls)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q, want %q", out.String(), tc.wantOut)
			}
			if !strings.HasPrefix(errw.String(), tc.wantWarn) || (tc.wantWarn == "" && errw.Len() > 0) {
				t.Errorf("stderr %q, want %q", errw.String(), tc.wantWarn)
			}
		})
	}
}
