package backend

import (
	"errors"
	"io/fs"
	"syscall"
)

// IsWriteRefused reports whether err says the location refuses to store
// files, as opposed to failing: a read-only file system or mount (EROFS),
// no permission (EACCES, EPERM, an SFTP server's "permission denied"), a
// full disk or file system quota (ENOSPC, EDQUOT), or a peer's quota or
// append-only refusal (ErrQuota, ErrAppendOnly). A command that only
// reads may carry on without writing; one that writes must stop.
func IsWriteRefused(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range []error{ErrQuota, ErrAppendOnly, fs.ErrPermission,
		syscall.EROFS, syscall.ENOSPC, syscall.EDQUOT} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
