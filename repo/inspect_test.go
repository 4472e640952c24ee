package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/backend/retry"
)

// TestCopyFileAcrossRetries checks that CopyFile writes a file exactly
// once when a read breaks off midway and the retry wrapper runs it again:
// the second attempt reads past what was written.
func TestCopyFileAcrossRetries(t *testing.T) {
	ctx := context.Background()
	inner := mem.New()
	f := faulty.New(inner)
	be, err := retry.New(f, retry.Options{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := testInit(t, be, InitOptions{})
	data := randomBlob(rand.New(rand.NewSource(1)), 3<<20+17, false)
	id, err := r.SaveFile(ctx, backend.LogFile, data)
	if err != nil {
		t.Fatal(err)
	}
	f.AddFault(faulty.Get).Match(backend.LogFile, "").FailAfter(1<<20+5, io.ErrUnexpectedEOF)
	f.AddFault(faulty.Get).Match(backend.LogFile, "").FailAfter(2<<20+9, io.ErrUnexpectedEOF)
	var out bytes.Buffer
	n, err := r.CopyFile(ctx, backend.LogFile, id, &out)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("CopyFile: %d bytes, %v; wrote %d bytes, equal %v", n, err, out.Len(), bytes.Equal(out.Bytes(), data))
	}
	f.VerifyAllFaultsHit(t)

	// A file that does not match its name is written, then reported.
	bad := append([]byte(nil), data...)
	bad[100] ^= 1
	badID := backend.Hash(data) // the name of the intact bytes
	if err := inner.Put(ctx, backend.Handle{Type: backend.PackFile, Name: badID.String()}, backend.NewByteReader(bad)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	_, err = r.CopyFile(ctx, backend.PackFile, badID, &out)
	if !errors.Is(err, ErrDamaged) || !bytes.Equal(out.Bytes(), bad) {
		t.Fatalf("damaged file: %v, wrote its bytes %v", err, bytes.Equal(out.Bytes(), bad))
	}

	// A writer that fails stops the copy at once, without retries.
	calls := f.Calls(faulty.Get)
	_, err = r.CopyFile(ctx, backend.LogFile, id, failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") || f.Calls(faulty.Get) != calls+1 {
		t.Fatalf("failing writer: %v after %d reads", err, f.Calls(faulty.Get)-calls)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestFindFile checks prefix resolution of file names.
func TestFindFile(t *testing.T) {
	ctx := context.Background()
	r := testInit(t, mem.New(), InitOptions{})
	var ids []backend.ID
	for i := range 40 {
		id, err := r.SaveFile(ctx, backend.LogFile, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		for _, p := range []string{id.String(), id.String()[:12], strings.ToUpper(id.String()[:12])} {
			if got, err := r.FindFile(ctx, backend.LogFile, p); err != nil || got != id {
				t.Fatalf("FindFile(%s) = %v, %v; want %v", p, got, err, id)
			}
		}
	}
	if _, err := r.FindFile(ctx, backend.LogFile, ""); err == nil {
		t.Error("empty prefix accepted")
	}
	if _, err := r.FindFile(ctx, backend.LogFile, "xyz"); err == nil || !strings.Contains(err.Error(), "invalid ID") {
		t.Errorf("non-hex prefix: %v", err)
	}
	if _, err := r.FindFile(ctx, backend.KeyFile, "ffffffffffff"); !backend.IsNotExist(err) {
		t.Errorf("no match: %v", err)
	}
	// 40 files: some first hex digit is shared.
	seen := map[byte]bool{}
	for _, id := range ids {
		d := id.String()[0]
		if seen[d] {
			if _, err := r.FindFile(ctx, backend.LogFile, string(d)); err == nil || !strings.Contains(err.Error(), "ambiguous") {
				t.Errorf("ambiguous prefix %c: %v", d, err)
			}
			break
		}
		seen[d] = true
	}
}
