package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

var _ backend.TempCleaner = (*Backend)(nil)

// maxSkew is how far this host's clock may be from the service's: AWS
// Signature V4 refuses requests more than 15 minutes off, so a client
// that can talk to the service at all is within it.
const maxSkew = 15 * time.Minute

// RemoveStaleTemp implements backend.TempCleaner for S3: the temporary
// files of a bucket are the parts of multipart uploads that were never
// completed (a put killed mid-way by kill -9 or a power cut; a failed
// one is aborted at once). Such parts are invisible to List but stored,
// and billed, until aborted. It aborts the uploads below the
// repository's prefix, to names the backend writes, started more than
// olderThan ago; the service stamped their start, so olderThan is
// widened by maxSkew to be sure no upload in progress is lost. bytes is
// what the uploads had stored, as the service lists their parts.
func (b *Backend) RemoveStaleTemp(ctx context.Context, olderThan time.Duration) (removed int, bytes int64, err error) {
	if err := backend.CheckTempAge(olderThan); err != nil {
		return 0, 0, err
	}
	cutoff := b.clock().Add(-olderThan - maxSkew)
	prefix := ""
	if b.cfg.Prefix != "" {
		prefix = b.cfg.Prefix + "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing goroutine on an early return
	var first error
	// The whole bucket's uploads, filtered here: MinIO lists uploads by
	// a prefix only when it is a whole object name.
	for u := range b.cl.ListIncompleteUploads(ctx, b.cfg.Bucket, "", true) {
		if u.Err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return removed, bytes, cerr
			}
			return removed, bytes, fmt.Errorf("list incomplete uploads: %w", classify(u.Err))
		}
		rel, ok := strings.CutPrefix(u.Key, prefix)
		if !ok || !u.Initiated.Before(cutoff) || !b.ownKey(rel) {
			continue
		}
		err := b.core.AbortMultipartUpload(ctx, b.cfg.Bucket, u.Key, u.UploadID)
		if err != nil && !errors.Is(classify(err), backend.ErrNotExist) {
			if first == nil {
				first = fmt.Errorf("abort the incomplete upload of %s: %w", u.Key, classify(err))
			}
			continue
		}
		removed++
		bytes += u.Size
	}
	if cerr := ctx.Err(); cerr != nil {
		return removed, bytes, cerr
	}
	return removed, bytes, first
}

// ownKey reports whether rel, an object name below the repository's
// prefix, names a file of the repository's layout (backend.FilePath of a
// valid handle): nothing else in the bucket is touched.
func (b *Backend) ownKey(rel string) bool {
	if rel == backend.ConfigName {
		return true
	}
	dir, name, ok := strings.Cut(rel, "/")
	if !ok {
		return false
	}
	for _, t := range backend.AllTypes {
		if t == backend.ConfigFile || t.Dir() != dir {
			continue
		}
		if t == backend.PackFile {
			sub, n, ok := strings.Cut(name, "/")
			return ok && backend.Lists(t, sub, n) && backend.PackDir(n) == sub
		}
		return backend.Lists(t, "", name)
	}
	return false
}
