package backend

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func TestIsWriteRefused(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrQuota, true},
		{fmt.Errorf("put locks/ab: %w", ErrAppendOnly), true},
		{&os.PathError{Op: "open", Path: "/r/locks/x", Err: syscall.EROFS}, true},
		{&os.PathError{Op: "open", Path: "/r/locks/x", Err: syscall.EACCES}, true},
		{&os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.EPERM}, true},
		{fmt.Errorf("sftp: %w", fs.ErrPermission), true},
		{&os.PathError{Op: "write", Path: "/r/x", Err: syscall.ENOSPC}, true},
		{&os.PathError{Op: "write", Path: "/r/x", Err: syscall.EDQUOT}, true},
		{&os.PathError{Op: "write", Path: "/r/x", Err: syscall.EIO}, false},
		{fmt.Errorf("get: %w", ErrNotExist), false},
		{ErrHashMismatch, false},
		{errors.New("connection reset"), false},
	} {
		if got := IsWriteRefused(c.err); got != c.want {
			t.Errorf("IsWriteRefused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
