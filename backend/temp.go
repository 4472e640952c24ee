package backend

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TempPrefix starts the names of the temporary files that backends which
// write to a temporary name and rename (local, sftp, the peer server's
// store) create next to the final file. No valid file name starts with it,
// so List never reports one.
const TempPrefix = ".tmp-"

// The modes folder stores (local, sftp) give what they write, where the
// file system or server allows modes (docs/design.md, "Files"): folders
// are private, a temporary file is private before any content is
// written to it, and a stored file is read-only.
const (
	DirMode  = 0o700
	TempMode = 0o600
	FileMode = 0o400
)

// TempCleaner is implemented by backends whose writers can leave
// temporary files behind when they are killed mid-upload (kill -9, a
// power cut, a dropped connection that never comes back).
type TempCleaner interface {
	// RemoveStaleTemp removes the temporary files, in every folder of the
	// repository's layout, whose modification time is more than olderThan
	// before the storage's current time, and returns how many it removed
	// and their bytes. A temporary file still being written has a recent
	// modification time, so a writer elsewhere, on another host included,
	// must never lose an upload in progress: olderThan must be positive,
	// and implementations must measure age by the storage's own clock
	// where it can differ from the caller's. Only regular files are
	// removed; real files and anything not named like a temporary file
	// must never be touched. A file that disappears meanwhile is not an
	// error. Removal goes on past a file that cannot be removed; the
	// error then names the first such file, and the counts still say what
	// was removed.
	RemoveStaleTemp(ctx context.Context, olderThan time.Duration) (removed int, bytes int64, err error)
}

// CheckTempAge returns an error, marked permanent, unless olderThan is
// positive, as TempCleaner requires: a zero age would remove the
// temporary files of uploads in progress.
func CheckTempAge(olderThan time.Duration) error {
	if olderThan <= 0 {
		return Permanent(fmt.Errorf("remove stale temporary files: age %v is not positive", olderThan))
	}
	return nil
}

// Wrapper is the convention for backends that wrap another one (retry,
// limit, faulty): Unwrap returns the wrapped backend, so optional
// interfaces such as TempCleaner can be found below the wrappers. A
// wrapper must not return itself.
type Wrapper interface {
	Unwrap() Backend
}

// maxWrapDepth bounds the Unwrap chain RemoveStaleTemp follows: real
// stacks are two or three deep, so a longer chain is a cycle, our bug.
const maxWrapDepth = 32

// errWrapDepth is returned for an Unwrap chain longer than maxWrapDepth.
var errWrapDepth = errors.New("remove stale temporary files: backend wrappers nest too deep (an Unwrap cycle?)")

// RemoveStaleTemp calls RemoveStaleTemp on be or, following Unwrap, on the
// first backend below it that implements TempCleaner. A stack without one
// (an in-memory or a peer backend, which never leave temporary files on
// the client's side) returns 0, 0, nil.
func RemoveStaleTemp(ctx context.Context, be Backend, olderThan time.Duration) (removed int, bytes int64, err error) {
	if err := CheckTempAge(olderThan); err != nil {
		return 0, 0, err
	}
	for range maxWrapDepth {
		if be == nil {
			return 0, 0, nil
		}
		if tc, ok := be.(TempCleaner); ok {
			return tc.RemoveStaleTemp(ctx, olderThan)
		}
		w, ok := be.(Wrapper)
		if !ok {
			return 0, 0, nil
		}
		be = w.Unwrap()
	}
	return 0, 0, errWrapDepth
}
