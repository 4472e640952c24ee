package backend

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := NewContextReader(ctx, strings.NewReader("abcdef"))
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 2 || err != nil || r.Err() != nil {
		t.Fatalf("read before cancel: %d, %v, Err %v", n, err, r.Err())
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) || !errors.Is(r.Err(), context.Canceled) {
		t.Fatalf("read after cancel: %d, %v, Err %v", n, err, r.Err())
	}

	errDisk := errors.New("disk")
	r = NewContextReader(context.Background(), io.MultiReader(strings.NewReader("ab"), &failing{errDisk}))
	if _, err := io.ReadAll(r); !errors.Is(err, errDisk) || !errors.Is(r.Err(), errDisk) {
		t.Fatalf("failing source: %v, Err %v", err, r.Err())
	}
	r = NewContextReader(context.Background(), strings.NewReader("ab"))
	if _, err := io.ReadAll(r); err != nil || r.Err() != nil {
		t.Fatalf("EOF is no error: %v, Err %v", err, r.Err())
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }
