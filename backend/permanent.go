package backend

import (
	"errors"
	"io/fs"
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying the operation cannot fix, such as
// an authentication failure or a malformed request. It returns nil for nil.
// The mark survives further wrapping with %w.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether retrying the operation that returned err
// cannot help: err was marked with Permanent, or it wraps one of the
// sentinels that describe the stored state or the request rather than the
// connection (ErrNotExist, ErrNoRepository, ErrAlreadyExists, ErrAppendOnly,
// ErrQuota, ErrHashMismatch, ErrInvalidName) or fs.ErrPermission.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	for _, s := range []error{ErrNotExist, ErrNoRepository, ErrAlreadyExists,
		ErrAppendOnly, ErrQuota, ErrHashMismatch, ErrInvalidName, fs.ErrPermission} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
