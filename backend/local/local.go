package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/cairn-backup/cairn/backend"
)

var (
	_ backend.Backend     = (*Backend)(nil)
	_ backend.TempCleaner = (*Backend)(nil)
)

// listBatch bounds how many folder entries List holds at once.
const listBatch = 1000

// Backend is a repository in a local folder.
type Backend struct {
	dir string
}

// Create makes the repository folders under dir (dir itself included) and
// returns the backend. It writes no file; the caller stores the config.
// It refuses, with an error wrapping backend.ErrAlreadyExists, a dir that
// already holds a config, and never removes or replaces anything.
func Create(ctx context.Context, dir string) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	dir = filepath.Clean(dir)
	b := &Backend{dir: dir}
	switch _, err := os.Lstat(b.path(configHandle)); {
	case err == nil:
		return nil, fmt.Errorf("create %s: %w: it holds a repository config", dir, backend.ErrAlreadyExists)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	_, err := os.Stat(dir)
	existed := err == nil
	if err := os.MkdirAll(dir, backend.DirMode); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, t := range backend.AllTypes {
		if t == backend.ConfigFile {
			continue
		}
		if err := mkdir(filepath.Join(dir, t.Dir())); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	data := filepath.Join(dir, backend.PackFile.Dir())
	for i := range 256 {
		if err := mkdir(filepath.Join(data, fmt.Sprintf("%02x", i))); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	dirs := []string{data, dir}
	if !existed {
		dirs = append(dirs, filepath.Dir(dir))
	}
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	return b, nil
}

// Open returns the backend for the repository in dir. A dir without a
// config returns an error wrapping backend.ErrNoRepository.
func Open(ctx context.Context, dir string) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	dir = filepath.Clean(dir)
	b := &Backend{dir: dir}
	fi, err := os.Stat(b.path(configHandle))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open %s: %w", dir, backend.ErrNoRepository)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", dir, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open %s: config is not a regular file", dir)
	}
	return b, nil
}

// New returns the backend of the repository folder dir as it stands: it
// checks nothing and makes no folder. Listing a missing folder finds
// nothing, and Put makes a missing type or pack folder (as after one was
// removed by hand) but not dir itself. It is for the peer server's store,
// which makes each folder itself, when the first file goes in, so that it
// can count the folder against the client's quota.
func New(dir string) *Backend { return &Backend{dir: filepath.Clean(dir)} }

// MakeDir makes the folder dir (mode 0700), whose parent must exist, and
// syncs the parent so the new entry survives a power cut. A dir that
// exists already gives an error wrapping fs.ErrExist.
func MakeDir(dir string) error {
	if err := os.Mkdir(dir, backend.DirMode); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

var configHandle = backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}

// Location implements backend.Backend: the folder's path.
func (b *Backend) Location() string { return b.dir }

// Properties implements backend.Backend. Two connections: a disk gains
// little from more parallel streams (an SSD is already saturated by two
// large sequential writers, and a spinning disk only seeks more), while
// the CPU-heavy stages of a backup run elsewhere and overlap the I/O.
func (b *Backend) Properties() backend.Properties {
	return backend.Properties{Connections: 2, HasAtomicReplace: true}
}

// path is where h lives; h must be valid.
func (b *Backend) path(h backend.Handle) string {
	return filepath.Join(b.dir, filepath.FromSlash(backend.FilePath(h)))
}

// List implements backend.Backend. Symbolic links are followed. Temporary
// files, entries that are not regular files and names that are not valid for t (or, for packs, lie in
// the wrong subfolder) are skipped. A file deleted while the listing runs
// may or may not be listed.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := backend.CheckType(ctx, t); err != nil {
		return err
	}
	switch t {
	case backend.ConfigFile:
		fi, err := os.Stat(b.path(configHandle))
		return backend.ListConfig(fi, err, fn)
	case backend.PackFile:
		data := filepath.Join(b.dir, t.Dir())
		subs, err := os.ReadDir(data)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		for _, sub := range subs {
			if !backend.IsPackDir(sub.Name()) {
				continue
			}
			if !sub.IsDir() {
				// A symbolic link to a folder is followed, as Get would.
				fi, err := os.Stat(filepath.Join(data, sub.Name()))
				if err != nil || !fi.IsDir() {
					continue
				}
			}
			if err := listDir(ctx, t, filepath.Join(data, sub.Name()), sub.Name(), fn); err != nil {
				return err
			}
		}
		return nil
	}
	return listDir(ctx, t, filepath.Join(b.dir, t.Dir()), "", fn)
}

// listDir calls fn for each valid file of type t in dir whose name starts
// with prefix. Errors from fn are returned unwrapped.
func listDir(ctx context.Context, t backend.FileType, dir, prefix string, fn func(backend.FileInfo) error) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	defer f.Close() // read-only folder handle: nothing to lose on close
	for {
		entries, rerr := f.ReadDir(listBatch)
		for _, e := range entries {
			err := backend.ListEntry(ctx, t, prefix, e.Name(), func() (fs.FileInfo, error) {
				if e.Type()&fs.ModeSymlink != 0 {
					return os.Stat(filepath.Join(dir, e.Name())) // followed, as Stat and Get follow it
				}
				return e.Info()
			}, fn)
			if err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("list %s: %w", t, rerr)
		}
	}
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := backend.CheckHandle(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	fi, err := os.Stat(b.path(h))
	return backend.StatResult(h, fi, err)
}

// Get implements backend.Backend with positioned reads, so the range costs
// no extra seek and fn cannot move or close the file.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) (err error) {
	if err := backend.CheckHandle(ctx, "get", h); err != nil {
		return err
	}
	if length < 0 || offset < 0 {
		return backend.Permanent(fmt.Errorf("get %s: invalid range: offset %d, length %d", h, offset, length))
	}
	f, err := os.Open(b.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("get %s: %w", h, backend.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("get %s: close: %w", h, cerr)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("get %s: not a regular file", h)
	}
	n := max(fi.Size()-offset, 0)
	if length > 0 && int64(length) < n {
		n = int64(length)
	}
	return fn(io.NewSectionReader(f, offset, n))
}

// Put implements backend.Backend; see the package doc for the steps that
// make it atomic and durable.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) (err error) {
	size, err := backend.CheckPut(ctx, h, rd)
	if err != nil {
		return err
	}
	final := b.path(h)
	dir := filepath.Dir(final)
	f, err := os.CreateTemp(dir, backend.TempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) && h.Type != backend.ConfigFile {
		// A folder removed by hand or lost in a copy: make it again, and
		// make its entry in the parent durable before relying on it.
		if err := os.MkdirAll(dir, backend.DirMode); err != nil {
			return fmt.Errorf("put %s: %w", h, err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("put %s: %w", h, err)
		}
		f, err = os.CreateTemp(dir, backend.TempPrefix+"*")
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close() // the write already failed; that error is the one to report
		}
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("%w (and removing temporary file: %v)", err, rerr)
		}
	}()

	n, err := io.Copy(f, io.LimitReader(backend.NewContextReader(ctx, rd), size+1))
	if err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	if n != size {
		return fmt.Errorf("put %s: content is %d bytes, reader said %d", h, n, size)
	}
	// Read-only is a guard against accidents, not something correctness
	// rests on: file systems that refuse permission changes still work.
	_ = f.Chmod(backend.FileMode)
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: sync: %w", h, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: close: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	// The file is visible now; a failed folder sync only means the rename
	// might not survive a power cut, which the caller must hear about.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	return nil
}

// Delete implements backend.Backend. The folder is not synced afterwards:
// a delete undone by a power cut brings back a whole, valid file, which
// prune deletes again next time.
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	if err := backend.CheckHandle(ctx, "delete", h); err != nil {
		return err
	}
	p := b.path(h)
	err := os.Remove(p)
	if err != nil && runtime.GOOS == "windows" && errors.Is(err, fs.ErrPermission) {
		// Windows refuses to delete a read-only file.
		if cerr := os.Chmod(p, 0o600); cerr == nil {
			err = os.Remove(p)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", h, backend.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", h, err)
	}
	return nil
}

// Close implements backend.Backend; the local backend holds nothing open.
func (b *Backend) Close() error { return nil }

func mkdir(dir string) error {
	err := os.Mkdir(dir, backend.DirMode)
	if errors.Is(err, fs.ErrExist) {
		fi, serr := os.Stat(dir)
		if serr == nil && fi.IsDir() {
			return nil
		}
	}
	return err
}

// syncDir makes the entries of dir durable. File systems that cannot sync
// a folder (some network and FUSE file systems answer EINVAL or ENOTSUP,
// and Windows cannot open a folder for it) have nothing to sync.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil
	}
	if cerr := d.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	return nil
}
