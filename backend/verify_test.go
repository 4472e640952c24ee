package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
)

func TestVerifyContent(t *testing.T) {
	data := []byte("some content")
	good := Handle{Type: PackFile, Name: Hash(data).String()}
	rd := NewByteReader(data)
	if _, err := io.CopyN(io.Discard, rd, 3); err != nil {
		t.Fatal(err)
	}
	if err := VerifyContent(good, rd); err != nil {
		t.Fatalf("good content: %v", err)
	}
	if rest, _ := io.ReadAll(rd); string(rest) != string(data) {
		t.Errorf("reader not rewound after verifying: %q", rest)
	}
	other := Handle{Type: PackFile, Name: Hash([]byte("other")).String()}
	if err := VerifyContent(other, NewByteReader(data)); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong name: %v, want ErrHashMismatch", err)
	}
	if err := VerifyContent(good, lyingReader{NewByteReader(data), 5}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong length: %v, want ErrHashMismatch", err)
	}
	if err := VerifyContent(good, lyingReader{NewByteReader(data), 100}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong length: %v, want ErrHashMismatch", err)
	}
	cfg := Handle{Type: ConfigFile, Name: ConfigName}
	if err := VerifyContent(cfg, NewByteReader(data)); err != nil {
		t.Errorf("config: %v", err)
	}
	if err := VerifyContent(Handle{Type: PackFile, Name: "x"}, NewByteReader(data)); !errors.Is(err, ErrInvalidName) {
		t.Errorf("invalid handle: %v", err)
	}
}

type lyingReader struct {
	*ByteReader
	n int64
}

func (l lyingReader) Length() int64 { return l.n }

func TestHandleValidErrors(t *testing.T) {
	id := Hash(nil).String()
	for _, h := range []Handle{
		{Type: 0, Name: id}, {Type: 8, Name: id}, {Type: ConfigFile, Name: id},
		{Type: KeyFile, Name: "config"}, {Type: LockFile, Name: id[1:]},
	} {
		if err := h.Valid(); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%+v: %v, want ErrInvalidName", h, err)
		}
	}
	for _, h := range []Handle{{Type: ConfigFile, Name: ConfigName}, {Type: PackFile, Name: id}} {
		if err := h.Valid(); err != nil {
			t.Errorf("%+v: %v", h, err)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	transient := errors.New("connection reset")
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{transient, false},
		{fmt.Errorf("put: %w", transient), false},
		{Permanent(transient), true},
		{fmt.Errorf("put: %w", Permanent(transient)), true},
		{fmt.Errorf("get: %w", ErrNotExist), true},
		{ErrQuota, true},
		{ErrAppendOnly, true},
		{ErrHashMismatch, true},
		{ErrInvalidName, true},
		{ErrNoRepository, true},
		{ErrAlreadyExists, true},
		{&fs.PathError{Op: "open", Path: "x", Err: fs.ErrPermission}, true},
	} {
		if got := IsPermanent(c.err); got != c.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if err := Permanent(transient); !errors.Is(err, transient) || err.Error() != transient.Error() {
		t.Errorf("Permanent changes the error: %v", err)
	}
}

// TestCheckHandle: the one pre-operation check of every backend refuses a
// cancelled context and an invalid handle or type, naming the operation
// and the file.
func TestCheckHandle(t *testing.T) {
	good := Handle{Type: IndexFile, Name: Hash([]byte("x")).String()}
	ctx := context.Background()
	if err := CheckHandle(ctx, "get", good); err != nil {
		t.Fatalf("valid handle: %v", err)
	}
	if err := CheckType(ctx, LogFile); err != nil {
		t.Fatalf("valid type: %v", err)
	}
	for _, h := range []Handle{{Type: IndexFile, Name: "x"}, {Type: 0, Name: good.Name}, {Type: ConfigFile, Name: "other"}} {
		if err := CheckHandle(ctx, "put", h); !errors.Is(err, ErrInvalidName) || !strings.HasPrefix(err.Error(), "put ") {
			t.Errorf("%+v: %v, want ErrInvalidName after the operation", h, err)
		}
	}
	if err := CheckType(ctx, FileType(99)); !errors.Is(err, ErrInvalidName) {
		t.Errorf("type 99: %v, want ErrInvalidName", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := CheckHandle(cancelled, "delete", good); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "delete index/") {
		t.Errorf("cancelled: %v, want context.Canceled naming the operation and file", err)
	}
	if err := CheckType(cancelled, LogFile); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled list: %v, want context.Canceled", err)
	}
}
