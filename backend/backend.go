// Package backend defines the storage contract every repository location
// implements: dumb storage of named, opaque, immutable files.
//
// A backend knows nothing about encryption or formats. Files are grouped by
// FileType, each type in its own folder; every name except the config's is
// the lowercase hex SHA-256 of the file's bytes, so any party, a friend's
// server included, can check a file without keys.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// FileType says which folder of the repository a file lives in.
type FileType uint8

// The file types of a repository. Their numeric values appear in the peer
// protocol; do not reorder.
const (
	ConfigFile FileType = iota + 1
	KeyFile
	PackFile
	IndexFile
	LogFile
	LockFile
	// MetaFile holds small sealed records about the repository (signed
	// receipts of peers, saved destinations): see repo.SaveMeta.
	MetaFile
)

// AllTypes lists every file type, in the order mirror copies them.
var AllTypes = []FileType{PackFile, IndexFile, KeyFile, ConfigFile, LogFile, MetaFile, LockFile}

// Dir is the folder that holds files of type t ("" for the config).
func (t FileType) Dir() string {
	switch t {
	case ConfigFile:
		return ""
	case KeyFile:
		return "keys"
	case PackFile:
		return "data"
	case IndexFile:
		return "index"
	case LogFile:
		return "log"
	case LockFile:
		return "locks"
	case MetaFile:
		return "meta"
	}
	return ""
}

// String names the type as users see it.
func (t FileType) String() string {
	switch t {
	case ConfigFile:
		return "config"
	case KeyFile:
		return "key"
	case PackFile:
		return "pack"
	case IndexFile:
		return "index"
	case LogFile:
		return "log"
	case LockFile:
		return "lock"
	case MetaFile:
		return "meta"
	}
	return "invalid"
}

// Valid reports whether t is one of the defined file types.
func (t FileType) Valid() bool { return t >= ConfigFile && t <= MetaFile }

// ConfigName is the only file name that is not a content hash.
const ConfigName = "config"

// Handle names one file in a backend.
type Handle struct {
	Type FileType
	Name string
}

// String is the file's path relative to the repository root.
func (h Handle) String() string {
	if h.Type == ConfigFile {
		return ConfigName
	}
	return h.Type.Dir() + "/" + h.Name
}

// Valid checks that the handle names a file a backend may store: the config
// under its fixed name, any other type under a 64-digit lowercase hex name.
// Every error it returns wraps ErrInvalidName.
func (h Handle) Valid() error {
	if !h.Type.Valid() {
		return fmt.Errorf("%w: invalid file type %d", ErrInvalidName, h.Type)
	}
	if h.Type == ConfigFile {
		if h.Name != ConfigName {
			return fmt.Errorf("%w: config must be named %s", ErrInvalidName, ConfigName)
		}
		return nil
	}
	if _, err := ParseID(h.Name); err != nil {
		return err
	}
	return nil
}

// CheckHandle is the check every backend runs before an operation on one
// file (Stat, Get, Put, Delete): it refuses a cancelled ctx, so that
// nothing reaches the storage after cancellation, and a handle that is not
// Valid (an error wrapping ErrInvalidName). The error names the operation
// and the file: "put data/ab12...: context canceled".
func CheckHandle(ctx context.Context, op string, h Handle) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, h, err)
	}
	if err := h.Valid(); err != nil {
		return fmt.Errorf("%s %s: %w", op, h, err)
	}
	return nil
}

// CheckPut is CheckHandle for Put, and readies the content: it also
// refuses, marked permanent, a reader of negative length, and rewinds rd
// so that a retried Put sends the content from its start. It returns the
// length the content must have.
func CheckPut(ctx context.Context, h Handle, rd RewindReader) (int64, error) {
	if err := CheckHandle(ctx, "put", h); err != nil {
		return 0, err
	}
	size := rd.Length()
	if size < 0 {
		return 0, Permanent(fmt.Errorf("put %s: negative length %d", h, size))
	}
	if err := rd.Rewind(); err != nil {
		return 0, fmt.Errorf("put %s: rewind: %w", h, err)
	}
	return size, nil
}

// CheckType is CheckHandle for List: it refuses a cancelled ctx and a
// type that is not one of the file types (an error wrapping
// ErrInvalidName).
func CheckType(ctx context.Context, t FileType) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	if !t.Valid() {
		return fmt.Errorf("list: %w: invalid file type %d", ErrInvalidName, t)
	}
	return nil
}

// FileInfo describes a stored file.
type FileInfo struct {
	Name string
	Size int64
}

// Properties describe what a backend can do, as data.
type Properties struct {
	// Connections is how many requests may run at once; callers bound
	// their concurrency by it.
	Connections int
	// HasAtomicReplace is true when a Put over an existing name replaces
	// it atomically (local disks, SFTP with posix-rename).
	HasAtomicReplace bool
}

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotExist: the named file is not in the backend.
	ErrNotExist = errors.New("file does not exist")
	// ErrNoRepository: the location holds no repository (no config).
	ErrNoRepository = errors.New("repository does not exist")
	// ErrAppendOnly: the backend refuses deletes and overwrites.
	ErrAppendOnly = errors.New("append-only: deletes and overwrites are refused")
	// ErrQuota: the backend refused a put because the quota is reached.
	ErrQuota = errors.New("quota exceeded")
	// ErrHashMismatch: content did not hash to its name.
	ErrHashMismatch = errors.New("content does not match its name")
	// ErrInvalidName: the name is not canonical for its file type.
	ErrInvalidName = errors.New("invalid file name")
	// ErrAlreadyExists: something that must not be replaced is already
	// there, such as a repository's config when creating a repository.
	ErrAlreadyExists = errors.New("already exists")
)

// Backend is dumb storage of named files. Implementations must be safe for
// concurrent use by up to Properties().Connections goroutines, and must give:
//
//   - atomic visibility: a reader sees a file whole or not at all, never a
//     partly written one, even after a crash of the writer;
//   - read-after-write: once Put returns nil, Stat, Get and List see the file.
//
// Errors that say a file is missing wrap ErrNotExist.
type Backend interface {
	// Location describes the backend for messages; it never holds secrets.
	Location() string

	// Properties describes the backend's capabilities.
	Properties() Properties

	// List calls fn once for each file of type t, in no particular order,
	// on the caller's goroutine; fn may call the backend. An error from fn
	// stops the listing and is returned. Listing a type whose folder does
	// not exist yields nothing.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error

	// Stat returns the file's size, or an error wrapping ErrNotExist.
	Stat(ctx context.Context, h Handle) (FileInfo, error)

	// Get hands fn a reader over length bytes of the file starting at
	// offset (length 0 means to the end) and closes it when fn returns.
	// A range past the end of the file yields fewer bytes (callers that
	// need the full range use io.ReadFull). A missing file returns an
	// error wrapping ErrNotExist without calling fn. fn may be called again
	// by a retrying wrapper, so it must be idempotent.
	Get(ctx context.Context, h Handle, length int, offset int64, fn func(io.Reader) error) error

	// Put stores the content under h atomically. Storing a name that
	// already exists replaces it where HasAtomicReplace, else it is an
	// error; content-addressed names make either outcome safe. Put must
	// fail and store nothing when reading rd fails, when rd holds more or
	// fewer than rd.Length() bytes, or when ctx is cancelled before the
	// file is visible.
	Put(ctx context.Context, h Handle, rd RewindReader) error

	// Delete removes the file; a missing file returns an error wrapping
	// ErrNotExist.
	Delete(ctx context.Context, h Handle) error

	// Close releases connections. The backend must not be used after.
	Close() error
}

// ErrRetained: the storage keeps the file for now and refuses to delete
// it (an S3 bucket's object lock, with a retention period not yet over).
// It also matches ErrAppendOnly under errors.Is, so that a caller that
// carries on past an append-only refusal carries on past this one too.
var ErrRetained error = retainedError{}

type retainedError struct{}

func (retainedError) Error() string        { return "retained by object lock, not deletable yet" }
func (retainedError) Is(target error) bool { return target == ErrAppendOnly }

// IsNotExist reports whether err says a file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }
